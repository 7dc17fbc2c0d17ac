package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A server shutting down for a rollout may read a request from a pooled
// connection and close it unanswered (net/http does so once Shutdown began).
// A request with a request_id is idempotent, so the client says so and the
// HTTP client sends it again on a new connection; one without is not retried.
func TestRequestsWithARequestIDSurviveAConnectionClosedUnderThem(t *testing.T) {
	var attempts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"data":{}}`))
			return
		}
		if attempts.Add(1)%2 == 1 { // every first try: read, then hang up
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		if r.Header.Get("Idempotency-Key") != "order-7" {
			t.Errorf("the retried request carries Idempotency-Key %q", r.Header.Get("Idempotency-Key"))
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"data":{"id":7}}`))
	}))
	defer srv.Close()
	c := NewClient(srv.URL)
	ctx := context.Background()

	if _, err := c.Call(ctx, http.MethodGet, "/products", nil); err != nil { // a pooled connection
		t.Fatal(err)
	}
	r, err := c.Call(ctx, http.MethodPost, "/orders", map[string]any{"request_id": "order-7", "items": []any{}})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("the order whose connection was closed under it: %d, %v; want 201 after a retry", r.Status, err)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}

	attempts.Store(0)
	if _, err := c.Call(ctx, http.MethodGet, "/products", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, http.MethodPost, "/auth/login", map[string]any{"email": "ann@example.com"}); err == nil {
		t.Fatal("a request without request_id was retried: only idempotent ones may be")
	}
}
