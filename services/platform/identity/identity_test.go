package identity_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/tokens"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func keys(t *testing.T) tokens.KeySet {
	t.Helper()
	// Active since an hour, so a clock set back (expired tokens) still signs.
	since := time.Now().Add(-time.Hour)
	k, err := tokens.GenerateKey(tokens.EdDSA, since, since)
	if err != nil {
		t.Fatal(err)
	}
	return tokens.KeySet{Keys: []tokens.Key{k}}
}

// service is a service's router with the verifier for audience "product".
func service(t *testing.T, public tokens.KeySet) *gin.Engine {
	t.Helper()
	v, err := identity.NewVerifier(identity.Config{Keys: tokens.Static(public), Leeway: time.Second}, "product", "KSHOP_PRODUCT_IDENTITY", quiet)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(v.Authenticate())
	r.GET("/public", func(c *gin.Context) { c.String(http.StatusOK, "public") })
	r.GET("/any", identity.Require(), func(c *gin.Context) { c.String(http.StatusOK, "%d", identity.FromContext(c).ID) })
	r.GET("/admin", identity.Require(identity.RoleAdmin), func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	return r
}

func TestVerifier(t *testing.T) {
	gateway := keys(t)
	r := service(t, gateway.Public())
	issuer := &identity.Issuer{Keys: tokens.Static(gateway), TTL: time.Minute}
	customer := identity.User{ID: 7, Email: "ann@example.com", Roles: []string{"customer"}}
	admin := identity.User{ID: 1, Email: "boss@example.com", Roles: []string{"customer", "admin"}}
	signed := func(u identity.User, i *identity.Issuer, audience string) http.Header {
		h := http.Header{}
		if err := i.Header(h, u, audience); err != nil {
			t.Fatal(err)
		}
		return h
	}
	forged := func(u identity.User) http.Header { h := http.Header{}; u.Header(h); return h }
	with := func(h http.Header, key, value string) http.Header { h.Set(key, value); return h }
	without := func(h http.Header, key string) http.Header { h.Del(key); return h }

	stranger := &identity.Issuer{Keys: tokens.Static(keys(t)), TTL: time.Minute}
	past := &identity.Issuer{Keys: tokens.Static(gateway), TTL: time.Minute, Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }}
	// auth's access token for the same user: right shape, wrong issuer and audience.
	authToken, _, err := (&tokens.Signer{Keys: tokens.Static(gateway), Issuer: "kshop-auth", Audience: "kshop", TTL: time.Hour}).
		Sign(tokens.Identity{Subject: "1", Email: admin.Email, Roles: admin.Roles})
	if err != nil {
		t.Fatal(err)
	}

	unauthorized := `{"message":"unauthorized"}`
	for name, tc := range map[string]struct {
		path   string
		header http.Header
		status int
		body   string
	}{
		"anonymous on a public route":        {"/public", nil, 200, "public"},
		"anonymous on a user route":          {"/any", nil, 401, unauthorized},
		"customer":                           {"/any", signed(customer, issuer, "product"), 200, "7"},
		"token without the readable headers": {"/any", without(without(without(signed(customer, issuer, "product"), identity.HeaderUserID), identity.HeaderEmail), identity.HeaderRoles), 200, "7"},
		"customer not admin":                 {"/admin", signed(customer, issuer, "product"), 403, `{"message":"forbidden"}`},
		"admin":                              {"/admin", signed(admin, issuer, "product"), 200, "ok"},
		"forged headers":                     {"/admin", forged(admin), 401, unauthorized},
		"forged headers on a public route":   {"/public", forged(admin), 401, unauthorized},
		"forged id beside a real token":      {"/any", with(signed(customer, issuer, "product"), identity.HeaderUserID, "1"), 401, unauthorized},
		"forged roles beside a real token":   {"/admin", with(signed(customer, issuer, "product"), identity.HeaderRoles, "customer,admin"), 401, unauthorized},
		"two tokens": {"/any", func() http.Header {
			h := signed(customer, issuer, "product")
			h.Add(identity.HeaderToken, "x")
			return h
		}(), 401, unauthorized},
		"token signed by another key": {"/admin", signed(admin, stranger, "product"), 401, unauthorized},
		"token for another service":   {"/admin", signed(admin, issuer, "order"), 401, unauthorized},
		"expired token":               {"/admin", signed(admin, past, "product"), 401, unauthorized},
		"auth's access token":         {"/admin", with(forged(admin), identity.HeaderToken, authToken), 401, unauthorized},
		"garbage token":               {"/any", with(forged(customer), identity.HeaderToken, "not.a.token"), 401, unauthorized},
		"empty token":                 {"/any", with(http.Header{}, identity.HeaderToken, ""), 401, unauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tc.status || strings.TrimSpace(rec.Body.String()) != tc.body {
				t.Fatalf("%d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
}

// Require alone trusts nothing: the headers count only once Authenticate proved them.
func TestRequireWithoutAuthenticate(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.GET("/any", identity.Require(), func(c *gin.Context) { c.String(http.StatusOK, "in") })
	req := httptest.NewRequest(http.MethodGet, "/any", nil)
	identity.User{ID: 1, Roles: []string{"admin"}}.Header(req.Header)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("%d %s, want 401", rec.Code, rec.Body)
	}
}

// Rotation: the gateway signs with a new key once it is active, and a
// service that re-read its public key file accepts it; a key dropped from the
// file is refused once the file is re-read.
func TestKeyFileRotation(t *testing.T) {
	old, next := keys(t), keys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	write := func(set tokens.KeySet) {
		doc, err := set.Public().MarshalJWKS(false)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(old)
	v, err := identity.NewVerifier(identity.Config{KeysFile: path}, "order", "KSHOP_ORDER_IDENTITY", quiet)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(v.Authenticate())
	r.GET("/any", identity.Require(), func(c *gin.Context) { c.String(http.StatusOK, "in") })
	status := func(signing tokens.KeySet) int {
		h := http.Header{}
		if err := (&identity.Issuer{Keys: tokens.Static(signing), TTL: time.Minute}).Header(h, identity.User{ID: 3}, "order"); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/any", nil)
		req.Header = h
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := status(old); got != http.StatusOK {
		t.Fatalf("old key: %d, want 200", got)
	}
	if got := status(next); got != http.StatusUnauthorized {
		t.Fatalf("a key not yet published: %d, want 401", got)
	}
	write(next)
	deadline := time.Now().Add(identity.KeysReload + 5*time.Second)
	for status(next) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the rotated key file was never picked up")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := status(old); got != http.StatusUnauthorized {
		t.Fatalf("a key removed from the file: %d, want 401", got)
	}
}

func TestConfigNeedsKeys(t *testing.T) {
	_, err := identity.NewVerifier(identity.Config{}, "order", "KSHOP_ORDER_IDENTITY", quiet)
	if err == nil || !strings.Contains(err.Error(), "KSHOP_ORDER_IDENTITY_KEYS_FILE") {
		t.Fatalf("err = %v, want one naming KSHOP_ORDER_IDENTITY_KEYS_FILE", err)
	}
	set, err := identity.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (identity.IssuerConfig{Keys: tokens.Static(set), TTL: time.Minute}).NewIssuer("KSHOP_GATEWAY_IDENTITY", quiet); err != nil {
		t.Fatalf("generated keys: %v", err)
	}
	_, err = identity.IssuerConfig{Keys: tokens.Static(set.Public()), TTL: time.Minute}.NewIssuer("KSHOP_GATEWAY_IDENTITY", quiet)
	if err == nil || !strings.Contains(err.Error(), "private") {
		t.Fatalf("an issuer with public keys only: err = %v, want one saying it needs the private keys", err)
	}
}

// The gateway hands the same token out again, per identity and service,
// while more than half its lifetime is left and its key still signs; the
// number kept is bounded (Reuse).
func TestIssuerReusesTokensForHalfTheirLife(t *testing.T) {
	first := keys(t)
	var current tokens.KeySet = first
	now := time.Now()
	issuer := &identity.Issuer{Keys: keySourceFunc(func() tokens.KeySet { return current }), TTL: time.Minute, Reuse: 8,
		Now: func() time.Time { return now }}
	ann := identity.User{ID: 7, Email: "ann@example.com", Roles: []string{"customer"}}
	token := func(u identity.User, audience string) string {
		t.Helper()
		raw, err := issuer.Token(u, audience)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	a := token(ann, "order")
	if token(ann, "order") != a {
		t.Fatal("the same identity for the same service got a new token at once")
	}
	if token(ann, "product") == a {
		t.Fatal("the order service's token was handed out for the product service")
	}
	admin := ann
	admin.Roles = []string{"customer", "admin"}
	if token(admin, "order") == a {
		t.Fatal("a token was reused for other roles")
	}
	now = now.Add(29 * time.Second)
	if token(ann, "order") != a {
		t.Fatal("renewed before half its life")
	}
	now = now.Add(2 * time.Second)
	b := token(ann, "order")
	if b == a {
		t.Fatal("handed out past half its life")
	}
	// A new key that signs: the token of the old one is not handed out again.
	next := keys(t)
	current = tokens.KeySet{Keys: append(append([]tokens.Key{}, next.Keys...), first.Keys...)}
	next.Keys[0].ActiveFrom = first.Keys[0].ActiveFrom.Add(time.Second)
	current.Keys[0] = next.Keys[0]
	if c := token(ann, "order"); c == b {
		t.Fatal("a token of a key that no longer signs was handed out again")
	}
}

type keySourceFunc func() tokens.KeySet

func (f keySourceFunc) KeySet() tokens.KeySet { return f() }
