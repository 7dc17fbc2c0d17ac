package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

// TestIdentityCannotBeForgedPastTheGateway plays a pod inside the cluster
// that reaches the product and order services directly, without the gateway:
// whatever it claims (bare X-User-* headers, the admin's own access token, a
// token signed by a key of its own, an expired one, or one the gateway
// signed for another service), it acts as nobody and changes nothing. The
// same requests through the gateway work.
func TestIdentityCannotBeForgedPastTheGateway(t *testing.T) {
	p := startPlatform(t, e2e.Config{Reminders: []time.Duration{time.Hour}, Expiry: 2 * time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := loadgen.NewClient(p.Gateway.Base)
	inbox := e2e.Inbox{Server: p.SMTP}
	adminAPI, err := loadgen.SignUp(ctx, api, inbox, p.Admin, p.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := loadgen.SignUp(ctx, api, inbox, "alice-"+testenv.RandomSuffix()+"@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	admin := identity.User{ID: subjectOf(t, adminAPI.Token), Email: p.Admin, Roles: []string{identity.RoleCustomer, identity.RoleAdmin}}
	aliceUser := identity.User{ID: subjectOf(t, alice.Token), Roles: []string{identity.RoleCustomer}}

	// Through the gateway, the admin writes and alice reads her orders.
	var tea struct{ ID int64 }
	product := json.RawMessage(`{"name":"Gateway tea","description":"Sold through the front door","price":"3.50","quantity":5}`)
	if err := adminAPI.Expect(ctx, http.StatusCreated, http.MethodPost, "/products", product, &tea); err != nil {
		t.Fatal(err)
	}
	if err := alice.Expect(ctx, http.StatusOK, http.MethodGet, "/orders", nil, nil); err != nil {
		t.Fatal(err)
	}

	strangerKeys, err := identity.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	gateway := &identity.Issuer{Keys: tokens.Static(p.IdentityKeys), TTL: time.Minute}
	stranger := &identity.Issuer{Keys: tokens.Static(strangerKeys), TTL: time.Minute}
	// The gateway's own key, but a token that expired a minute ago.
	late := &identity.Issuer{Keys: tokens.Static(p.IdentityKeys), TTL: -time.Minute}
	signed := func(i *identity.Issuer, u identity.User, audience string) http.Header {
		h := http.Header{}
		if err := i.Header(h, u, audience); err != nil {
			t.Fatal(err)
		}
		return h
	}
	bare := func(u identity.User) http.Header { h := http.Header{}; u.Header(h); return h }
	withToken := func(h http.Header, token string) http.Header { h.Set(identity.HeaderToken, token); return h }

	for _, target := range []struct {
		service       string
		api           *apitest.Client
		method, path  string
		body          string
		as            identity.User
		otherAudience string
		accessToken   string
	}{
		{service: "product", api: p.Product, method: http.MethodPost, path: "/products", as: admin, otherAudience: "order", accessToken: adminAPI.Token,
			body: `{"name":"Forged tea","description":"Written past the gateway","price":"1.00","quantity":1000}`},
		{service: "order", api: p.Order, method: http.MethodGet, path: "/orders", as: aliceUser, otherAudience: "product", accessToken: alice.Token},
	} {
		for name, header := range map[string]http.Header{
			"bare X-User-* headers":                   bare(target.as),
			"the user's own access token":             withToken(bare(target.as), target.accessToken),
			"a token signed by another key":           signed(stranger, target.as, target.service),
			"an expired token of the gateway":         signed(late, target.as, target.service),
			"the gateway's token for another service": signed(gateway, target.as, target.otherAudience),
		} {
			t.Run(target.service+": "+name, func(t *testing.T) {
				contentType := ""
				if target.body != "" {
					contentType = "application/json"
				}
				target.api.Send(t, target.method, target.path, contentType, []byte(target.body), header).
					Expect(t, http.StatusUnauthorized, httpx.MsgUnauthorized)
			})
		}
	}
	// Nothing was written past the gateway: the catalogue holds the one product.
	var page []struct{ Name string }
	if err := api.Expect(ctx, http.StatusOK, http.MethodGet, "/products", nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].Name != "Gateway tea" {
		t.Fatalf("catalogue %+v, want only the product written through the gateway", page)
	}
}
