package tokens_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/platform/tokens/tokenstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	issuer   = "kshop-auth"
	audience = "kshop"
)

func newKey(t *testing.T, alg string, activeFrom time.Time) tokens.Key {
	t.Helper()
	k, err := tokens.GenerateKey(alg, activeFrom, activeFrom)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signerFor(set tokens.KeySet, now time.Time) *tokens.Signer {
	return &tokens.Signer{Keys: tokens.Static(set), Issuer: issuer, Audience: audience, TTL: time.Hour, Now: func() time.Time { return now }}
}

func verifierFor(set tokens.KeySet, now time.Time) *tokens.Verifier {
	return &tokens.Verifier{Keys: tokens.KeySetLookup{Source: tokens.Static(set.Public())}, Issuer: issuer, Audience: audience, Now: func() time.Time { return now }}
}

func TestSignedTokensVerifyWithThePublicKeys(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{tokens.EdDSA, tokens.ES256} {
		t.Run(alg, func(t *testing.T) {
			set := tokens.KeySet{Keys: []tokens.Key{newKey(t, alg, now.Add(-time.Minute))}}
			token, expires, err := signerFor(set, now).Sign(tokens.Identity{Subject: "42", Email: "ann@example.com", Roles: []string{"customer", "admin"}})
			if err != nil {
				t.Fatal(err)
			}
			if want := now.Add(time.Hour).Truncate(time.Second); !expires.Equal(want) {
				t.Errorf("expires %v, want %v", expires, want)
			}
			claims, err := verifierFor(set, now).Verify(context.Background(), token)
			if err != nil {
				t.Fatal(err)
			}
			if claims.Subject != "42" || claims.Email != "ann@example.com" || !claims.HasRole("admin") || !claims.HasRole("customer") {
				t.Errorf("claims %+v", claims)
			}
			header := decodeSegment(t, token, 0)
			if header["alg"] != alg || header["kid"] != set.Keys[0].ID {
				t.Errorf("header %v, want alg %s and kid %s", header, alg, set.Keys[0].ID)
			}
			body := decodeSegment(t, token, 1)
			for _, claim := range []string{"sub", "email", "roles", "iss", "aud", "iat", "exp"} {
				if _, ok := body[claim]; !ok {
					t.Errorf("claim %q missing from %v", claim, body)
				}
			}
		})
	}
}

func decodeSegment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHostileTokensAreRejected(t *testing.T) {
	now := time.Now()
	key := newKey(t, tokens.EdDSA, now.Add(-time.Minute))
	set := tokens.KeySet{Keys: []tokens.Key{key}}
	verifier := verifierFor(set, now)
	valid, _, err := signerFor(set, now).Sign(tokens.Identity{Subject: "42", Email: "ann@example.com", Roles: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mutate func(*tokens.Claims)) tokens.Claims { return tokenstest.Claims(now, mutate) }
	sign := func(method jwt.SigningMethod, c tokens.Claims, kid string, secret any) string {
		return tokenstest.Sign(t, method, c, kid, secret)
	}
	otherKey := newKey(t, tokens.EdDSA, now)
	parts := strings.Split(valid, ".")
	forgedBody := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"1","email":"root@example.com","roles":["admin"],"iss":"kshop-auth","aud":"kshop","exp":9999999999}`))

	for name, tc := range map[string]struct {
		token string
		want  error
	}{
		"alg none":                                 {sign(jwt.SigningMethodNone, claims(nil), key.ID, jwt.UnsafeAllowNoneSignatureType), tokens.ErrInvalid},
		"HS256 keyed with the public key":          {sign(jwt.SigningMethodHS256, claims(nil), key.ID, []byte(key.Public.(ed25519.PublicKey))), tokens.ErrInvalid},
		"signed by a key not in the set, same kid": {sign(jwt.SigningMethodEdDSA, claims(nil), key.ID, otherKey.Private), tokens.ErrInvalid},
		"unknown kid":                              {sign(jwt.SigningMethodEdDSA, claims(nil), otherKey.ID, otherKey.Private), tokens.ErrInvalid},
		"no kid":                                   {sign(jwt.SigningMethodEdDSA, claims(nil), "", key.Private), tokens.ErrInvalid},
		"expired":                                  {sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), key.ID, key.Private), tokens.ErrExpired},
		"no expiry":                                {sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.ExpiresAt = nil }), key.ID, key.Private), tokens.ErrInvalid},
		"issued in future":                         {sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), key.ID, key.Private), tokens.ErrInvalid},
		"wrong issuer":                             {sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Issuer = "someone" }), key.ID, key.Private), tokens.ErrInvalid},
		"wrong audience":                           {sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), key.ID, key.Private), tokens.ErrInvalid},
		"no subject":                               {sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Subject = "" }), key.ID, key.Private), tokens.ErrInvalid},
		"body swapped":                             {parts[0] + "." + forgedBody + "." + parts[2], tokens.ErrInvalid},
		"signature dropped":                        {parts[0] + "." + parts[1] + ".", tokens.ErrInvalid},
		"garbage":                                  {"not.a.token", tokens.ErrInvalid},
		"empty":                                    {"", tokens.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := verifier.Verify(context.Background(), tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAlgorithmMustMatchTheKey(t *testing.T) {
	now := time.Now()
	ed := newKey(t, tokens.EdDSA, now)
	ec := newKey(t, tokens.ES256, now)
	ec.ID = "shared"
	set := tokens.KeySet{Keys: []tokens.Key{ed, ec}}
	// A token signed ES256 by the EC key but naming the EdDSA key's kid.
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, tokens.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: "1", Issuer: issuer, Audience: jwt.ClaimStrings{audience}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}})
	tok.Header["kid"] = ed.ID
	raw, err := tok.SignedString(ec.Private)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifierFor(set, now).Verify(context.Background(), raw); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("Verify = %v, want ErrInvalid", err)
	}
}

func TestRotationSignsWithTheNewestActiveKeyAndOldTokensStillVerify(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	old := newKey(t, tokens.EdDSA, t0.Add(-24*time.Hour))
	next := newKey(t, tokens.ES256, t0.Add(10*time.Minute)) // published now, signs in 10 minutes
	set := tokens.KeySet{Keys: []tokens.Key{next, old}}

	before, _, err := signerFor(set, t0).Sign(tokens.Identity{Subject: "1", Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if kid := decodeSegment(t, before, 0)["kid"]; kid != old.ID {
		t.Fatalf("before activation signed with %v, want the old key %s", kid, old.ID)
	}
	after, _, err := signerFor(set, t0.Add(11*time.Minute)).Sign(tokens.Identity{Subject: "1", Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if kid := decodeSegment(t, after, 0)["kid"]; kid != next.ID {
		t.Fatalf("after activation signed with %v, want the new key %s", kid, next.ID)
	}
	verifier := verifierFor(set, t0.Add(12*time.Minute))
	for name, tok := range map[string]string{"old-key token": before, "new-key token": after} {
		if _, err := verifier.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Once the old key is removed (after token lifetime + grace), its tokens stop verifying.
	if _, err := verifierFor(tokens.KeySet{Keys: []tokens.Key{next}}, t0.Add(12*time.Minute)).Verify(context.Background(), before); !errors.Is(err, tokens.ErrInvalid) {
		t.Errorf("token of a removed key: %v, want ErrInvalid", err)
	}
}

func TestNoActiveKeyIsAnError(t *testing.T) {
	now := time.Now()
	set := tokens.KeySet{Keys: []tokens.Key{newKey(t, tokens.EdDSA, now.Add(time.Hour))}}
	if _, _, err := signerFor(set, now).Sign(tokens.Identity{Subject: "1", Email: "a@example.com"}); err == nil {
		t.Fatal("signed with a key that is not active yet")
	}
	if _, _, err := signerFor(set.Public(), now.Add(2*time.Hour)).Sign(tokens.Identity{Subject: "1", Email: "a@example.com"}); err == nil {
		t.Fatal("signed with a public key set")
	}
}

func TestJWKSRoundTrip(t *testing.T) {
	now := time.Now().Truncate(time.Second).UTC()
	set := tokens.KeySet{Keys: []tokens.Key{newKey(t, tokens.EdDSA, now), newKey(t, tokens.ES256, now.Add(time.Hour))}}
	private, err := set.MarshalJWKS(true)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := tokens.ParseJWKS(private)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := signerFor(parsed, now.Add(2*time.Hour)).Sign(tokens.Identity{Subject: "7", Email: "b@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	public, err := set.MarshalJWKS(false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(public), `"d"`) {
		t.Fatalf("public JWKS leaks private parts: %s", public)
	}
	publicSet, err := tokens.ParseJWKS(public)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range publicSet.Keys {
		if k.Private != nil || k.ID != set.Keys[i].ID || !k.ActiveFrom.Equal(set.Keys[i].ActiveFrom) {
			t.Errorf("key %d after round trip: %+v", i, k)
		}
	}
	if _, err := verifierFor(publicSet, now.Add(2*time.Hour)).Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
}

func TestParseJWKSRejectsBadDocuments(t *testing.T) {
	a := newKey(t, tokens.EdDSA, time.Now())
	b := newKey(t, tokens.EdDSA, time.Now())
	good, _ := tokens.KeySet{Keys: []tokens.Key{a}}.MarshalJWKS(true)
	var doc map[string][]map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	withKey := func(mutate func(k map[string]any)) []byte {
		k := map[string]any{}
		for name, v := range doc["keys"][0] {
			k[name] = v
		}
		mutate(k)
		out, _ := json.Marshal(map[string]any{"keys": []any{k}})
		return out
	}
	bJSON, _ := tokens.KeySet{Keys: []tokens.Key{b}}.MarshalJWKS(true)
	var bDoc map[string][]map[string]any
	_ = json.Unmarshal(bJSON, &bDoc)
	for name, data := range map[string][]byte{
		"not JSON":            []byte("{"),
		"no keys":             []byte(`{"keys":[]}`),
		"missing kid":         withKey(func(k map[string]any) { delete(k, "kid") }),
		"HS256":               withKey(func(k map[string]any) { k["alg"] = "HS256" }),
		"alg none":            withKey(func(k map[string]any) { k["alg"] = "none" }),
		"encryption key":      withKey(func(k map[string]any) { k["use"] = "enc" }),
		"short x":             withKey(func(k map[string]any) { k["x"] = "AAAA" }),
		"private of another":  withKey(func(k map[string]any) { k["d"] = bDoc["keys"][0]["d"] }),
		"bad active_from":     withKey(func(k map[string]any) { k["active_from"] = "yesterday" }),
		"duplicate kid":       []byte(`{"keys":[` + string(mustJSON(t, doc["keys"][0])) + `,` + string(mustJSON(t, doc["keys"][0])) + `]}`),
		"EC alg on OKP curve": withKey(func(k map[string]any) { k["alg"] = "ES256" }),
	} {
		if _, err := tokens.ParseJWKS(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKeyFileReloadsWhenTheFileChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	first := newKey(t, tokens.EdDSA, time.Now().Add(-time.Hour))
	write := func(set tokens.KeySet) {
		data, err := set.MarshalJWKS(true)
		if err != nil {
			t.Fatal(err)
		}
		// Replace atomically, as a Secret volume update does.
		tmp := filepath.Join(dir, "tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(tokens.KeySet{Keys: []tokens.Key{first}})
	file, err := tokens.LoadKeyFile(path, 10*time.Millisecond, quiet)
	if err != nil {
		t.Fatal(err)
	}
	second := newKey(t, tokens.EdDSA, time.Now().Add(-time.Minute))
	write(tokens.KeySet{Keys: []tokens.Key{second, first}})
	time.Sleep(20 * time.Millisecond)
	signing, err := file.KeySet().SigningKey(time.Now())
	if err != nil || signing.ID != second.ID {
		t.Fatalf("after rotation signing key %q (%v), want %q", signing.ID, err, second.ID)
	}

	if err := os.WriteFile(path, []byte(`{"keys":[{"kid":"half-writ`), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got := len(file.KeySet().Keys); got != 2 {
		t.Fatalf("a broken file replaced the keys: %d keys", got)
	}
	if _, err := tokens.LoadKeyFile(filepath.Join(dir, "missing.json"), time.Second, quiet); err == nil {
		t.Fatal("loading a missing file succeeded")
	}
}
