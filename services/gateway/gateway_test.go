package gateway_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/telemetry"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/platform/tokens/tokenstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestMain(m *testing.M) {
	// A real tracer provider, so trace context has something to carry.
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "gateway-test", SampleRatio: 1})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = tel.Shutdown(context.Background())
	os.Exit(code)
}

// upstream is a real HTTP server standing in for a service: it records what
// reached it and answers as told.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
	// answer writes the response; nil answers 200 {"data":{"ok":true}}.
	answer func(w http.ResponseWriter, r *http.Request)
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		answer := u.answer
		u.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		_, _ = w.Write([]byte(`{"data":{"ok":true}}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last(t testing.TB) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the upstream was not called")
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

type world struct {
	auth, product, order *upstream
	key                  tokens.Key
	identityKeys         tokens.KeySet // the gateway's own, for the services
	cfg                  gateway.Config
	registry             *prometheus.Registry
	// metrics is each started gateway's metrics port.
	metrics map[*apitest.Client]*apitest.Client

	jwksMu sync.Mutex
	// published is the key set auth serves; jwksDelay holds each answer that
	// long (an auth slow under load); jwksAsked counts the requests for it.
	published []tokens.Key
	jwksDelay time.Duration
	jwksAsked int
}

func (w *world) jwksRequests() int {
	w.jwksMu.Lock()
	defer w.jwksMu.Unlock()
	return w.jwksAsked
}

// publish changes the key set auth serves.
func (w *world) publish(delay time.Duration, keys ...tokens.Key) {
	w.jwksMu.Lock()
	defer w.jwksMu.Unlock()
	w.published, w.jwksDelay = keys, delay
}

// newWorld serves the auth upstream's JWKS from a real key and returns a config
// pointing the gateway at the three upstreams.
func newWorld(t testing.TB) *world {
	t.Helper()
	key, err := tokens.GenerateKey(tokens.EdDSA, time.Now(), time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	identityKeys, err := identity.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{auth: newUpstream(t), product: newUpstream(t), order: newUpstream(t), key: key, published: []tokens.Key{key}, identityKeys: identityKeys}
	w.auth.answer = func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/.well-known/jwks.json" {
			w.jwksMu.Lock()
			w.jwksAsked++
			jwks, _ := tokens.KeySet{Keys: w.published}.Public().MarshalJWKS(false)
			delay := w.jwksDelay
			w.jwksMu.Unlock()
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
			_, _ = rw.Write(jwks)
			return
		}
		_, _ = rw.Write([]byte(`{"data":{"path":"` + r.URL.Path + `"}}`))
	}
	w.cfg = gateway.Config{
		ShutdownTimeout: 5 * time.Second,
		Redis:           redisx.Config{Addrs: []string{testenv.RedisAddr(t)}},
		AuthURL:         w.auth.URL, ProductURL: w.product.URL, OrderURL: w.order.URL,
		AuthTimeout: 5 * time.Second, ProductTimeout: 5 * time.Second, OrderTimeout: 5 * time.Second,
		TokenIssuer: "kshop-auth", TokenAudience: "kshop", TokenCache: 4096,
		Identity:   identity.IssuerConfig{Keys: tokens.Static(identityKeys), TTL: time.Minute},
		RateLimits: "auth=1000/s,products=1000/s,orders=1000/s",
		BodyLimit:  1 << 20,
	}
	return w
}

func (w *world) start(t testing.TB) *apitest.Client {
	t.Helper()
	cfg := w.cfg
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w.registry = prometheus.NewRegistry()
	app, err := gateway.New(cfg, quiet, w.registry)
	if err != nil {
		t.Fatal(err)
	}
	gw := apitest.Start(t, app.Serve)
	if w.metrics == nil {
		w.metrics = map[*apitest.Client]*apitest.Client{}
	}
	w.metrics[gw] = apitest.Run(t, app.ServeMetrics)
	return gw
}

// scrape reads gw's metrics from its metrics port.
func (w *world) scrape(t testing.TB, gw *apitest.Client) apitest.Reply {
	t.Helper()
	return call(t, w.metrics[gw], http.MethodGet, "/metrics", "", nil).Expect(t, http.StatusOK, "")
}

// The API port does not serve the metrics; the metrics port serves nothing else.
func TestMetricsOnTheirOwnPort(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	call(t, gw, http.MethodGet, "/products", "", nil).Expect(t, http.StatusOK, "")
	call(t, gw, http.MethodGet, "/metrics", "", nil).Expect(t, http.StatusNotFound, "route not found")
	if text := string(w.scrape(t, gw).Raw); !strings.Contains(text, `http_requests_total{method="GET",route="/products",service="gateway",status="200"} 1`) {
		t.Fatalf("the metrics port does not count the API's requests:\n%s", text)
	}
	call(t, w.metrics[gw], http.MethodGet, "/products", "", nil).Expect(t, http.StatusNotFound, "route not found")
	call(t, w.metrics[gw], http.MethodGet, "/healthz", "", nil).Expect(t, http.StatusNotFound, "route not found")
}

func (w *world) token(t testing.TB, userID int64, roles ...string) string {
	t.Helper()
	return signedBy(t, w.key, userID, roles...)
}

func signedBy(t testing.TB, key tokens.Key, userID int64, roles ...string) string {
	t.Helper()
	signer := &tokens.Signer{Keys: tokens.Static(tokens.KeySet{Keys: []tokens.Key{key}}), Issuer: "kshop-auth", Audience: "kshop", TTL: time.Hour}
	token, _, err := signer.Sign(tokens.Identity{Subject: fmt.Sprint(userID), Email: fmt.Sprintf("user%d@example.com", userID), Roles: append([]string{"customer"}, roles...)})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func call(t testing.TB, c *apitest.Client, method, path, token string, header map[string]string) apitest.Reply {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		h.Set(k, v)
	}
	var body []byte
	contentType := ""
	if method == http.MethodPost || method == http.MethodPut {
		body, contentType = []byte(`{}`), "application/json"
	}
	return c.Send(t, method, path, contentType, body, h)
}

func TestRoutesIdentityAndHeaders(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	// A token the gateway really signed, for another user: a client replaying
	// one it captured must not get it through.
	captured, err := (&identity.Issuer{Keys: tokens.Static(w.identityKeys), TTL: time.Minute}).Token(identity.User{ID: 1, Roles: []string{"admin"}}, "product")
	if err != nil {
		t.Fatal(err)
	}
	spoof := map[string]string{"X-User-ID": "1", "X-User-Roles": "admin", "X-User-Email": "root@example.com", "X-Forwarded-For": "10.9.9.9",
		identity.HeaderToken: captured}

	call(t, gw, http.MethodGet, "/products/5?x=1", "", spoof).Expect(t, http.StatusOK, "")
	seen := w.product.last(t)
	if seen.URL.Path != "/products/5" || seen.URL.RawQuery != "x=1" {
		t.Fatalf("upstream got %s", seen.URL)
	}
	for _, h := range identity.Headers {
		if v := seen.Header.Get(h); v != "" {
			t.Fatalf("a spoofed %s=%q reached the upstream", h, v)
		}
	}
	if xff := seen.Header.Get("X-Forwarded-For"); strings.Contains(xff, "10.9.9.9") || !strings.HasPrefix(xff, "127.0.0.1") {
		t.Fatalf("X-Forwarded-For %q: the client's own value must be replaced by its address", xff)
	}

	token := w.token(t, 42)
	r := call(t, gw, http.MethodGet, "/orders/7", token, map[string]string{"X-User-ID": "1", identity.HeaderToken: captured, "X-Request-ID": "trace-me-123"}).Expect(t, http.StatusOK, "")
	seen = w.order.last(t)
	if seen.Header.Get("X-User-ID") != "42" || seen.Header.Get("X-User-Email") != "user42@example.com" || seen.Header.Get("X-User-Roles") != "customer" {
		t.Fatalf("identity upstream: %v", seen.Header)
	}
	// The identity reaches the order service signed by the gateway's key, for
	// the order service only.
	for audience, valid := range map[string]bool{"order": true, "product": false} {
		verifier := &tokens.Verifier{Keys: tokens.KeySetLookup{Source: tokens.Static(w.identityKeys.Public())}, Issuer: identity.TokenIssuer, Audience: audience}
		claims, err := verifier.Verify(context.Background(), seen.Header.Get(identity.HeaderToken))
		if valid && (err != nil || claims.Subject != "42" || claims.Email != "user42@example.com" || !slices.Equal(claims.Roles, []string{"customer"})) {
			t.Fatalf("identity token for the order service: %+v, %v", claims, err)
		}
		if !valid && err == nil {
			t.Fatalf("the order service's identity token is accepted by the %s service", audience)
		}
	}
	if seen.Header.Get("X-Request-ID") != "trace-me-123" || r.Header.Values("X-Request-ID")[0] != "trace-me-123" || len(r.Header.Values("X-Request-ID")) != 1 {
		t.Fatalf("request id: upstream %q, response %q", seen.Header.Get("X-Request-ID"), r.Header.Values("X-Request-ID"))
	}
	if seen.Header.Get("Traceparent") == "" {
		t.Error("no trace context passed upstream")
	}
	if seen.Header.Get("Authorization") == "" {
		t.Error("the token should reach the upstream too")
	}

	auth := call(t, gw, http.MethodPost, "/auth/login", "", nil).Expect(t, http.StatusOK, "")
	if !strings.Contains(string(auth.Raw), `"path":"/login"`) {
		t.Fatalf("/auth prefix not stripped: %s", auth.Raw)
	}

	call(t, gw, http.MethodGet, "/orders", "", nil).Expect(t, http.StatusUnauthorized, "unauthorized")
	call(t, gw, http.MethodPost, "/products", token, nil).Expect(t, http.StatusForbidden, "forbidden")
	before := w.product.calls()
	call(t, gw, http.MethodPost, "/products", w.token(t, 1, "admin"), nil).Expect(t, http.StatusOK, "")
	if w.product.calls() != before+1 || w.product.last(t).Header.Get("X-User-Roles") != "customer,admin" {
		t.Fatal("an admin's write did not reach the product service as admin")
	}
	call(t, gw, http.MethodGet, "/nowhere", "", nil).Expect(t, http.StatusNotFound, "route not found")
	call(t, gw, http.MethodPatch, "/products/1", "", nil).Expect(t, http.StatusMethodNotAllowed, "")
}

func TestHostileTokensAreRefused(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	now := time.Now()
	claims := func(mutate func(*tokens.Claims)) tokens.Claims { return tokenstest.Claims(now, mutate) }
	sign := func(method jwt.SigningMethod, c tokens.Claims, kid string, secret any) string {
		return tokenstest.Sign(t, method, c, kid, secret)
	}
	other, _ := tokens.GenerateKey(tokens.EdDSA, now, now)
	for name, token := range map[string]string{
		"forged with another key":   sign(jwt.SigningMethodEdDSA, claims(nil), w.key.ID, other.Private),
		"expired":                   sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }), w.key.ID, w.key.Private),
		"alg none":                  sign(jwt.SigningMethodNone, claims(nil), w.key.ID, jwt.UnsafeAllowNoneSignatureType),
		"HS256 with the public key": sign(jwt.SigningMethodHS256, claims(nil), w.key.ID, []byte(w.key.Public.(ed25519.PublicKey))),
		"wrong audience":            sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), w.key.ID, w.key.Private),
		"wrong issuer":              sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Issuer = "evil" }), w.key.ID, w.key.Private),
		"non-numeric subject":       sign(jwt.SigningMethodEdDSA, claims(func(c *tokens.Claims) { c.Subject = "admin" }), w.key.ID, w.key.Private),
		"garbage":                   "not-a-jwt",
	} {
		t.Run(name, func(t *testing.T) {
			before := w.order.calls() + w.product.calls()
			call(t, gw, http.MethodGet, "/orders", token, nil).Expect(t, http.StatusUnauthorized, "unauthorized")
			// A bad token is refused even where no token is needed.
			call(t, gw, http.MethodGet, "/products", token, nil).Expect(t, http.StatusUnauthorized, "unauthorized")
			if after := w.order.calls() + w.product.calls(); after != before {
				t.Fatal("a refused request reached an upstream")
			}
		})
	}
	r := gw.Send(t, http.MethodGet, "/orders", "", nil, http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}})
	r.Expect(t, http.StatusUnauthorized, "unauthorized")
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

func TestRateLimitHoldsAcrossTwoGateways(t *testing.T) {
	w := newWorld(t)
	w.cfg.RateLimits = "orders=5/m,products=1000/s,auth=1000/s"
	first, second := w.start(t), w.start(t)
	user := time.Now().UnixNano() % 1_000_000_000 // fresh counters on a shared Redis
	token := w.token(t, user)
	statuses := map[int]int{}
	var limited apitest.Reply
	for i := range 10 {
		gw := first
		if i%2 == 1 {
			gw = second
		}
		r := call(t, gw, http.MethodGet, "/orders", token, nil)
		statuses[r.Status]++
		if r.Status == http.StatusTooManyRequests {
			limited = r
		} else if r.Header.Get("RateLimit-Limit") != "5" || r.Header.Get("RateLimit-Remaining") == "" {
			t.Fatalf("RateLimit headers %v", r.Header)
		}
	}
	if statuses[http.StatusOK] != 5 || statuses[http.StatusTooManyRequests] != 5 {
		t.Fatalf("statuses %v, want 5 allowed and 5 limited across both gateways", statuses)
	}
	if limited.Header.Get("Retry-After") == "" || limited.Header.Get("RateLimit-Remaining") != "0" || limited.Body.Message != "too many requests" {
		t.Fatalf("429 answer: %v %s", limited.Header, limited.Raw)
	}
	// Another user has a budget of their own.
	call(t, first, http.MethodGet, "/orders", w.token(t, user+1), nil).Expect(t, http.StatusOK, "")
}

// TestLeasedTokensHoldTheSharedLimitAcrossTwoGateways: one client hammers two
// gateways on one Redis with 4 requests in flight on each, so both replicas
// lease tokens of its bucket at once. The bucket is fresh and its period a
// minute, so the test runs inside one window: the GCRA of Redis alone would
// admit at most burst + rate·elapsed/period, and the replicas together must
// admit no more (every admitted request spent a token Redis granted); they
// must admit at least burst − R·leaseCap (R = 2 replicas, each holding at most
// one lease when the test stops; docs/gateway.md, Rate limits). The leases
// must also have saved round trips: fewer leases than admitted requests.
func TestLeasedTokensHoldTheSharedLimitAcrossTwoGateways(t *testing.T) {
	const limit, leaseCap, replicas, perGateway, inFlight = 400, 20, 2, 600, 4
	w := newWorld(t)
	w.cfg.RateLimits = fmt.Sprintf("products=%d/m,orders=1000/s,auth=1000/s", limit)
	first := w.start(t)
	firstRegistry := w.registry
	second := w.start(t)
	secondRegistry := w.registry
	client := randomAddress(127) // one client address, a fresh bucket
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for _, gw := range []*apitest.Client{connectingFrom(first, client), connectingFrom(second, client)} {
		var sent atomic.Int64
		for range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for sent.Add(1) <= perGateway {
					r := call(t, gw, http.MethodGet, "/products", "", nil)
					switch r.Status {
					case http.StatusOK:
						admitted.Add(1)
					case http.StatusTooManyRequests:
						if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Remaining") != "0" {
							t.Errorf("429 without Retry-After or with RateLimit-Remaining %q", r.Header.Get("RateLimit-Remaining"))
						}
						refused.Add(1)
					default:
						t.Errorf("status %d: %s", r.Status, r.Raw)
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(began)
	most := limit + int64(math.Ceil(limit*elapsed.Seconds()/60))
	least := int64(limit - replicas*leaseCap)
	t.Logf("%d admitted, %d refused in %v (bounds %d..%d)", admitted.Load(), refused.Load(), elapsed, least, most)
	if admitted.Load() > most || admitted.Load() < least {
		t.Fatalf("%d admitted in %v; want between %d and %d", admitted.Load(), elapsed, least, most)
	}
	if refused.Load() == 0 {
		t.Fatal("nothing refused: the test did not reach the limit")
	}
	leases := counterValue(t, firstRegistry, "kshop_gateway_rate_limit_leases_total", map[string]string{"group": "products"}) +
		counterValue(t, secondRegistry, "kshop_gateway_rate_limit_leases_total", map[string]string{"group": "products"})
	t.Logf("%v round trips to Redis", leases)
	if leases == 0 || leases >= float64(admitted.Load()) {
		t.Fatalf("%v round trips to Redis for %d admitted requests; the leases saved none", leases, admitted.Load())
	}
}

func TestRedisDownFailsOpenOrClosed(t *testing.T) {
	w := newWorld(t)
	w.cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	open := w.start(t)
	call(t, open, http.MethodGet, "/products", "", nil).Expect(t, http.StatusOK, "")
	metrics := w.scrape(t, open)
	if !strings.Contains(string(metrics.Raw), "kshop_gateway_rate_limiter_errors_total 1") {
		t.Fatal("the fail-open request was not counted")
	}
	w.cfg.RateLimitFailClosed = true
	closed := w.start(t)
	call(t, closed, http.MethodGet, "/products", "", nil).Expect(t, http.StatusServiceUnavailable, "rate limiter unavailable")
}

func TestDeadUpstreamIs502AndSlowUpstreamIs504(t *testing.T) {
	w := newWorld(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	w.cfg.ProductURL = deadURL
	w.cfg.OrderTimeout = 300 * time.Millisecond
	release := make(chan struct{})
	w.order.answer = func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	defer close(release)
	gw := w.start(t)

	started := time.Now()
	call(t, gw, http.MethodGet, "/products/1", "", nil).Expect(t, http.StatusBadGateway, "upstream unavailable")
	if elapsed := time.Since(started); elapsed > w.cfg.ProductTimeout {
		t.Fatalf("502 after %v: a refused connection must not wait for the timeout", elapsed)
	}
	call(t, gw, http.MethodGet, "/orders", w.token(t, 5), nil).Expect(t, http.StatusGatewayTimeout, "upstream timed out")
	metrics := string(w.scrape(t, gw).Raw)
	for _, want := range []string{`kshop_gateway_upstream_errors_total{kind="unavailable",upstream="product"} 1`, `kshop_gateway_upstream_errors_total{kind="timeout",upstream="order"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// stoppingUpstream answers the first request on each connection and hangs
// up on the next one without an answer, after reading it: what a server
// that shuts down does to an idle kept-alive connection at the moment a
// request leaves on it.
type stoppingUpstream struct {
	net.Listener
	mu     sync.Mutex
	bodies []string // every body read, in order
}

func newStoppingUpstream(t *testing.T) *stoppingUpstream {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &stoppingUpstream{Listener: listener}
	t.Cleanup(func() { _ = listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go u.serve(conn)
		}
	}()
	return u
}

func (u *stoppingUpstream) serve(conn net.Conn) {
	defer conn.Close()
	reader := bufio.NewReader(conn)
	for served := 0; ; served++ {
		req, err := http.ReadRequest(reader)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.bodies = append(u.bodies, string(body))
		u.mu.Unlock()
		if served > 0 {
			return
		}
		answer := `{"data":{"ok":true}}`
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
	}
}

func (u *stoppingUpstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.bodies)
}

// A POST its client marked idempotent is sent again on a fresh connection
// when the kept-alive one it went out on was closed under it (an order pod
// stopping during a rollout): the rolling upgrade's load saw a 502 for an
// order there. Without the mark the gateway may not repeat a POST, and that
// stays a 502.
func TestAnIdempotentRequestSurvivesAnUpstreamClosingItsConnection(t *testing.T) {
	w := newWorld(t)
	stopping := newStoppingUpstream(t)
	w.cfg.OrderURL = "http://" + stopping.Addr().String()
	gw := w.start(t)
	token := w.token(t, 5)
	post := func(body string, header http.Header) apitest.Reply {
		header.Set("Authorization", "Bearer "+token)
		return gw.Send(t, http.MethodPost, "/orders", "application/json", []byte(body), header)
	}

	post(`{"request_id":"first"}`, http.Header{"Idempotency-Key": {"first"}}).Expect(t, http.StatusOK, "")
	post(`{"request_id":"second"}`, http.Header{"Idempotency-Key": {"second"}}).Expect(t, http.StatusOK, "")
	want := []string{`{"request_id":"first"}`, `{"request_id":"second"}`, `{"request_id":"second"}`}
	if got := stopping.received(); !slices.Equal(got, want) {
		t.Fatalf("the upstream read %q, want %q: the second order sent on the kept-alive connection, then whole again on a new one", got, want)
	}

	post(`{"request_id":"third"}`, http.Header{}).Expect(t, http.StatusBadGateway, "upstream unavailable")
	if got := stopping.received(); len(got) != 4 {
		t.Fatalf("the upstream read %q: a POST without Idempotency-Key must be sent once", got)
	}

	// Only small bodies are kept in memory; a larger one of undeclared
	// length streams on whole, after what was read of it, and is still held
	// to the body limit.
	postChunked := func(body string) int {
		req, _ := http.NewRequest(http.MethodPost, gw.Base+"/orders", io.NopCloser(strings.NewReader(body)))
		req.Header = http.Header{"Idempotency-Key": {"large"}, "Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
		resp, err := gw.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	large := `{"request_id":"` + strings.Repeat("x", 100<<10) + `"}`
	if status, got := postChunked(large), stopping.received(); status != http.StatusOK || len(got) != 5 || got[4] != large {
		t.Fatalf("a chunked body of 100 KiB: %d, the upstream read %d bodies; want 200 and the body whole", status, len(got))
	}
	tooLarge := `{"request_id":"` + strings.Repeat("x", 2<<20) + `"}`
	if status, got := postChunked(tooLarge), stopping.received(); status != http.StatusRequestEntityTooLarge || len(got) != 5 {
		t.Fatalf("a chunked body over the limit: %d, the upstream read %d bodies; want 413 and nothing whole sent", status, len(got))
	}
}

// A marked body that cannot be read is the client's doing, never an
// upstream error: a body cut short by a client that went away is 499, one
// that is not valid HTTP is 400, and the upstream sees neither.
func TestUnreadableMarkedBodiesAreTheClientsFault(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	token := w.token(t, 5)
	send := func(framing, body string) string {
		conn, err := net.Dial("tcp", strings.TrimPrefix(gw.Base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(conn, "POST /orders HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nIdempotency-Key: k\r\n%s\r\n\r\n%s", token, framing, body)
		_ = conn.(*net.TCPConn).CloseWrite() // the client sends nothing more
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		status, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("no answer to %q: %v", framing, err)
		}
		return strings.TrimSpace(status)
	}
	if status := send("Content-Length: 100", `{"request_id":"cut"`); status != "HTTP/1.1 499 status code 499" {
		t.Errorf("a body cut short: %q, want 499", status)
	}
	if status := send("Transfer-Encoding: chunked", "5\r\n{\"a\":\r\nzz\r\n"); !strings.HasPrefix(status, "HTTP/1.1 400") {
		t.Errorf("a malformed chunked body: %q, want 400", status)
	}
	if n := w.order.calls(); n != 0 {
		t.Errorf("the upstream was called %d times", n)
	}
	testenv.WaitFor(t, 5*time.Second, "both requests to be counted", func() bool {
		return counterValue(t, w.registry, "http_requests_total", map[string]string{"route": "/orders"}) == 2
	})
	if n := counterValue(t, w.registry, "kshop_gateway_upstream_errors_total", nil); n != 0 {
		t.Errorf("the client's unreadable bodies were counted as %v upstream errors", n)
	}
}

// A client that hangs up while the upstream works is counted as 499 (client
// closed request): neither a success nor an upstream error, so the error-rate
// alerts, which read 5xx, are not raised by impatient clients.
func TestClientThatHangsUpIsCountedAs499(t *testing.T) {
	w := newWorld(t)
	answered := make(chan struct{})
	w.order.answer = func(rw http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the gateway cancels the upstream call when its client goes
		close(answered)
	}
	gw := w.start(t)
	impatient := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, gw.Base+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+w.token(t, 5))
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the slow upstream answered %d", resp.StatusCode)
	}
	<-answered
	testenv.WaitFor(t, 5*time.Second, "the hang-up to be counted", func() bool {
		return counterValue(t, w.registry, "http_requests_total", map[string]string{"route": "/orders", "status": "499"}) == 1
	})
	for _, status := range []string{"200", "500", "502"} {
		if n := counterValue(t, w.registry, "http_requests_total", map[string]string{"route": "/orders", "status": status}); n != 0 {
			t.Errorf("the hang-up was also counted as %s (%v)", status, n)
		}
	}
	if n := counterValue(t, w.registry, "kshop_gateway_upstream_errors_total", nil); n != 0 {
		t.Errorf("the hang-up was counted as %v upstream errors", n)
	}
}

// counterValue sums the counter name's series whose labels include want.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestLargeResponsesStreamThrough(t *testing.T) {
	w := newWorld(t)
	firstPartSeen := make(chan struct{})
	w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/octet-stream")
		chunk := strings.Repeat("x", 256<<10)
		_, _ = io.WriteString(rw, chunk)
		rw.(http.Flusher).Flush()
		// The rest only comes once the client has the first part: a gateway
		// that buffered the whole response would wait here for ever.
		select {
		case <-firstPartSeen:
		case <-time.After(10 * time.Second):
			return
		}
		for range 32 {
			_, _ = io.WriteString(rw, chunk)
		}
	}
	gw := w.start(t)
	resp, err := http.Get(gw.Base + "/products/1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 256<<10)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, buf); got <- err }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first part did not arrive while the upstream was still writing: the gateway buffers responses")
	}
	close(firstPartSeen)
	rest, err := io.Copy(io.Discard, resp.Body)
	if err != nil || rest != 32*256<<10 {
		t.Fatalf("rest of the body: %d bytes, %v", rest, err)
	}
}

