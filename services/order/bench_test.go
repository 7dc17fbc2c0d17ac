package order_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkCreateOrder measures POST /orders end to end: lock, price from the
// product copy, one transaction with the order, its items, order-created and
// four timers. Clients in parallel, each order with two lines.
func BenchmarkCreateOrder(b *testing.B) {
	s := start(b, testConfig(b))
	s.product(b, 1, "10.00", 1_000_000)
	s.product(b, 2, "2.50", 1_000_000)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := s.Do(b, &ann, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, 1}, [2]int64{2, 3}))
			if r.Status != http.StatusCreated {
				b.Errorf("status %d: %s", r.Status, r.Raw)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}
