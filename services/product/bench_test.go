package product_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkGetProduct measures GET /products/:id over HTTP, clients in parallel.
func BenchmarkGetProduct(b *testing.B) {
	s := newService(b)
	p := s.create(b, "benchmarked", "19.99", 10)
	url := fmt.Sprintf("%s/products/%d", s.base, p.ID)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkReserve measures stock reservations (one transaction each: inbox,
// decision, locked decrement, reservation, two outbox rows), in parallel on a
// handful of products so that orders contend for the same rows.
func BenchmarkReserve(b *testing.B) {
	s := newService(b)
	var ids []int64
	for i := range 4 {
		ids = append(ids, s.create(b, fmt.Sprint("hot ", i), 1, 1_000_000).ID)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			order := orderOf(n, item(ids[n%4], 1), item(ids[(n+1)%4], 1))
			if err := s.app.Stock.Reserve(context.Background(), uuid.NewString(), order); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}
