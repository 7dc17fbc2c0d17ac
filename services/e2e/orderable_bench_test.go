package e2e_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/testenv"
)

// BenchmarkProductOrderable creates b.N products one after another, each
// through the product service's API, and orders each at once, again and again
// until the order service accepts it: the delay from the product's 201 to the
// order's 201 is how long a just-created product cannot be ordered. The services
// start fresh, so the first product is the first event the order service
// consumes after its start. While the product has not arrived the order service
// must say "retry" (409 with Retry-After); a 404 for a product that exists
// fails the benchmark.
func BenchmarkProductOrderable(b *testing.B) {
	services := startSagaServices(b)
	productAPI, orderAPI := services.productAPI, services.orderAPI
	testenv.WaitFor(b, 30*time.Second, "the order service to be ready", func() bool {
		resp, err := http.Get(orderAPI.Base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	admin := identity.User{ID: 1, Email: "admin@kshop.local", Roles: []string{"customer", "admin"}}
	customer := identity.User{ID: 2, Email: "buyer@example.com", Roles: []string{"customer"}}
	client := &http.Client{Timeout: 10 * time.Second}
	delays := make([]time.Duration, 0, b.N)
	retries := 0
	b.ResetTimer()
	for range b.N {
		var created struct{ ID int64 }
		productAPI.Do(b, &admin, http.MethodPost, "/products", map[string]any{
			"name": "new tea", "description": "just in", "price": "4.50", "quantity": 1000,
		}).Expect(b, http.StatusCreated, "").Decode(b, &created)
		listed := time.Now()
		for {
			status, err := postOrder(client, orderAPI.Base, customer, created.ID, 1)
			if err != nil {
				b.Fatal(err)
			}
			if status == http.StatusCreated {
				break
			}
			if status != http.StatusConflict {
				b.Fatalf("product %d, %v after the product service created it: the order service answered %d, want 201 or 409 (retry)",
					created.ID, time.Since(listed), status)
			}
			retries++
			if time.Since(listed) > 30*time.Second {
				b.Fatalf("product %d not orderable 30 s after it was created", created.ID)
			}
			time.Sleep(time.Millisecond)
		}
		delays = append(delays, time.Since(listed))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(delays[0]), "first-ms")
	sorted := slices.Clone(delays)
	slices.Sort(sorted)
	b.ReportMetric(ms(sorted[len(sorted)/2]), "p50-ms")
	b.ReportMetric(ms(sorted[(len(sorted)*99)/100]), "p99-ms")
	b.ReportMetric(ms(sorted[len(sorted)-1]), "max-ms")
	b.ReportMetric(float64(retries), "retry-answers")
}