// Proxying a response reuses the buffer its body is copied through: without
// a pool, httputil.ReverseProxy allocates 32 KiB for every response, which
// was most of the gateway's garbage. From an empty pool, 200 responses make
// a buffer or two (about 50 under -race, where sync.Pool drops a quarter of
// what is put back), never one each.
func TestProxyingReusesTheCopyBuffer(t *testing.T) {
	w := newWorld(t)
	w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"data":{"id":1}}`))
	}
	gw := w.start(t)
	client := &http.Client{}
	get := func() {
		resp, err := client.Get(gw.Base + "/products/1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for range 50 { // connections, pools and caches settle
		get()
	}
	const requests = 200
	made, restore := gateway.CountCopyBuffers()
	defer restore()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range requests {
		get()
	}
	runtime.ReadMemStats(&after)
	t.Logf("%d buffers made for %d responses; %d bytes allocated per proxied request, client and upstream included",
		made(), requests, (after.TotalAlloc-before.TotalAlloc)/requests)
	if n := made(); n == 0 || n > requests/2 {
		t.Errorf("%d copy buffers made from the pool for %d responses: want at least one (the proxy uses the pool) and far fewer than the responses (it reuses them)", n, requests)
	}
}

// Each proxied request is a client span of its own between the gateway's
// server span and the upstream's: the upstream receives the client span as its
// parent, and the span carries the upstream's answer.
func TestTheUpstreamHopIsAClientSpan(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	provider.RegisterSpanProcessor(recorder)
	defer provider.UnregisterSpanProcessor(recorder)
	w := newWorld(t)
	w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = rw.Write([]byte(`{"message":"busy"}`))
	}
	gw := w.start(t)
	call(t, gw, http.MethodGet, "/products/1", "", nil).Expect(t, http.StatusServiceUnavailable, "busy")

	upstreamParent := oteltrace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(w.product.last(t).Header)))
	if !upstreamParent.IsValid() {
		t.Fatalf("the upstream got no trace context: %v", w.product.last(t).Header)
	}
	var client, server sdktrace.ReadOnlySpan
	testenv.WaitFor(t, 5*time.Second, "the gateway's spans to end", func() bool {
		for _, s := range recorder.Ended() {
			switch {
			case s.SpanContext().SpanID() == upstreamParent.SpanID():
				client = s
			case s.SpanKind() == oteltrace.SpanKindServer && s.SpanContext().TraceID() == upstreamParent.TraceID():
				server = s
			}
		}
		return client != nil && server != nil
	})
	if client.SpanKind() != oteltrace.SpanKindClient || client.Name() != "GET product" || client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatalf("the upstream's parent is %s span %q under %s, want the client span GET product under the gateway's server span %s",
			client.SpanKind(), client.Name(), client.Parent().SpanID(), server.SpanContext().SpanID())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range client.Attributes() {
		attrs[a.Key] = a.Value
	}
	if attrs["http.response.status_code"].AsInt64() != http.StatusServiceUnavailable || attrs["server.address"].AsString() != "127.0.0.1" || client.Status().Code != codes.Error {
		t.Fatalf("client span attributes %v, status %v: want the upstream's 503, its address and an error status", client.Attributes(), client.Status())
	}
}

func TestUpstreamErrorsBecomeTheEnvelope(t *testing.T) {
	w := newWorld(t)
	w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		rw.Header().Set("Server", "secret-server/1.2")
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(rw, "<html>stack trace</html>")
	}
	gw := w.start(t)
	r := call(t, gw, http.MethodGet, "/products/1", "", nil).Expect(t, http.StatusInternalServerError, "internal server error")
	if strings.Contains(string(r.Raw), "stack trace") || r.Header.Get("Server") != "" {
		t.Fatalf("upstream internals leaked: %v %s", r.Header, r.Raw)
	}
}

func TestBodyLimitAndCORS(t *testing.T) {
	w := newWorld(t)
	w.cfg.CORSOrigins = []string{"https://shop.example.com"}
	gw := w.start(t)
	big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
	gw.Send(t, http.MethodPost, "/auth/register", "application/json", []byte(big), nil).Expect(t, http.StatusRequestEntityTooLarge, "")

	pre := gw.Send(t, http.MethodOptions, "/orders", "", nil, http.Header{"Origin": {"https://shop.example.com"}, "Access-Control-Request-Method": {"POST"}})
	if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", pre.Status, pre.Header)
	}
	other := gw.Send(t, http.MethodGet, "/products", "", nil, http.Header{"Origin": {"https://evil.example.com"}})
	if other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed an origin not on the list")
	}
}

func TestOpenAPIDocumentIsValidAndCoversTheContract(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	r := call(t, gw, http.MethodGet, "/openapi.json", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	for path, methods := range map[string][]string{
		"/auth/register": {"POST"}, "/auth/verify": {"POST"}, "/auth/resend-verification": {"POST"}, "/auth/login": {"POST"},
		"/auth/request-password-reset": {"POST"}, "/auth/reset-password": {"POST"}, "/auth/delete-account": {"POST"},
		"/products": {"GET", "POST"}, "/products/{id}": {"GET", "PUT", "DELETE"}, "/products/{id}/history": {"GET"},
		"/orders": {"GET", "POST"}, "/orders/{id}": {"GET"}, "/orders/pay": {"POST"}, "/orders/cancel": {"POST"},
	} {
		item := doc.Paths.Find(path)
		if item == nil {
			t.Errorf("path %s missing", path)
			continue
		}
		for _, m := range methods {
			if item.GetOperation(m) == nil {
				t.Errorf("%s %s missing", m, path)
			}
		}
	}
}

// TestOnlyAuthsPublicRoutesAreForwarded: every /auth operation of the OpenAPI
// document reaches auth (prefix stripped); auth's probes and metrics, and
// anything else under /auth, are 404 at the gateway and never reach auth.
// (Before, /auth/* forwarded everything: /auth/metrics showed auth's metrics
// to the internet.)
func TestOnlyAuthsPublicRoutesAreForwarded(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	doc, err := openapi3.NewLoader().LoadFromData(call(t, gw, http.MethodGet, "/openapi.json", "", nil).Raw)
	if err != nil {
		t.Fatal(err)
	}
	public := 0
	for path, item := range doc.Paths.Map() {
		upstreamPath, ok := strings.CutPrefix(path, "/auth")
		if !ok {
			continue
		}
		for method := range item.Operations() {
			public++
			before := w.auth.calls()
			r := call(t, gw, method, path, "", nil)
			if r.Status != http.StatusOK || w.auth.calls() != before+1 || w.auth.last(t).URL.Path != upstreamPath {
				t.Errorf("%s %s: status %d, auth saw %d requests, the last for %s; want it forwarded to %s",
					method, path, r.Status, w.auth.calls()-before, w.auth.last(t).URL.Path, upstreamPath)
			}
		}
	}
	if public < 8 {
		t.Fatalf("the OpenAPI document lists %d /auth operations; auth has 8", public)
	}
	before := w.auth.calls()
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/auth/metrics"}, {http.MethodGet, "/auth/readyz"}, {http.MethodGet, "/auth/healthz"},
		{http.MethodGet, "/auth/health"}, {http.MethodGet, "/auth/"}, {http.MethodPost, "/auth/admin"},
		{http.MethodGet, "/auth/login/../metrics"}, {http.MethodGet, "/auth/%2e%2e/metrics"}, {http.MethodGet, "/auth//metrics"},
	} {
		r := call(t, gw, c.method, c.path, "", nil)
		if r.Status != http.StatusNotFound || r.Body.Message != "route not found" {
			t.Errorf("%s %s: %d %s, want 404 route not found", c.method, c.path, r.Status, r.Raw)
		}
	}
	// A public path with another method is the usual 405, still not forwarded.
	call(t, gw, http.MethodGet, "/auth/login", "", nil).Expect(t, http.StatusMethodNotAllowed, "")
	if w.auth.calls() != before {
		t.Fatalf("%d requests for internal routes reached auth", w.auth.calls()-before)
	}
}

func TestJWKSFromAFileAndConfigErrors(t *testing.T) {
	w := newWorld(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	doc, _ := tokens.KeySet{Keys: []tokens.Key{w.key}}.Public().MarshalJWKS(false)
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	w.cfg.JWKSFile = path
	w.cfg.AuthURL = "http://127.0.0.1:1" // the JWKS no longer comes from auth
	gw := w.start(t)
	call(t, gw, http.MethodGet, "/orders", w.token(t, 9), nil).Expect(t, http.StatusOK, "")

	for name, mutate := range map[string]func(*gateway.Config){
		"bad upstream URL":     func(c *gateway.Config) { c.OrderURL = "orders.local" },
		"bad rate limit":       func(c *gateway.Config) { c.RateLimits = "orders=fast" },
		"unknown group":        func(c *gateway.Config) { c.RateLimits = "admin=5/s" },
		"bad period":           func(c *gateway.Config) { c.RateLimits = "orders=5/d" },
		"negative token cache": func(c *gateway.Config) { c.TokenCache = -1 },
	} {
		cfg := w.cfg
		mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "KSHOP_GATEWAY_") {
			t.Errorf("%s: %v, want an error naming the variable", name, err)
		}
	}
}

// TestMadeUpKidsFromClientsThatHangUpCannotHideARotatedKey reproduces the
// starvation of the key cache: while many clients send tokens naming made-up
// kids and hang up before auth (slow under load) has answered the refresh
// their request caused, a token signed by a key auth has just rotated in must
// still be accepted, and go on being accepted. (Before, the refresh ran on the
// hanging-up client's context and counted as done when it started, so every
// refresh window was spent on a cancelled fetch and the real key was refused.)
func TestMadeUpKidsFromClientsThatHangUpCannotHideARotatedKey(t *testing.T) {
	w := newWorld(t)
	w.cfg.JWKSMinRefresh = time.Second
	gw := w.start(t)
	call(t, gw, http.MethodGet, "/orders", w.token(t, 7), nil).Expect(t, http.StatusOK, "")

	rotated, err := tokens.GenerateKey(tokens.EdDSA, time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.publish(300*time.Millisecond, rotated, w.key)
	asked := w.jwksRequests()

	ctx, stop := context.WithCancel(context.Background())
	var attackers sync.WaitGroup
	for i := range 16 {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			impatient := &http.Client{Timeout: 50 * time.Millisecond}
			for n := 0; ctx.Err() == nil; n++ {
				madeUp, _ := tokens.GenerateKey(tokens.EdDSA, time.Now(), time.Now())
				madeUp.ID = fmt.Sprintf("made-up-%d-%d", i, n)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.Base+"/orders", nil)
				req.Header.Set("Authorization", "Bearer "+signedBy(t, madeUp, 666))
				if resp, err := impatient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() { stop(); attackers.Wait() }()
	testenv.WaitFor(t, 30*time.Second, "the made-up kids to cause a refresh", func() bool { return w.jwksRequests() > asked })

	fresh := signedBy(t, rotated, 8)
	testenv.WaitFor(t, 30*time.Second, "a token of the rotated key to be accepted during the made-up traffic", func() bool {
		return call(t, gw, http.MethodGet, "/orders", fresh, nil).Status == http.StatusOK
	})
	for i := range 25 {
		if r := call(t, gw, http.MethodGet, "/orders", signedBy(t, rotated, int64(100+i)), nil); r.Status != http.StatusOK {
			t.Fatalf("request %d with a fresh real token: %d %s", i, r.Status, r.Raw)
		}
	}
}

// TestTokensOfARevokedCredentialAreRefused: when auth revokes a credential
// (a password reset, an account deletion) the gateway refuses every token
// carrying it, within REVOCATION_CACHE (here 0: at once), as 401 counted as
// "revoked"; tokens of other credentials and tokens without one pass.
func TestTokensOfARevokedCredentialAreRefused(t *testing.T) {
	w := newWorld(t)
	gw := w.start(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	signer := &tokens.Signer{Keys: tokens.Static(tokens.KeySet{Keys: []tokens.Key{w.key}}), Issuer: "kshop-auth", Audience: "kshop", TTL: time.Hour}
	tokenOf := func(credential string) string {
		token, _, err := signer.Sign(tokens.Identity{Subject: "5", Email: "user5@example.com", Roles: []string{"customer"}, CredentialID: credential})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	old, current := "old-"+testenv.RandomSuffix(), "current-"+testenv.RandomSuffix()
	call(t, gw, http.MethodGet, "/orders", tokenOf(old), nil).Expect(t, http.StatusOK, "")
	if err := rdb.Set(context.Background(), tokens.RevokedCredentialKey(old), "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	before := w.order.calls()
	call(t, gw, http.MethodGet, "/orders", tokenOf(old), nil).Expect(t, http.StatusUnauthorized, "unauthorized")
	call(t, gw, http.MethodGet, "/products", tokenOf(old), nil).Expect(t, http.StatusUnauthorized, "unauthorized")
	if w.order.calls() != before {
		t.Fatal("a revoked token reached an upstream")
	}
	call(t, gw, http.MethodGet, "/orders", tokenOf(current), nil).Expect(t, http.StatusOK, "")
	call(t, gw, http.MethodGet, "/orders", tokenOf(""), nil).Expect(t, http.StatusOK, "")
	metrics := w.scrape(t, gw)
	if !strings.Contains(string(metrics.Raw), `kshop_gateway_rejected_tokens_total{reason="revoked"} 2`) {
		t.Fatalf("revoked tokens are not counted:\n%s", metrics.Raw)
	}
}

// TestRevocationAnswersAreCachedForAtMostTheirTTL: with REVOCATION_CACHE set,
// a token checked moments before its revocation may pass until the cached
// answer is older than the setting, never longer.
func TestRevocationAnswersAreCachedForAtMostTheirTTL(t *testing.T) {
	w := newWorld(t)
	w.cfg.RevocationCache = 500 * time.Millisecond
	gw := w.start(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	credential := "cached-" + testenv.RandomSuffix()
	signer := &tokens.Signer{Keys: tokens.Static(tokens.KeySet{Keys: []tokens.Key{w.key}}), Issuer: "kshop-auth", Audience: "kshop", TTL: time.Hour}
	token, _, err := signer.Sign(tokens.Identity{Subject: "6", Email: "user6@example.com", CredentialID: credential})
	if err != nil {
		t.Fatal(err)
	}
	call(t, gw, http.MethodGet, "/orders", token, nil).Expect(t, http.StatusOK, "")
	revoked := time.Now()
	if err := rdb.Set(context.Background(), tokens.RevokedCredentialKey(credential), "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the revoked token to be refused", func() bool {
		return call(t, gw, http.MethodGet, "/orders", token, nil).Status == http.StatusUnauthorized
	})
	t.Logf("refused %v after the revocation (REVOCATION_CACHE %v)", time.Since(revoked).Round(time.Millisecond), w.cfg.RevocationCache)
}

// TestRedisDownLeavesRevocationOpenOrClosed: without Redis, tokens pass (and
// the failures are counted) unless REVOCATION_FAIL_CLOSED, which answers 503.
func TestRedisDownLeavesRevocationOpenOrClosed(t *testing.T) {
	w := newWorld(t)
	w.cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	signer := &tokens.Signer{Keys: tokens.Static(tokens.KeySet{Keys: []tokens.Key{w.key}}), Issuer: "kshop-auth", Audience: "kshop", TTL: time.Hour}
	token, _, err := signer.Sign(tokens.Identity{Subject: "7", Email: "user7@example.com", CredentialID: "c-7"})
	if err != nil {
		t.Fatal(err)
	}
	open := w.start(t)
	call(t, open, http.MethodGet, "/orders", token, nil).Expect(t, http.StatusOK, "")
	if metrics := w.scrape(t, open); !strings.Contains(string(metrics.Raw), "kshop_gateway_revocation_check_errors_total 1") {
		t.Fatal("the unchecked revocation was not counted")
	}
	w.cfg.RevocationFailClosed = true
	closed := w.start(t)
	call(t, closed, http.MethodGet, "/orders", token, nil).Expect(t, http.StatusServiceUnavailable, "token revocation cannot be checked")
}

// TestJWKSSettingsAreChecked: the key set's durations must make sense.
func TestJWKSSettingsAreChecked(t *testing.T) {
	w := newWorld(t)
	for name, mutate := range map[string]func(*gateway.Config){
		"negative refresh":                func(c *gateway.Config) { c.JWKSRefresh = -time.Second },
		"max stale not above the refresh": func(c *gateway.Config) { c.JWKSRefresh, c.JWKSMaxStale = time.Minute, time.Minute },
		"negative revocation cache":       func(c *gateway.Config) { c.RevocationCache = -time.Second },
	} {
		cfg := w.cfg
		mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "KSHOP_GATEWAY_") {
			t.Errorf("%s: %v, want an error naming the variable", name, err)
		}
	}
}

// randomAddress is an address in prefix.0.0.0/8 no other test or run uses,
// so its rate-limit buckets on the shared Redis start full.
func randomAddress(first int) string {
	n, _ := strconv.ParseUint(testenv.RandomSuffix()[:6], 16, 32)
	return fmt.Sprintf("%d.%d.%d.%d", first, n>>16&0xff, n>>8&0xff, n&0xff%254+1)
}

// connectingFrom is a client of gw whose connections come from the loopback
// address ip (any of 127.0.0.0/8 works on Linux): a peer of our choosing.
func connectingFrom(gw *apitest.Client, ip string) *apitest.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &apitest.Client{Base: gw.Base, HTTP: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}}
}

// TestClientsBehindATrustedProxyHaveTheirOwnBudgets: behind the ingress (a
// trusted proxy), each client address of X-Forwarded-For has its own bucket,
// a client cannot leave its bucket by putting addresses of its own before
// its real one, and auth is told the client's address, not the ingress's, for
// its own per-client limits. (Before, the upstream saw the ingress's address:
// auth's per-client counters held one bucket for everyone.)
func TestClientsBehindATrustedProxyHaveTheirOwnBudgets(t *testing.T) {
	w := newWorld(t)
	ingressIP := randomAddress(127)
	w.cfg.TrustedProxies = []string{ingressIP + "/32"}
	w.cfg.RateLimits = "auth=3/m,products=1000/s,orders=1000/s"
	ingress := connectingFrom(w.start(t), ingressIP)
	login := func(forwardedFor string) apitest.Reply {
		return call(t, ingress, http.MethodPost, "/auth/login", "", map[string]string{"X-Forwarded-For": forwardedFor, "X-Real-IP": "192.0.2.1"})
	}
	alice, bob, carol := randomAddress(100), randomAddress(100), randomAddress(100)
	for range 3 {
		login(alice).Expect(t, http.StatusOK, "")
		if got := w.auth.last(t).Header.Get("X-Forwarded-For"); got != alice {
			t.Fatalf("auth was told the client is %q, want %s", got, alice)
		}
	}
	login(alice).Expect(t, http.StatusTooManyRequests, "too many requests")
	login(bob).Expect(t, http.StatusOK, "")
	if got := w.auth.last(t); got.Header.Get("X-Forwarded-For") != bob || got.Header.Get("X-Real-IP") != "" {
		t.Fatalf("auth was told X-Forwarded-For %q, X-Real-IP %q; want %s and nothing", got.Header.Get("X-Forwarded-For"), got.Header.Get("X-Real-IP"), bob)
	}
	// What a client writes itself arrives left of what the ingress appends.
	for i := range 3 {
		login(fmt.Sprintf("198.51.100.%d, %s", i+1, carol)).Expect(t, http.StatusOK, "")
		if got := w.auth.last(t).Header.Get("X-Forwarded-For"); got != carol {
			t.Fatalf("auth was told the client is %q, want %s", got, carol)
		}
	}
	login("198.51.100.9, "+carol).Expect(t, http.StatusTooManyRequests, "too many requests")
}

// TestAnUntrustedPeersForwardedForIsIgnored: a peer outside the trusted
// proxies is the client, whatever X-Forwarded-For it sends: one bucket, and
// upstreams are told its address.
func TestAnUntrustedPeersForwardedForIsIgnored(t *testing.T) {
	w := newWorld(t)
	w.cfg.TrustedProxies = []string{"10.0.0.0/8"}
	w.cfg.RateLimits = "auth=3/m,products=1000/s,orders=1000/s"
	peerIP := randomAddress(127)
	peer := connectingFrom(w.start(t), peerIP)
	for i := range 3 {
		call(t, peer, http.MethodPost, "/auth/login", "", map[string]string{"X-Forwarded-For": randomAddress(100)}).Expect(t, http.StatusOK, "")
		if got := w.auth.last(t).Header.Get("X-Forwarded-For"); got != peerIP {
			t.Fatalf("request %d: auth was told the client is %q, want the peer %s", i, got, peerIP)
		}
	}
	call(t, peer, http.MethodPost, "/auth/login", "", map[string]string{"X-Forwarded-For": randomAddress(100)}).Expect(t, http.StatusTooManyRequests, "too many requests")
}
