package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/product"
)

// BenchmarkOrderPlacement places b.N orders for one hot product that has stock
// for about half of them, from 16 clients at once, straight to the order
// service, and waits until the saga decided every order (order-created to the
// product service over Kafka, reserved or rejected, the answer back). Orders the
// order service's copy of the stock already shows as unservable are refused at
// once (409) and count as decided. It reports
// the placement rate (orders decided per second, from the first POST to the last
// decision) and fails unless nothing was oversold: stock never below zero, the
// units the product service reserved equal to the stock it lost, and equal to
// the units of the orders the order service holds as reserved.
func BenchmarkOrderPlacement(b *testing.B) {
	services := startSagaServices(b)
	productAPI, orderAPI := services.productAPI, services.orderAPI
	productDB, orderDB := openPool(b, services.productURL), openPool(b, services.orderURL)

	// Orders ask for one or two units, so the stock cannot be split evenly.
	units := func(n int) int64 { return int64(n%2 + 1) }
	stock := max(1, b.N*3/4) // 1.5 units an order on average: half the orders can be served
	admin := identity.User{ID: 1, Email: "admin@kshop.local", Roles: []string{"customer", "admin"}}
	var hot struct{ ID int64 }
	productAPI.Do(b, &admin, http.MethodPost, "/products", map[string]any{
		"name": "hot item", "description": "few left", "price": "9.99", "quantity": stock,
	}).Expect(b, http.StatusCreated, "").Decode(b, &hot)
	testenv.WaitFor(b, 30*time.Second, "the order service to learn the product", func() bool {
		return countRows(b, orderDB, `SELECT count(*) FROM products WHERE id = $1`, hot.ID) == 1
	})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	var next, refused atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	began := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := int(next.Add(1)); n <= b.N; n = int(next.Add(1)) {
				customer := identity.User{ID: int64(100 + n%200), Email: fmt.Sprintf("c%d@example.com", n%200), Roles: []string{"customer"}}
				status, err := postOrder(client, orderAPI.Base, customer, hot.ID, units(n))
				switch {
				case err == nil && status == http.StatusConflict:
					refused.Add(1)
				case err != nil || status != http.StatusCreated:
					b.Errorf("order %d: status %d, %v", n, status, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(began)
	if b.Failed() {
		return
	}
	testenv.WaitFor(b, 2*time.Minute, "every order's stock decision", func() bool {
		return countRows(b, orderDB, `SELECT count(*) FROM orders WHERE stock_status = 'pending'`) == 0
	})
	decided := time.Since(began)
	b.StopTimer()

	left := countRows(b, productDB, `SELECT quantity FROM products WHERE id = $1`, hot.ID)
	reservedByProduct := countRows(b, productDB, `SELECT coalesce(sum(quantity), 0) FROM reservations WHERE product_id = $1`, hot.ID)
	reservedByOrder := countRows(b, orderDB, `
		SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE o.stock_status = 'reserved' AND i.product_id = $1`, hot.ID)
	orders := countRows(b, orderDB, `SELECT count(*) FROM orders`)
	rejected := countRows(b, orderDB, `SELECT count(*) FROM orders WHERE stock_status = 'rejected'`)
	oversold := max(0, reservedByProduct-stock, reservedByOrder-stock, -left)
	switch {
	case orders != b.N-int(refused.Load()):
		b.Fatalf("%d orders stored for %d placed and %d refused", orders, b.N, refused.Load())
	case left < 0 || oversold > 0:
		b.Fatalf("oversold: stock %d, %d left, %d units reserved by the product service, %d by the order service", stock, left, reservedByProduct, reservedByOrder)
	case reservedByProduct != stock-left || reservedByOrder != reservedByProduct:
		b.Fatalf("reserved differs from sold: stock %d, %d left, %d units reserved by the product service, %d by the order service",
			stock, left, reservedByProduct, reservedByOrder)
	case left > 1 && rejected+int(refused.Load()) > 0:
		b.Fatalf("%d units left unsold while %d orders were rejected", left, rejected+int(refused.Load()))
	}
	spans.Reset() // the in-memory trace exporter of TestMain holds every order's spans
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted-orders/s")
	b.ReportMetric(float64(b.N)/decided.Seconds(), "decided-orders/s")
	b.ReportMetric(float64(rejected)+float64(refused.Load()), "rejected-orders")
	b.ReportMetric(float64(oversold), "oversold-units")
}

// sagaServices are the product and order services in this process, Kafka
// (kfake) between them, as the saga benchmarks run them: started fresh, on
// databases of their own.
type sagaServices struct {
	productAPI, orderAPI *apitest.Client
	productURL, orderURL string
}

// startSagaServices starts them. Nobody pays in the benchmarks, so the pending
// limits are out of reach: a 409 must mean stock or a product not yet known.
func startSagaServices(b *testing.B) sagaServices {
	log := logger()
	brokers := kafkatest.NewCluster(b, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))
	s := sagaServices{productURL: testenv.NewDatabase(b), orderURL: testenv.NewDatabase(b)}
	productApp, err := product.New(product.Config{
		ShutdownTimeout: 5 * time.Second, Database: pg.Config{URL: s.productURL, MaxConns: 10},
		Kafka: kafka.Connection{Brokers: brokers}, ConsumerMaxAttempts: 3, Identity: apitest.IdentityConfig(),
	}, log.With("service", "product"), serviceRegistry())
	if err != nil {
		b.Fatal(err)
	}
	s.productAPI = apitest.Start(b, productApp.Serve)
	s.productAPI.Audience = "product"
	orderApp, err := order.New(order.Config{
		ShutdownTimeout: 5 * time.Second, Database: pg.Config{URL: s.orderURL, MaxConns: 10},
		Redis: redisx.Config{Addrs: []string{testenv.RedisAddr(b)}}, Kafka: kafka.Connection{Brokers: brokers}, AMQP: amqp.Config{URL: testenv.OwnAMQPURL(b)},
		ReminderDelays: []time.Duration{time.Hour}, ExpiryDelay: 2 * time.Hour, LockTTL: 10 * time.Second, ConsumerMaxAttempts: 3,
		MaxPendingOrders: 1_000_000, MaxPendingUnits: 1_000_000_000,
		Identity: apitest.IdentityConfig(),
	}, log.With("service", "order"), serviceRegistry())
	if err != nil {
		b.Fatal(err)
	}
	s.orderAPI = apitest.Start(b, orderApp.Serve)
	return s
}

// postOrder places one order as customer; errors and statuses are the caller's
// to judge (the worker goroutines may not stop the benchmark themselves).
func postOrder(client *http.Client, base string, customer identity.User, productID, quantity int64) (int, error) {
	body := fmt.Sprintf(`{"request_id":%q,"items":[{"product_id":%d,"quantity":%d}]}`, uuid.NewString(), productID, quantity)
	req, err := http.NewRequest(http.MethodPost, base+"/orders", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	// As the gateway would send it: the identity signed for the order service.
	if err := apitest.Issuer().Header(req.Header, customer, "order"); err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func openPool(b *testing.B, url string) *pgxpool.Pool {
	b.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

func countRows(b *testing.B, db *pgxpool.Pool, query string, args ...any) int {
	b.Helper()
	var n int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	return n
}
