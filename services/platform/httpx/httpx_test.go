package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/platform/promtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type item struct {
	ProductID int64 `json:"product_id" binding:"required,gt=0"`
	Quantity  int   `json:"quantity" binding:"required,min=1,max=1000"`
}

type orderRequest struct {
	RequestID   string `json:"request_id" binding:"required,max=64"`
	Email       string `json:"email" binding:"omitempty,email"`
	Password    string `json:"password" binding:"omitempty,min=8"`
	Description string `json:"description" binding:"max=500"`
	Items       []item `json:"items" binding:"required,min=1,max=50,dive"`
}

func newEngine(t *testing.T, ready map[string]func(context.Context) error) (*gin.Engine, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := NewEngine(Options{Service: "test", Logger: quiet, Registerer: reg, BodyLimit: 1024, Ready: ready})
	e.POST("/orders", func(c *gin.Context) {
		var req orderRequest
		if !BindJSON(c, &req) {
			return
		}
		Created(c, req)
	})
	e.GET("/orders/:id", func(c *gin.Context) {
		id, ok := PathID(c, "id")
		if !ok {
			return
		}
		OK(c, gin.H{"id": id, "request_id": RequestID(c.Request.Context())})
	})
	e.GET("/panic", func(c *gin.Context) { panic("secret internal detail") })
	return e, reg
}

type reply struct {
	status int
	header http.Header
	body   Response
	raw    string
}

func do(t *testing.T, h http.Handler, method, path, contentType, body string, headers ...string) reply {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &r.body); err != nil {
		t.Fatalf("%s %s: body is not the JSON envelope: %q", method, path, rec.Body.String())
	}
	return r
}

const validOrder = `{"request_id":"r1","items":[{"product_id":1,"quantity":2}]}`

func TestBindJSONAcceptsAValidBody(t *testing.T) {
	e, _ := newEngine(t, nil)
	r := do(t, e, "POST", "/orders", "application/json; charset=utf-8", validOrder)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if !strings.Contains(r.raw, `"data":{"request_id":"r1"`) || strings.Contains(r.raw, `"errors"`) || strings.Contains(r.raw, `"message"`) {
		t.Fatalf("envelope %s: want data only, empty members omitted", r.raw)
	}
}

func TestBindJSONErrors(t *testing.T) {
	e, _ := newEngine(t, nil)
	for name, tc := range map[string]struct {
		contentType, body string
		status            int
		message           string
		field, fieldMsg   string
	}{
		"not json":        {"text/plain", validOrder, 415, MsgUnsupportedType, "", ""},
		"no content type": {"", validOrder, 415, MsgUnsupportedType, "", ""},
		"empty body":      {"application/json", "", 400, MsgMissingBody, "", ""},
		"malformed":       {"application/json", `{"request_id":`, 400, MsgValidation, "body", "must be valid JSON"},
		"two values":      {"application/json", validOrder + `{}`, 400, MsgValidation, "body", "must hold exactly one JSON value"},
		"wrong type":      {"application/json", `{"request_id":5,"items":[{"product_id":1,"quantity":2}]}`, 400, MsgValidation, "request_id", "must be a string"},
		"nested wrong type": {"application/json", `{"request_id":"r","items":[{"product_id":1,"quantity":"two"}]}`, 400, MsgValidation,
			"items.quantity", "must be an integer"},
		"unknown field": {"application/json", `{"request_id":"r","items":[{"product_id":1,"quantity":2}],"admin":true}`, 400, MsgValidation, "admin", "is not a known field"},
		"missing field": {"application/json", `{"items":[{"product_id":1,"quantity":2}]}`, 400, MsgValidation, "request_id", "is required"},
		"bad email": {"application/json", `{"request_id":"r","email":"nope","items":[{"product_id":1,"quantity":2}]}`, 400, MsgValidation,
			"email", "must be a valid email"},
		"short password": {"application/json", `{"request_id":"r","password":"short","items":[{"product_id":1,"quantity":2}]}`, 400, MsgValidation,
			"password", "must be at least 8 characters"},
		"nested rule": {"application/json", `{"request_id":"r","items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":5000}]}`, 400, MsgValidation,
			"items[1].quantity", "must be at most 1000"},
		"empty list": {"application/json", `{"request_id":"r","items":[]}`, 400, MsgValidation, "items", "must have at least 1 items"},
		// PostgreSQL cannot store NUL in text: refused here rather than a 500 there.
		"NUL in text": {"application/json", `{"request_id":"r","description":"gift\u0000","items":[{"product_id":1,"quantity":2}]}`, 400, MsgValidation,
			"description", "must not contain NUL characters"},
		"too large": {"application/json", `{"request_id":"r","description":"` + strings.Repeat("x", 2000) + `","items":[]}`, 413, MsgBodyTooLarge, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := do(t, e, "POST", "/orders", tc.contentType, tc.body)
			if r.status != tc.status || r.body.Message != tc.message {
				t.Fatalf("got %d %q, want %d %q (%s)", r.status, r.body.Message, tc.status, tc.message, r.raw)
			}
			if tc.field == "" {
				return
			}
			if len(r.body.Errors) == 0 || r.body.Errors[0].Field != tc.field || r.body.Errors[0].Message != tc.fieldMsg {
				t.Fatalf("errors %+v, want %s: %s", r.body.Errors, tc.field, tc.fieldMsg)
			}
		})
	}
}

