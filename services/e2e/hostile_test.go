package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/platform/tokens/tokenstest"
)

// hostileCase is one request an attacker or a broken client might send through
// the gateway, and the contract's answer to it.
type hostileCase struct {
	name        string
	method      string
	path        string // as sent on the wire: already escaped
	contentType string // "" with a body means application/json
	body        string
	header      http.Header
	// status and message are the documented answer; field, when set, must be
	// the first field the 400 names.
	status  int
	message string
	field   string
	// check, when set, looks further into a 2xx answer.
	check func(r apitest.Reply) error
}

// TestHostileInputThroughTheGateway sends forged tokens, spoofed identities,
// other users' orders, malformed, oversized and mistyped bodies, absurd numbers,
// injection attempts and path tricks through the gateway. Every one must get the
// documented 4xx in the envelope, and afterwards every row of every database
// must be as it was.
func TestHostileInputThroughTheGateway(t *testing.T) {
	// Auth signs with a key this test holds, so it can forge tokens that differ
	// from real ones in exactly one respect.
	now := time.Now()
	key, err := tokens.GenerateKey(tokens.EdDSA, now.Add(-time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := tokens.KeySet{Keys: []tokens.Key{key}}.MarshalJWKS(true)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	// Timers far away: nothing may change the databases while the cases run.
	// Small pending limits, so that a customer reaches them in the set-up.
	p := startPlatform(t, e2e.Config{Reminders: []time.Duration{time.Hour}, Expiry: 2 * time.Hour, JWKSFile: jwksFile,
		MaxPendingOrders: 3, MaxPendingUnits: 10})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := loadgen.NewClient(p.Gateway.Base)
	inbox := e2e.Inbox{Server: p.SMTP}
	adminAPI, err := loadgen.SignUp(ctx, api, inbox, p.Admin, p.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	aliceEmail := "alice-" + testenv.RandomSuffix() + "@example.com"
	alice, err := loadgen.SignUp(ctx, api, inbox, aliceEmail, "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := loadgen.SignUp(ctx, api, inbox, "bob-"+testenv.RandomSuffix()+"@example.com", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	aliceID := subjectOf(t, alice.Token)

	var tea struct{ ID int64 }
	validProduct := `{"name":"Hostile tea","description":"Black tea for the hostile suite","price":"12.50","quantity":10}`
	if err := adminAPI.Expect(ctx, http.StatusCreated, http.MethodPost, "/products", json.RawMessage(validProduct), &tea); err != nil {
		t.Fatal(err)
	}
	// The order service learns of the product through Kafka; until then it
	// answers 409 "product not available yet; retry shortly".
	var order struct{ ID int64 }
	testenv.WaitFor(t, 30*time.Second, "alice's order to be accepted", func() bool {
		return alice.Expect(ctx, http.StatusCreated, http.MethodPost, "/orders",
			map[string]any{"request_id": "alice-1", "items": []map[string]any{{"product_id": tea.ID, "quantity": 2}}}, &order) == nil
	})
	// Rice is plentiful, so an order of it meets the pending limits before the
	// stock. Alice holds 3 pending orders (the limit) of 4 units, Bob none.
	var rice struct{ ID int64 }
	if err := adminAPI.Expect(ctx, http.StatusCreated, http.MethodPost, "/products",
		json.RawMessage(`{"name":"Hostile rice","description":"Rice by the sack","price":"3.00","quantity":1000000}`), &rice); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "alice's order of rice to be accepted", func() bool {
		return alice.Expect(ctx, http.StatusCreated, http.MethodPost, "/orders",
			map[string]any{"request_id": "alice-2", "items": []map[string]any{{"product_id": rice.ID, "quantity": 1}}}, nil) == nil
	})
	if err := alice.Expect(ctx, http.StatusCreated, http.MethodPost, "/orders",
		map[string]any{"request_id": "alice-3", "items": []map[string]any{{"product_id": rice.ID, "quantity": 1}}}, nil); err != nil {
		t.Fatal(err)
	}
	validOrder := func(extra string) string {
		return fmt.Sprintf(`{"request_id":"hostile-%s","items":[{"product_id":%d,"quantity":1}]%s}`, strconv.Itoa(int(time.Now().UnixNano())), tea.ID, extra)
	}
	databases := openDatabases(t, p.Databases)
	before := settle(t, databases)
	// The tea's version once alice's reservation took its units.
	teaPath := fmt.Sprintf("/products/%d", tea.ID)
	teaETag := p.Gateway.Send(t, "GET", teaPath, "", nil, nil).Header.Get("ETag")
	if teaETag == "" {
		t.Fatal("GET /products/:id answered no ETag")
	}

	// Tokens: each differs from a valid admin token in one respect.
	claims := func(mutate func(*tokens.Claims)) tokens.Claims {
		return tokenstest.Claims(time.Now(), func(c *tokens.Claims) {
			c.Subject, c.Email = "1", p.Admin
			if mutate != nil {
				mutate(c)
			}
		})
	}
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	publicKey := []byte(key.Public.(ed25519.PublicKey))
	bearer := func(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }
	as := func(c *loadgen.Client) http.Header { return bearer(c.Token) }
	with := func(h http.Header, name, value string) http.Header {
		h = h.Clone()
		h.Set(name, value)
		return h
	}
	forged := []struct{ name, token string }{
		{"a token signed by another key under the real kid", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(nil), key.ID, otherEd)},
		{"an expired token signed by the real key", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) {
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-3 * time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
		}), key.ID, key.Private)},
		{"alg none", tokenstest.Sign(t, jwt.SigningMethodNone, claims(nil), key.ID, jwt.UnsafeAllowNoneSignatureType)},
		{"alg none without a signature segment", strings.TrimSuffix(tokenstest.Sign(t, jwt.SigningMethodNone, claims(nil), key.ID, jwt.UnsafeAllowNoneSignatureType), ".")},
		{"HS256 keyed with the real public key", tokenstest.Sign(t, jwt.SigningMethodHS256, claims(nil), key.ID, publicKey)},
		{"HS256 keyed with the published JWKS", tokenstest.Sign(t, jwt.SigningMethodHS256, claims(nil), key.ID, jwks)},
		{"ES256 under the EdDSA key's kid", tokenstest.Sign(t, jwt.SigningMethodES256, claims(nil), key.ID, otherEC)},
		{"the wrong audience", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), key.ID, key.Private)},
		{"the wrong issuer", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Issuer = "evil" }), key.ID, key.Private)},
		{"no expiry", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.ExpiresAt = nil }), key.ID, key.Private)},
		{"issued in the future", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) }), key.ID, key.Private)},
		{"a subject that is not a user id", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Subject = "1 OR 1=1" }), key.ID, key.Private)},
		{"subject zero", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Subject = "0" }), key.ID, key.Private)},
		{"an unknown kid", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(nil), "no-such-key", otherEd)},
		{"no kid", tokenstest.Sign(t, jwt.SigningMethodEdDSA, claims(nil), "", key.Private)},
		{"a real token with its payload swapped", swapPayload(t, alice.Token, claims(nil))},
		{"garbage", "not.a.jwt"},
	}
	var cases []hostileCase
	for _, f := range forged {
		cases = append(cases,
			hostileCase{name: "POST /products with " + f.name, method: "POST", path: "/products", body: validProduct,
				header: bearer(f.token), status: 401, message: httpx.MsgUnauthorized},
			hostileCase{name: "GET /orders with " + f.name, method: "GET", path: "/orders",
				header: bearer(f.token), status: 401, message: httpx.MsgUnauthorized})
	}
	cases = append(cases,
		hostileCase{name: "Authorization without Bearer", method: "POST", path: "/products", body: validProduct,
			header: http.Header{"Authorization": {"Token " + adminAPI.Token}}, status: 401, message: httpx.MsgUnauthorized},
		hostileCase{name: "a bad token on a public route", method: "GET", path: "/products",
			header: bearer("not.a.jwt"), status: 401, message: httpx.MsgUnauthorized},
		hostileCase{name: "no token on /orders", method: "GET", path: "/orders", status: 401, message: httpx.MsgUnauthorized},
	)

	// Identity headers are the gateway's to set, never the client's.
	spoofed := http.Header{
		identity.HeaderUserID: {"1"}, identity.HeaderEmail: {p.Admin}, identity.HeaderRoles: {"admin,customer"},
	}
	cases = append(cases,
		hostileCase{name: "admin identity headers without a token", method: "POST", path: "/products", body: validProduct,
			header: spoofed, status: 401, message: httpx.MsgUnauthorized},
		hostileCase{name: "a customer claiming the admin role by header", method: "POST", path: "/products", body: validProduct,
			header: with(as(alice), identity.HeaderRoles, "admin"), status: 403, message: httpx.MsgForbidden},
		hostileCase{name: "bob claiming alice's user id by header", method: "GET", path: fmt.Sprintf("/orders/%d", order.ID),
			header: with(as(bob), identity.HeaderUserID, strconv.FormatInt(aliceID, 10)), status: 404, message: "order not found"},
		hostileCase{name: "bob cancelling with alice's user id by header", method: "POST", path: "/orders/cancel",
			body:   fmt.Sprintf(`{"request_id":"spoof","order_id":%d}`, order.ID),
			header: with(as(bob), identity.HeaderUserID, strconv.FormatInt(aliceID, 10)), status: 404, message: "order not found"},
	)

	// Another user's order.
	cases = append(cases,
		hostileCase{name: "bob reads alice's order", method: "GET", path: fmt.Sprintf("/orders/%d", order.ID),
			header: as(bob), status: 404, message: "order not found"},
		hostileCase{name: "bob pays alice's order", method: "POST", path: "/orders/pay",
			body: fmt.Sprintf(`{"request_id":"bob-pay","order_id":%d}`, order.ID), header: as(bob), status: 404, message: "order not found"},
		hostileCase{name: "bob cancels alice's order", method: "POST", path: "/orders/cancel",
			body: fmt.Sprintf(`{"request_id":"bob-cancel","order_id":%d}`, order.ID), header: as(bob), status: 404, message: "order not found"},
		hostileCase{name: "bob's order list holds none of alice's", method: "GET", path: "/orders?status=PENDING",
			header: as(bob), status: 200, check: func(r apitest.Reply) error {
				var list []json.RawMessage
				if err := json.Unmarshal(r.Body.Data, &list); err != nil || len(list) != 0 {
					return fmt.Errorf("bob sees %s", r.Body.Data)
				}
				return nil
			}},
	)

	// Malformed, oversized and mistyped bodies, to an admin route and a customer route.
	for _, target := range []struct {
		path   string
		header http.Header
	}{{"/products", as(adminAPI)}, {"/orders", as(alice)}} {
		bad := func(name, contentType, body string, status int, message, field string) hostileCase {
			return hostileCase{name: "POST " + target.path + " " + name, method: "POST", path: target.path, header: target.header,
				contentType: contentType, body: body, status: status, message: message, field: field}
		}
		cases = append(cases,
			bad("with truncated JSON", "", `{"name":`, 400, httpx.MsgValidation, "body"),
			bad("with two JSON values", "", `{}{}`, 400, httpx.MsgValidation, "body"),
			bad("with an array instead of an object", "", `[1,2,3]`, 400, httpx.MsgValidation, "body"),
			bad("with no body", "application/json", "", 400, httpx.MsgMissingBody, ""),
			bad("with text/plain", "text/plain", validProduct, 415, httpx.MsgUnsupportedType, ""),
			bad("with form encoding", "application/x-www-form-urlencoded", "name=x&price=1", 415, httpx.MsgUnsupportedType, ""),
			bad("with 2 MiB of JSON", "", `{"name":"`+strings.Repeat("a", 2<<20)+`"}`, 413, httpx.MsgBodyTooLarge, ""),
			bad("nested 100 000 deep", "", strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000), 400, httpx.MsgValidation, "body"),
			bad("with an unknown field", "", `{"is_admin":true}`, 400, httpx.MsgValidation, "is_admin"),
			bad("with invalid UTF-8 and a NUL in a key", "", "{\"\xff\x00\":1}", 400, httpx.MsgValidation, ""),
		)
	}
	product := func(name, body string, field string) hostileCase {
		return hostileCase{name: "POST /products " + name, method: "POST", path: "/products", header: as(adminAPI),
			body: body, status: 400, message: httpx.MsgValidation, field: field}
	}
	productWith := func(field, value string) string {
		fields := map[string]string{"name": `"Hostile tea"`, "description": `"Black tea"`, "price": `"12.50"`, "quantity": "10"}
		fields[field] = value
		return fmt.Sprintf(`{"name":%s,"description":%s,"price":%s,"quantity":%s}`, fields["name"], fields["description"], fields["price"], fields["quantity"])
	}
	for _, c := range []struct{ field, value, why string }{
		{"name", `42`, "a number for the name"},
		{"name", `""`, "an empty name"},
		{"name", `null`, "a null name"},
		{"name", `"` + strings.Repeat("ü", 256) + `"`, "a 256-character name"},
		{"name", `"tea\u0000"`, "a NUL in the name"},
		{"description", `"black\u0000tea"`, "a NUL in the description"},
		{"description", `["tea"]`, "an array for the description"},
		{"price", `true`, "a boolean price"},
		{"price", `-1`, "a negative price"},
		{"price", `"-0.01"`, "a negative price as text"},
		{"price", `0`, "a zero price"},
		{"price", `"0.001"`, "three decimals"},
		{"price", `100000000`, "a price above the maximum"},
		{"price", `1e400`, "a price beyond float64"},
		{"price", `"1e2000000000"`, "an exponent bomb"},
		{"price", `"1e-2000000000"`, "a negative exponent bomb"},
		{"price", `"NaN"`, "NaN"},
		{"price", `"Infinity"`, "Infinity"},
		{"price", `"12,50"`, "a decimal comma"},
		{"price", `"12.50; DROP TABLE products"`, "SQL in the price"},
		{"quantity", `"10"`, "a string quantity"},
		{"quantity", `1.5`, "a fractional quantity"},
		{"quantity", `-1`, "a negative quantity"},
		{"quantity", `1000001`, "a quantity above the maximum"},
		{"quantity", `9223372036854775808`, "a quantity beyond int64"},
		{"quantity", `-9223372036854775809`, "a quantity below int64"},
	} {
		cases = append(cases, product("with "+c.why, productWith(c.field, c.value), c.field))
	}
	cases = append(cases, hostileCase{name: "PUT /products/:id with a negative price", method: "PUT", path: fmt.Sprintf("/products/%d", tea.ID),
		header: as(adminAPI), body: productWith("price", "-5"), status: 400, message: httpx.MsgValidation, field: "price"})

	// Replacing a product overwrites its stock, so only at the version read.
	for _, c := range []struct {
		why, ifMatch string
		status       int
		message      string
	}{
		{"without If-Match", "", 428, "precondition required"},
		{"with If-Match: *", "*", 428, "precondition required"},
		{"with the version before the reservation", `"1"`, 412, "product changed since it was read"},
		{"with the weak form of the current ETag", "W/" + teaETag, 412, "product changed since it was read"},
		{"with SQL as the ETag", `"1' OR '1'='1"`, 412, "product changed since it was read"},
	} {
		header := as(adminAPI)
		if c.ifMatch != "" {
			header = with(header, "If-Match", c.ifMatch)
		}
		cases = append(cases, hostileCase{name: "PUT /products/:id " + c.why, method: "PUT", path: teaPath,
			header: header, body: validProduct, status: c.status, message: c.message, field: "If-Match"})
	}

	orderBody := func(items string) string {
		return fmt.Sprintf(`{"request_id":"hostile-items","items":%s}`, items)
	}
	item := func(productID, quantity string) string {
		return fmt.Sprintf(`[{"product_id":%s,"quantity":%s}]`, productID, quantity)
	}
	id := strconv.FormatInt(tea.ID, 10)
	var fiftyOne []string
	for i := range 51 {
		fiftyOne = append(fiftyOne, fmt.Sprintf(`{"product_id":%d,"quantity":1}`, i+1))
	}
	for _, c := range []struct {
		why, body string
		status    int
		message   string
		field     string
	}{
		{"with items as an object", orderBody(`{}`), 400, httpx.MsgValidation, "items"},
		{"with no items", orderBody(`[]`), 400, httpx.MsgValidation, "items"},
		{"with 51 items", orderBody("[" + strings.Join(fiftyOne, ",") + "]"), 400, httpx.MsgValidation, "items"},
		{"with the same product twice", orderBody(`[{"product_id":` + id + `,"quantity":1},{"product_id":` + id + `,"quantity":1}]`), 400, httpx.MsgValidation, "items"},
		{"with a string quantity", orderBody(item(id, `"2"`)), 400, httpx.MsgValidation, "items.quantity"},
		{"with quantity zero", orderBody(item(id, "0")), 400, httpx.MsgValidation, "items[0].quantity"},
		{"with a negative quantity", orderBody(item(id, "-1")), 400, httpx.MsgValidation, "items[0].quantity"},
		{"with quantity 1001", orderBody(item(id, "1001")), 400, httpx.MsgValidation, "items[0].quantity"},
		{"with a quantity beyond int64", orderBody(item(id, "9223372036854775808")), 400, httpx.MsgValidation, "items.quantity"},
		{"with a quantity in exponent form", orderBody(item(id, "1e3")), 400, httpx.MsgValidation, "items.quantity"},
		{"with product id zero", orderBody(item("0", "1")), 400, httpx.MsgValidation, "items[0].product_id"},
		{"with a negative product id", orderBody(item("-7", "1")), 400, httpx.MsgValidation, "items[0].product_id"},
		{"with an unknown product", orderBody(item("9223372036854775807", "1")), 404, "product not found", ""},
		{"with more than the stock", orderBody(item(id, "1000")), 409, "insufficient product stock", ""},
		{"with a numeric request id", `{"request_id":7,"items":` + item(id, "1") + `}`, 400, httpx.MsgValidation, "request_id"},
		{"with a 65-character request id", `{"request_id":"` + strings.Repeat("r", 65) + `","items":` + item(id, "1") + `}`, 400, httpx.MsgValidation, "request_id"},
		{"with a NUL in the request id", `{"request_id":"a\u0000b","items":` + item(id, "1") + `}`, 400, httpx.MsgValidation, "request_id"},
		{"with a NUL in the description", validOrder(`,"description":"gift\u0000"`), 400, httpx.MsgValidation, "description"},
		{"with a 501-character description", validOrder(`,"description":"` + strings.Repeat("d", 501) + `"`), 400, httpx.MsgValidation, "description"},
		{"holding more units unpaid than a customer may", orderBody(item(strconv.FormatInt(rice.ID, 10), "11")), 409, "too many units in pending orders", "items"},
	} {
		cases = append(cases, hostileCase{name: "POST /orders " + c.why, method: "POST", path: "/orders", header: as(bob),
			body: c.body, status: c.status, message: c.message, field: c.field})
	}
	cases = append(cases, hostileCase{name: "POST /orders beyond the pending orders a customer may hold", method: "POST", path: "/orders", header: as(alice),
		body: orderBody(item(strconv.FormatInt(rice.ID, 10), "1")), status: 409, message: "too many pending orders", field: "items"})
	for _, c := range []struct{ why, body, field string }{
		{"a negative order id", `{"request_id":"p","order_id":-1}`, "order_id"},
		{"a string order id", `{"request_id":"p","order_id":"1"}`, "order_id"},
		{"no request id", fmt.Sprintf(`{"order_id":%d}`, order.ID), "request_id"},
	} {
		cases = append(cases, hostileCase{name: "POST /orders/pay with " + c.why, method: "POST", path: "/orders/pay", header: as(alice),
			body: c.body, status: 400, message: httpx.MsgValidation, field: c.field})
	}
	cases = append(cases, hostileCase{name: "POST /orders/pay for an order that does not exist", method: "POST", path: "/orders/pay", header: as(alice),
		body: `{"request_id":"p","order_id":9223372036854775807}`, status: 404, message: "order not found"})

	// Search text is data, never SQL or a LIKE pattern.
	noMatch := func(r apitest.Reply) error {
		if r.Body.Paging == nil || r.Body.Paging.TotalItem != 0 {
			return fmt.Errorf("matched products: %s", r.Raw)
		}
		return nil
	}
	for _, q := range []string{
		"' OR 1=1 --", "tea' OR '1'='1", "Robert'); DROP TABLE products;--", "%", "_", "%tea%", `\`,
		"☕ Ünïcødé 🚀", "\u202etea", "tea\u200b", strings.Repeat("𝕥", 255),
	} {
		cases = append(cases, hostileCase{name: "search for " + strconv.Quote(q), method: "GET",
			path: "/products?name=" + url.QueryEscape(q), status: 200, check: noMatch})
	}
	for _, c := range []struct{ why, query, field string }{
		{"a NUL", "name=tea%00", "name"},
		{"invalid UTF-8", "name=%FF%FE", "name"},
		{"a NUL in the description", "description=%00", "description"},
		{"a 256-character name", "name=" + strings.Repeat("a", 256), "name"},
		{"page zero", "page=0", "page"},
		{"a negative page", "page=-1", "page"},
		{"a page beyond int64", "page=99999999999999999999", "page"},
		{"page in exponent form", "page=1e3", "page"},
		{"limit 26", "limit=26", "limit"},
		{"limit zero", "limit=0", "limit"},
		{"SQL after the limit", "limit=10;DROP%20TABLE%20products", "query"},
	} {
		cases = append(cases, hostileCase{name: "search with " + c.why, method: "GET", path: "/products?" + c.query,
			status: 400, message: httpx.MsgValidation, field: c.field})
	}
	for _, c := range []struct{ why, query, field string }{
		{"a NUL in the status", "status=PAID%00", "status"},
		{"an unknown status", "status=PAID'--", "status"},
		{"an ISO date", "start-date=2026-11-01", "start-date"},
		{"the end before the start", "start-date=02-11-2026&end-date=01-11-2026", "end-date"},
		{"a page beyond int64", "page=99999999999999999999", "page"},
	} {
		cases = append(cases, hostileCase{name: "order list with " + c.why, method: "GET", path: "/orders?" + c.query, header: as(alice),
			status: 400, message: httpx.MsgValidation, field: c.field})
	}

	// Ids in paths are numbers; anything else is refused before any lookup.
	for _, c := range []struct {
		why, path string
		header    http.Header
		status    int
		message   string
	}{
		{"an escaped path traversal", "/products/..%2F..%2Fetc%2Fpasswd", nil, 404, httpx.MsgRouteNotFound},
		{"escaped dots", "/products/%2e%2e", nil, 400, "expected a numeric value but got '..'"},
		{"SQL", "/products/1%20OR%201=1", nil, 400, "expected a numeric value but got '1 OR 1=1'"},
		{"hexadecimal", "/products/0x10", nil, 400, "expected a numeric value but got '0x10'"},
		{"an id beyond int64", "/products/99999999999999999999", nil, 400, "expected a numeric value but got '99999999999999999999'"},
		{"a negative id", "/products/-1", nil, 404, "product not found"},
		{"an order id with traversal", "/orders/..%2F1", as(alice), 404, httpx.MsgRouteNotFound},
		{"another user's order id, negated", fmt.Sprintf("/orders/-%d", order.ID), as(bob), 404, "order not found"},
		{"a traversal out of /auth into /orders", "/auth/../orders", nil, 404, httpx.MsgRouteNotFound},
		{"an escaped traversal out of /auth into /orders", "/auth/..%2Forders", nil, 404, httpx.MsgRouteNotFound},
	} {
		cases = append(cases, hostileCase{name: "GET with " + c.why, method: "GET", path: c.path, header: c.header, status: c.status, message: c.message})
	}
	cases = append(cases,
		hostileCase{name: "PUT /products/abc", method: "PUT", path: "/products/abc", header: as(adminAPI), body: validProduct,
			status: 400, message: "expected a numeric value but got 'abc'"},
		hostileCase{name: "DELETE /products/1;DROP", method: "DELETE", path: "/products/1;DROP", header: as(adminAPI),
			status: 400, message: "expected a numeric value but got '1;DROP'"},
		hostileCase{name: "DELETE a product that does not exist", method: "DELETE", path: "/products/9223372036854775807", header: as(adminAPI),
			status: 404, message: "product not found"},
	)

	// Auth: addresses and passwords that are not what they claim.
	for _, c := range []struct {
		why, path, body string
		status          int
		message, field  string
	}{
		{"an address that is not one", "/auth/register", `{"email":"not-an-email","password":"password1"}`, 400, httpx.MsgValidation, "email"},
		{"a 7-character password", "/auth/register", `{"email":"new@example.com","password":"short12"}`, 400, httpx.MsgValidation, "password"},
		{"a 25-character, 75-byte password", "/auth/register", `{"email":"new@example.com","password":"` + strings.Repeat("€", 25) + `"}`, 400, httpx.MsgValidation, "password"},
		{"a 256-character address", "/auth/register", `{"email":"` + strings.Repeat("a", 244) + `@example.com","password":"password1"}`, 400, httpx.MsgValidation, "email"},
		{"a NUL in the address", "/auth/register", `{"email":"new\u0000@example.com","password":"password1"}`, 400, httpx.MsgValidation, "email"},
		{"SQL as the address", "/auth/login", `{"email":"' OR '1'='1","password":"x"}`, 400, httpx.MsgValidation, "email"},
		{"SQL after a real address", "/auth/login", `{"email":"` + p.Admin + `' --","password":"x"}`, 400, httpx.MsgValidation, "email"},
		{"the wrong password", "/auth/login", `{"email":"` + aliceEmail + `","password":"' OR '1'='1"}`, 401, "", ""},
		{"the admin's address in capitals and the wrong password", "/auth/login", `{"email":"` + strings.ToUpper(p.Admin) + `","password":"password1"}`, 401, "", ""},
		{"a code with a letter", "/auth/verify", `{"email":"` + aliceEmail + `","verification_token":"12345a"}`, 400, httpx.MsgValidation, "verification_token"},
		{"a code for a verified account", "/auth/verify", `{"email":"` + aliceEmail + `","verification_token":"123456"}`, 400, "token is wrong or expired", ""},
		{"a reset code never asked for", "/auth/reset-password", `{"email":"` + strings.ToUpper(p.Admin) + `","reset_token":"123456","password":"taken-over"}`, 400, "token is wrong or expired", ""},
		{"a reset code with a sign", "/auth/reset-password", `{"email":"` + aliceEmail + `","reset_token":"+12345","password":"taken-over"}`, 400, httpx.MsgValidation, "reset_token"},
		{"a deletion with the wrong password", "/auth/delete-account", `{"email":"` + aliceEmail + `","password":"password1"}`, 401, "", ""},
		{"a resend with a wrong type", "/auth/resend-verification", `{"email":["` + aliceEmail + `"]}`, 400, httpx.MsgValidation, "email"},
	} {
		cases = append(cases, hostileCase{name: "POST " + c.path + " with " + c.why, method: "POST", path: c.path,
			body: c.body, status: c.status, message: c.message, field: c.field})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.send(t, p.Gateway)
			if r.Status != c.status || (c.message != "" && r.Body.Message != c.message) {
				t.Fatalf("got %d %q, want %d %q\n%.600s", r.Status, r.Body.Message, c.status, c.message, r.Raw)
			}
			if r.Status >= 400 {
				if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Body.Message == "" {
					t.Errorf("the %d is not the error envelope: %q %.300s", r.Status, r.Header.Get("Content-Type"), r.Raw)
				}
				if r.Header.Get(httpx.HeaderRequestID) == "" {
					t.Error("no X-Request-ID on the answer")
				}
			}
			if c.field != "" && r.FirstError() != c.field {
				t.Errorf("errors name %q first, want %q: %s", r.FirstError(), c.field, r.Raw)
			}
			if c.check != nil {
				if err := c.check(r); err != nil {
					t.Error(err)
				}
			}
			if changed := before.changes(databases.snapshot(t)); len(changed) > 0 {
				t.Fatalf("the request changed the databases:\n%s", strings.Join(changed, "\n"))
			}
		})
	}
	t.Logf("%d hostile requests, every database unchanged", len(cases))

	// Positive controls: the bodies and routes above are valid except for what
	// each case broke, so the real credentials succeed with them.
	for _, control := range []hostileCase{
		// First: bob's order below reserves tea, which changes its version.
		{name: "the admin replaces the tea at the version read", method: "PUT", path: teaPath, body: validProduct,
			header: with(as(adminAPI), "If-Match", teaETag), status: 200},
		{name: "the admin creates the product", method: "POST", path: "/products", body: validProduct, header: as(adminAPI), status: 201},
		{name: "bob places an order", method: "POST", path: "/orders", body: validOrder(""), header: as(bob), status: 201},
		{name: "alice reads her order", method: "GET", path: fmt.Sprintf("/orders/%d", order.ID), header: as(alice), status: 200},
		{name: "the search finds the tea", method: "GET", path: "/products?name=" + url.QueryEscape("hostile TEA"), status: 200},
	} {
		if r := control.send(t, p.Gateway); r.Status != control.status {
			t.Errorf("control %q: got %d, want %d: %.300s", control.name, r.Status, control.status, r.Raw)
		}
	}
}

func (c hostileCase) send(t *testing.T, gw *apitest.Client) apitest.Reply {
	t.Helper()
	contentType := c.contentType
	if contentType == "" && c.body != "" {
		contentType = "application/json"
	}
	var body []byte
	if c.body != "" {
		body = []byte(c.body)
	}
	return gw.Send(t, c.method, c.path, contentType, body, c.header)
}

// settle waits until the background work the set-up caused (outbox relays,
// consumers, e-mails) has finished, which shows as two equal snapshots in a row.
func settle(t *testing.T, databases databaseSet) dataSnapshot {
	t.Helper()
	var snap dataSnapshot
	testenv.WaitFor(t, 30*time.Second, "the databases to stop changing", func() bool {
		first := databases.snapshot(t)
		time.Sleep(time.Second)
		snap = databases.snapshot(t)
		return len(first.changes(snap)) == 0
	})
	return snap
}

// subjectOf reads a token's user id without verifying it: the test got the
// token from auth itself.
func subjectOf(t *testing.T, token string) int64 {
	t.Helper()
	var c tokens.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// swapPayload keeps a real token's header and signature and replaces its claims.
func swapPayload(t *testing.T, token string, c tokens.Claims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}
