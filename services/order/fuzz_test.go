package order

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/httpx"
)

// The order API's decoders, fed anything: they answer in the contract or hand
// the use cases values within its limits, which PostgreSQL can store.
// Hostile seeds are committed under testdata/fuzz/<target>/.

func checkRequestID(t *testing.T, id string) {
	t.Helper()
	if n := utf8.RuneCountInString(id); n < 1 || n > 64 || strings.ContainsRune(id, 0) {
		t.Fatalf("accepted request_id %q", id)
	}
}

func FuzzCreateBody(f *testing.F) {
	f.Add([]byte(`{"request_id":"r-1","description":"gift","items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}]}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/orders", httpx.Bind[createRequest])
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ok := decoder.Decode(t, "/orders", body)
		if !ok {
			return
		}
		checkRequestID(t, req.RequestID)
		if utf8.RuneCountInString(req.Description) > 500 || strings.ContainsRune(req.Description, 0) {
			t.Fatalf("accepted description %q", req.Description)
		}
		if len(req.Items) < 1 || len(req.Items) > 50 {
			t.Fatalf("accepted %d items", len(req.Items))
		}
		seen := map[int64]bool{}
		for _, it := range req.Items {
			if it.ProductID < 1 || it.Quantity < 1 || it.Quantity > 1000 || seen[it.ProductID] {
				t.Fatalf("accepted items %+v", req.Items)
			}
			seen[it.ProductID] = true
		}
	})
}

func FuzzPayOrCancelBody(f *testing.F) {
	f.Add([]byte(`{"request_id":"pay-1","order_id":7}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/orders/pay", httpx.Bind[actionRequest])
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ok := decoder.Decode(t, "/orders/pay", body)
		if !ok {
			return
		}
		checkRequestID(t, req.RequestID)
		if req.OrderID < 1 {
			t.Fatalf("accepted order_id %d", req.OrderID)
		}
	})
}

func FuzzListQuery(f *testing.F) {
	f.Add("start-date=01-11-2026&end-date=24-11-2026&status=PAID&page=2&limit=5")
	h := &handlers{now: func() time.Time { return time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC) }}
	decoder := apitest.NewDecoder(http.MethodGet, "/orders", h.listQuery)
	f.Fuzz(func(t *testing.T, query string) {
		q, ok := decoder.Decode(t, "/orders?"+query, nil)
		if !ok {
			return
		}
		if q.To.Before(q.From) || q.Page < 1 || q.Page > 1_000_000 || q.Limit < 1 || q.Limit > maxLimit {
			t.Fatalf("accepted %+v", q)
		}
		switch q.Status {
		case "", StatusPending, StatusPaid, StatusCompleted, StatusCancelled:
		default:
			t.Fatalf("accepted status %q", q.Status)
		}
	})
}