func TestBodyOverLimitWithoutContentLengthIs413(t *testing.T) {
	e, _ := newEngine(t, nil)
	body := `{"request_id":"r","description":"` + strings.Repeat("x", 2000) + `","items":[]}`
	req := httptest.NewRequest("POST", "/orders", io.NopCloser(strings.NewReader(body)))
	req.ContentLength = -1 // chunked: the limit must hold while reading
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", rec.Code, rec.Body)
	}
}

func TestPathID(t *testing.T) {
	e, _ := newEngine(t, nil)
	if r := do(t, e, "GET", "/orders/42", "", ""); r.status != 200 || !strings.Contains(r.raw, `"id":42`) {
		t.Fatalf("numeric id: %d %s", r.status, r.raw)
	}
	for _, raw := range []string{"abc", "1.5", "99999999999999999999"} {
		r := do(t, e, "GET", "/orders/"+raw, "", "")
		if r.status != 400 || r.body.Message != "expected a numeric value but got '"+raw+"'" {
			t.Errorf("id %q: %d %q", raw, r.status, r.body.Message)
		}
	}
}

func TestPagingLinks(t *testing.T) {
	u, _ := url.Parse("/products?name=tea&page=2&limit=10")
	p := NewPaging(2, 10, 42, u)
	if p.TotalPage != 5 || p.TotalItem != 42 || p.Page != 2 || p.Size != 10 {
		t.Fatalf("paging %+v", p)
	}
	want := Links{
		Self: "/products?limit=10&name=tea&page=2", First: "/products?limit=10&name=tea&page=1",
		Prev: "/products?limit=10&name=tea&page=1", Next: "/products?limit=10&name=tea&page=3",
		Last: "/products?limit=10&name=tea&page=5",
	}
	if p.Links != want {
		t.Fatalf("links %+v\nwant  %+v", p.Links, want)
	}
	if first := NewPaging(1, 10, 42, u); first.Links.Prev != "" || first.Links.Next == "" {
		t.Fatalf("first page links %+v", first.Links)
	}
	if last := NewPaging(5, 10, 42, u); last.Links.Next != "" || last.Links.Prev == "" {
		t.Fatalf("last page links %+v", last.Links)
	}
	if empty := NewPaging(1, 10, 0, u); empty.TotalPage != 0 || empty.Links.Next != "" || empty.Links.Prev != "" {
		t.Fatalf("empty list paging %+v", empty)
	}
}

func TestRecoveryHidesThePanicAndKeepsServing(t *testing.T) {
	e, _ := newEngine(t, nil)
	r := do(t, e, "GET", "/panic", "", "")
	if r.status != 500 || r.body.Message != MsgInternal || strings.Contains(r.raw, "secret") {
		t.Fatalf("panic reply: %d %s", r.status, r.raw)
	}
	if r := do(t, e, "GET", "/orders/1", "", ""); r.status != 200 {
		t.Fatalf("after a panic: %d", r.status)
	}
}

func TestRequestIDIsKeptOrGenerated(t *testing.T) {
	e, _ := newEngine(t, nil)
	r := do(t, e, "GET", "/orders/1", "", "", HeaderRequestID, "client-abc-123")
	if r.header.Get(HeaderRequestID) != "client-abc-123" || !strings.Contains(r.raw, `"request_id":"client-abc-123"`) {
		t.Fatalf("client id not kept: %v %s", r.header, r.raw)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 200)} {
		r := do(t, e, "GET", "/orders/1", "", "", HeaderRequestID, bad)
		if got := r.header.Get(HeaderRequestID); got == bad || len(got) != 36 {
			t.Errorf("id %q: response id %q, want a generated UUID", bad, got)
		}
	}
}

func TestHealthReadinessAndNotFound(t *testing.T) {
	down := errors.New("connection refused")
	var dbErr error
	e, _ := newEngine(t, map[string]func(context.Context) error{
		"postgres": func(context.Context) error { return dbErr },
		"redis":    func(context.Context) error { return nil },
	})
	if r := do(t, e, "GET", "/health", "", ""); r.status != 200 || r.body.Message != "status UP" {
		t.Fatalf("/health: %d %s", r.status, r.raw)
	}
	if r := do(t, e, "GET", "/readyz", "", ""); r.status != 200 {
		t.Fatalf("/readyz with all up: %d %s", r.status, r.raw)
	}
	dbErr = down
	r := do(t, e, "GET", "/readyz", "", "")
	if r.status != 503 || len(r.body.Errors) != 1 || r.body.Errors[0].Field != "postgres" {
		t.Fatalf("/readyz with postgres down: %d %s", r.status, r.raw)
	}
	if r := do(t, e, "GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("/healthz must stay 200 while a dependency is down: %d", r.status)
	}
	if r := do(t, e, "GET", "/nope", "", ""); r.status != 404 || r.body.Message != MsgRouteNotFound {
		t.Fatalf("unknown path: %d %s", r.status, r.raw)
	}
	if r := do(t, e, "DELETE", "/orders/1", "", ""); r.status != 405 {
		t.Fatalf("wrong method: %d %s", r.status, r.raw)
	}
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	e, reg := newEngine(t, nil)
	do(t, e, "GET", "/orders/1", "", "")
	do(t, e, "GET", "/orders/2", "", "")
	do(t, e, "GET", "/scanner/probe", "", "")
	rec := httptest.NewRecorder()
	MetricsHandler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`http_requests_total{method="GET",route="/orders/:id",service="test",status="200"} 2`,
		`http_requests_total{method="GET",route="unmatched",service="test",status="404"} 1`,
		`http_request_duration_seconds_bucket{method="GET",route="/orders/:id",service="test"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A client that hangs up while its request runs is counted and logged as 499,
// not 500: the handler's work failed only because the request was cancelled.
// An unexpected failure of a request whose client waits is still 500.
func TestRequestsWhoseClientHangsUpAre499(t *testing.T) {
	e, reg := newEngine(t, nil)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	e.GET("/slow", func(c *gin.Context) {
		<-c.Request.Context().Done() // the database call that the cancellation interrupts
		FailUnexpected(c, logger, fmt.Errorf("query products: %w", c.Request.Context().Err()))
	})
	e.GET("/broken", func(c *gin.Context) { FailUnexpected(c, logger, errors.New("connection refused")) })
	ctx, hangUp := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/slow", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	time.AfterFunc(20*time.Millisecond, hangUp)
	e.ServeHTTP(rec, req)
	if r := do(t, e, "GET", "/broken", "", ""); r.status != 500 || r.body.Message != MsgInternal {
		t.Fatalf("unexpected failure with the client waiting: %d %s", r.status, r.raw)
	}
	counted := promtest.Counters(t, reg, "http_requests_total", "route", "status")
	if counted["/slow 499"] != 1 || counted["/slow 500"] != 0 || counted["/broken 500"] != 1 {
		t.Fatalf("requests counted by route and status: %v, want /slow 499 once and /broken 500 once", counted)
	}
	if !strings.Contains(logs.String(), `"level":"INFO","msg":"client closed the request"`) ||
		strings.Count(logs.String(), `"level":"ERROR"`) != 1 {
		t.Fatalf("the hang-up must be logged at info, only the real failure as an error:\n%s", logs.String())
	}
}

// The metrics are on the metrics port's handler only: the API answers 404 on
// /metrics, and the metrics handler serves nothing but /metrics.
func TestMetricsOnlyOnTheirOwnHandler(t *testing.T) {
	e, reg := newEngine(t, nil)
	if r := do(t, e, "GET", "/metrics", "", ""); r.status != 404 || r.body.Message != MsgRouteNotFound {
		t.Fatalf("/metrics on the API: %d %s, want 404", r.status, r.raw)
	}
	metrics := MetricsHandler(reg)
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 404, "/orders/1": 404, "/": 404} {
		rec := httptest.NewRecorder()
		metrics.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s on the metrics handler: %d, want %d", path, rec.Code, want)
		}
		if want == 404 && strings.TrimSpace(rec.Body.String()) != `{"message":"`+MsgRouteNotFound+`"}` {
			t.Errorf("GET %s on the metrics handler: %s, want the envelope", path, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	metrics.ServeHTTP(rec, httptest.NewRequest("POST", "/metrics", nil))
	if rec.Code == 200 {
		t.Error("POST /metrics answered 200")
	}
	rec = httptest.NewRecorder()
	MetricsHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Errorf("a nil registry: %d, want 200", rec.Code)
	}
}

// TestGracefulShutdownFinishesRequestsInFlight cancels the server's context while
// a slow request runs: the request completes, Serve returns nil, and the port no
// longer accepts connections.
func TestGracefulShutdownFinishesRequestsInFlight(t *testing.T) {
	e, _ := newEngine(t, nil)
	started := make(chan struct{})
	e.GET("/slow", func(c *gin.Context) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		Message(c, http.StatusOK, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, e, 5*time.Second, quiet) }()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: string(body)}
	}()
	<-started
	cancel()

	r := <-got
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "done") {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v, want nil after a clean shutdown", err)
	}
	if conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Fatal("the server still accepts connections after shutdown")
	}
}

// A client that dialled a connection and never used it (pooling clients do)
// must not hold the shutdown: net/http would wait 5 s for its first request.
func TestShutdownDoesNotWaitForUnusedConnections(t *testing.T) {
	e, _ := newEngine(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, e, 2*time.Second, quiet) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz") // the server is up
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v with an unused connection open, want a clean shutdown", err)
	}
}

// A connection accepted after the shutdown began, before the listener closed
// (a dial already under way: clients that gave up on a request still finish
// their dials), is closed as it arrives rather than waited for.
func TestConnectionsAcceptedDuringTheShutdownAreClosedUnused(t *testing.T) {
	fresh := &freshConns{conns: map[net.Conn]struct{}{}}
	before, beforePeer := net.Pipe()
	defer beforePeer.Close()
	fresh.track(before, http.StateNew)
	fresh.closeAllFromNowOn()
	late, latePeer := net.Pipe()
	defer latePeer.Close()
	fresh.track(late, http.StateNew)
	for name, peer := range map[string]net.Conn{"accepted before the shutdown": beforePeer, "accepted during the shutdown": latePeer} {
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("connection %s: read %v, want EOF (closed by the server)", name, err)
		}
	}
}

func TestEnvelopeShape(t *testing.T) {
	data, _ := json.Marshal(Response{Message: "input validation error", Errors: []FieldError{{Field: "email", Message: "must be a valid email"}}})
	if want := `{"message":"input validation error","errors":[{"field":"email","message":"must be a valid email"}]}`; !bytes.Equal(data, []byte(want)) {
		t.Fatalf("envelope %s\nwant     %s", data, want)
	}
}
