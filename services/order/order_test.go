package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/telemetry"
	"github.com/kshop/kshop/services/platform/testenv"
)

var quiet = testLogger()

func testLogger() *slog.Logger {
	if os.Getenv("KSHOP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var (
	ann = identity.User{ID: 101, Email: "ann@example.com", Roles: []string{"customer"}}
	bob = identity.User{ID: 102, Email: "bob@example.com", Roles: []string{"customer"}}
)

func TestMain(m *testing.M) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "order-test", SampleRatio: 1})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = tel.Shutdown(context.Background())
	os.Exit(code)
}

type service struct {
	*apitest.Client
	metrics *apitest.Client // the metrics port
	db      *pgxpool.Pool
	app     *order.App
	brokers string
	amqpURL string
}

func testConfig(t testing.TB) order.Config {
	t.Helper()
	return order.Config{
		ShutdownTimeout:     5 * time.Second,
		Database:            pg.Config{URL: testenv.NewDatabase(t), MaxConns: 20},
		Redis:               redisx.Config{Addrs: []string{testenv.RedisAddr(t)}},
		Kafka:               kafka.Connection{Brokers: kafkatest.NewCluster(t, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))},
		AMQP:                amqp.Config{URL: testenv.OwnAMQPURL(t)},
		ReminderDelays:      []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour},
		ExpiryDelay:         4 * time.Hour,
		LockTTL:             10 * time.Second,
		ConsumerMaxAttempts: 3,
		Identity:            apitest.IdentityConfig(),
	}
}

func start(t testing.TB, cfg order.Config) *service {
	t.Helper()
	app, err := order.New(cfg, quiet, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	client := apitest.Start(t, app.Serve)
	client.Audience = "order"
	return &service{Client: client, metrics: apitest.Run(t, app.ServeMetrics), db: pool, app: app, brokers: cfg.Kafka.Brokers, amqpURL: cfg.AMQP.URL}
}

type orderJSON struct {
	ID           int64   `json:"id"`
	TotalAmount  string  `json:"total_amount"`
	Description  string  `json:"description"`
	Status       string  `json:"status"`
	CancelReason *string `json:"cancel_reason"`
	Items        []struct {
		ID        int64  `json:"id"`
		ProductID int64  `json:"product_id"`
		Quantity  int64  `json:"quantity"`
		Price     string `json:"price"`
	} `json:"items"`
	CreatedAt time.Time `json:"created_at"`
}

func orderIn(t testing.TB, r apitest.Reply) orderJSON {
	t.Helper()
	var o orderJSON
	r.Decode(t, &o)
	return o
}

func (s *service) product(t testing.TB, id int64, price string, quantity int64) {
	t.Helper()
	if err := s.app.Saga.ProductChanged(context.Background(), events.Product{
		ID: id, Name: fmt.Sprint("product ", id), Description: "d", Price: money.MustParse(price), Quantity: quantity,
		Version: time.Now().UnixNano(), CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
}

func orderBody(requestID string, items ...[2]int64) map[string]any {
	list := []map[string]int64{}
	for _, it := range items {
		list = append(list, map[string]int64{"product_id": it[0], "quantity": it[1]})
	}
	return map[string]any{"request_id": requestID, "description": "test order", "items": list}
}

func (s *service) placeOrder(t testing.TB, as *identity.User, items ...[2]int64) orderJSON {
	t.Helper()
	return orderIn(t, s.Do(t, as, http.MethodPost, "/orders", orderBody(uuid.NewString(), items...)).Expect(t, http.StatusCreated, ""))
}

func (s *service) status(t testing.TB, id int64) (status, reason string) {
	t.Helper()
	var r *string
	if err := s.db.QueryRow(context.Background(), `SELECT status, cancel_reason FROM orders WHERE id = $1`, id).Scan(&status, &r); err != nil {
		t.Fatal(err)
	}
	if r != nil {
		reason = *r
	}
	return status, reason
}

func count(t testing.TB, db *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (s *service) reserve(t testing.TB, orderID int64) {
	t.Helper()
	if err := s.app.Saga.StockReserved(context.Background(), uuid.NewString(), events.StockReserved{OrderID: orderID}); err != nil {
		t.Fatal(err)
	}
}

func (s *service) pay(t testing.TB, as *identity.User, orderID int64) apitest.Reply {
	t.Helper()
	return s.Do(t, as, http.MethodPost, "/orders/pay", map[string]any{"request_id": uuid.NewString(), "order_id": orderID})
}

var byOrderID = amqptest.KeyOf("order_id")

func TestCreateComputesTheTotalAndWritesEverythingInOneTransaction(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "0.10", 100)
	s.product(t, 2, "25000.00", 5)
	o := s.placeOrder(t, &ann, [2]int64{1, 3}, [2]int64{2, 2})
	if o.TotalAmount != "50000.30" || o.Status != "PENDING" || o.CancelReason != nil || len(o.Items) != 2 || o.Items[0].Price != "0.10" {
		t.Fatalf("order %+v", o)
	}
	for topic, n := range map[string]int{"order-created": 1} {
		if got := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = $1`, topic); got != n {
			t.Errorf("%d %s rows", got, topic)
		}
	}
	// The first timer of the chain alone: each one that fires queues the next.
	if got := count(t, s.db, `SELECT count(*) FROM outbox WHERE destination = 'amqp' AND key = 'order-reminder.delay.1h'`); got != 1 {
		t.Errorf("%d first reminder timers, want 1", got)
	}
	if got := count(t, s.db, `SELECT count(*) FROM outbox WHERE destination = 'amqp' AND key LIKE '%.delay.%'`); got != 1 {
		t.Errorf("%d timers, want 1", got)
	}
	got := orderIn(t, s.Do(t, &ann, http.MethodGet, fmt.Sprint("/orders/", o.ID), nil).Expect(t, http.StatusOK, ""))
	if got.ID != o.ID || got.TotalAmount != o.TotalAmount || len(got.Items) != 2 {
		t.Fatalf("GET %+v", got)
	}
	s.Do(t, &bob, http.MethodGet, fmt.Sprint("/orders/", o.ID), nil).Expect(t, http.StatusNotFound, "order not found")
	s.Do(t, nil, http.MethodGet, fmt.Sprint("/orders/", o.ID), nil).Expect(t, http.StatusUnauthorized, "unauthorized")
}

func TestConcurrentIdenticalRequestsCreateOneOrder(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "10.00", 1000)
	requestID := uuid.NewString()
	const racers = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	ids := map[int64]bool{}
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.Do(t, &ann, http.MethodPost, "/orders", orderBody(requestID, [2]int64{1, 2}))
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			if r.Status == http.StatusOK || r.Status == http.StatusCreated {
				var o orderJSON
				_ = json.Unmarshal(r.Body.Data, &o)
				ids[o.ID] = true
			} else if r.Status == http.StatusConflict && r.Body.Message != "request duplicate" {
				statuses[-1]++
			}
		}()
	}
	wg.Wait()
	if statuses[http.StatusCreated] != 1 || statuses[http.StatusCreated]+statuses[http.StatusOK]+statuses[http.StatusConflict] != racers || len(ids) != 1 {
		t.Fatalf("statuses %v, order ids %v: want one 201, the rest 200 (same order) or 409 request duplicate", statuses, ids)
	}
	if n := count(t, s.db, `SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-created'`); n != 1 {
		t.Fatalf("%d order-created events, want 1", n)
	}
	again := orderIn(t, s.Do(t, &ann, http.MethodPost, "/orders", orderBody(requestID, [2]int64{1, 2})).Expect(t, http.StatusOK, ""))
	if !ids[again.ID] {
		t.Fatalf("a retry returned order %d, want the first one", again.ID)
	}
	// The same request id from another customer is another order.
	s.Do(t, &bob, http.MethodPost, "/orders", orderBody(requestID, [2]int64{1, 2})).Expect(t, http.StatusCreated, "")
}

// A caller past the gateway cannot act as a customer: bare X-User-* headers
// and a token the gateway signed for the product service are refused, and
// nothing is created; the gateway's token for this service works.
func TestIdentityNeedsTheGatewaysToken(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "10.00", 3)
	forger := *s.Client
	forger.Audience = ""
	forger.Do(t, &ann, http.MethodGet, "/orders", nil).Expect(t, http.StatusUnauthorized, "unauthorized")
	forger.Do(t, &ann, http.MethodPost, "/orders", orderBody("forged", [2]int64{1, 1})).Expect(t, http.StatusUnauthorized, "unauthorized")
	forger.Audience = "product"
	forger.Do(t, &ann, http.MethodPost, "/orders", orderBody("misaddressed", [2]int64{1, 1})).Expect(t, http.StatusUnauthorized, "unauthorized")
	if n := count(t, s.db, `SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("%d orders created by forged identities", n)
	}
	s.Do(t, &ann, http.MethodPost, "/orders", orderBody("real", [2]int64{1, 1})).Expect(t, http.StatusCreated, "")
}

func TestOrderErrors(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "10.00", 3)
	s.product(t, 2, "10.00", 3)
	if err := s.app.Saga.ProductDeleted(context.Background(), events.ProductDeleted{ID: 2, Version: time.Now().UnixNano(), DeletedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.product(t, 5, "10.00", 3)
	// The answer names the missing product, as docs/api.md shows it: 3 was
	// never heard of though 5 was, 2 is deleted, and no product service hands
	// out 1006 before the copy has heard of more than 5.
	for requestID, line := range map[string][2]int64{"r1": {3, 1}, "r2": {2, 1}, "r5": {5 + 1000 + 1, 1}} {
		r := s.Do(t, &ann, http.MethodPost, "/orders", orderBody(requestID, line)).Expect(t, http.StatusNotFound, "product not found")
		if want := fmt.Sprintf(`{"message":"product not found","errors":[{"field":"items","message":"%d is not a product on sale"}]}`, line[0]); strings.TrimSpace(string(r.Raw)) != want {
			t.Errorf("product %d: answered %s, want %s", line[0], r.Raw, want)
		}
	}
	// A product above every id the copy holds may have been created a moment
	// ago, its event on the way: retry, not "no such product".
	r := s.Do(t, &ann, http.MethodPost, "/orders", orderBody("r4", [2]int64{99, 1})).Expect(t, http.StatusConflict, "product not available yet; retry shortly")
	if want := `{"message":"product not available yet; retry shortly","errors":[{"field":"items","message":"99 is not known to the order service yet; if it was just created, retry"}]}`; strings.TrimSpace(string(r.Raw)) != want || r.Header.Get("Retry-After") != "1" {
		t.Errorf("product 99: answered %s (Retry-After %q), want %s (Retry-After 1)", r.Raw, r.Header.Get("Retry-After"), want)
	}
	s.Do(t, &ann, http.MethodPost, "/orders", orderBody("r3", [2]int64{1, 4})).Expect(t, http.StatusConflict, "insufficient product stock")
	for name, tc := range map[string]struct {
		body  any
		field string
	}{
		"no items":           {map[string]any{"request_id": "x", "items": []any{}}, "items"},
		"duplicate products": {orderBody("x", [2]int64{1, 1}, [2]int64{1, 2}), "items"},
		"zero quantity":      {orderBody("x", [2]int64{1, 0}), "items[0].quantity"},
		"huge quantity":      {orderBody("x", [2]int64{1, 1001}), "items[0].quantity"},
		"negative product":   {orderBody("x", [2]int64{-1, 1}), "items[0].product_id"},
		"no request id":      {orderBody("", [2]int64{1, 1}), "request_id"},
		"long request id":    {orderBody(strings.Repeat("r", 65), [2]int64{1, 1}), "request_id"},
		"long description":   {map[string]any{"request_id": "x", "description": strings.Repeat("d", 501), "items": []map[string]int{{"product_id": 1, "quantity": 1}}}, "description"},
		"quantity as string": {`{"request_id":"x","items":[{"product_id":1,"quantity":"1"}]}`, "items.quantity"},
		"too many items":     {map[string]any{"request_id": "x", "items": manyItems(51)}, "items"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.Do(t, &ann, http.MethodPost, "/orders", tc.body).Expect(t, http.StatusBadRequest, "input validation error")
			if len(r.Body.Errors) == 0 || r.Body.Errors[0].Field != tc.field {
				t.Fatalf("errors %+v, want %q first", r.Body.Errors, tc.field)
			}
		})
	}
	s.Do(t, nil, http.MethodPost, "/orders", orderBody("x", [2]int64{1, 1})).Expect(t, http.StatusUnauthorized, "unauthorized")
	s.Do(t, &ann, http.MethodGet, "/orders/abc", nil).Expect(t, http.StatusBadRequest, "expected a numeric value but got 'abc'")
	s.Do(t, &ann, http.MethodGet, "/orders/12345", nil).Expect(t, http.StatusNotFound, "order not found")
	if n := count(t, s.db, `SELECT count(*) FROM orders`) + count(t, s.db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("refused requests wrote %d rows", n)
	}
	// Product 99 arrives: the same request, retried, is accepted.
	s.product(t, 99, "10.00", 3)
	s.Do(t, &ann, http.MethodPost, "/orders", orderBody("r4", [2]int64{99, 1})).Expect(t, http.StatusCreated, "")
}

func manyItems(n int) []map[string]int {
	out := make([]map[string]int, n)
	for i := range out {
		out[i] = map[string]int{"product_id": i + 1, "quantity": 1}
	}
	return out
}

func TestPaymentRules(t *testing.T) {
	s := start(t, testConfig(t))
	mail := amqptest.NewReader(t, s.amqpURL)
	s.product(t, 1, "10.00", 100)
	o := s.placeOrder(t, &ann, [2]int64{1, 2})

	s.pay(t, &ann, o.ID).Expect(t, http.StatusConflict, "order stock is not reserved yet; try again shortly")
	s.reserve(t, o.ID)
	s.pay(t, &bob, o.ID).Expect(t, http.StatusNotFound, "order not found")
	s.pay(t, &ann, 999999).Expect(t, http.StatusNotFound, "order not found")

	requestID := uuid.NewString()
	body := map[string]any{"request_id": requestID, "order_id": o.ID}
	paid := s.Do(t, &ann, http.MethodPost, "/orders/pay", body).Expect(t, http.StatusOK, "")
	if string(paid.Body.Data) != fmt.Sprintf(`{"order_id":%d,"status":"PAID"}`, o.ID) {
		t.Fatalf("pay answered %s", paid.Body.Data)
	}
	again := s.Do(t, &ann, http.MethodPost, "/orders/pay", body).Expect(t, http.StatusOK, "")
	if string(again.Body.Data) != string(paid.Body.Data) {
		t.Fatalf("repeated pay answered %s", again.Body.Data)
	}
	s.pay(t, &ann, o.ID).Expect(t, http.StatusConflict, "order already paid")
	s.Do(t, &ann, http.MethodPost, "/orders/cancel", map[string]any{"request_id": uuid.NewString(), "order_id": o.ID}).Expect(t, http.StatusConflict, "order already paid")

	success, err := events.Decode[events.OrderSuccessMail](mail.Next(events.QueueOrderSuccess, byOrderID, fmt.Sprint(o.ID)).Body)
	if err != nil || success.Email != ann.Email || success.TotalAmount.String() != "20.00" || len(success.Items) != 1 || success.Items[0].Name != "product 1" {
		t.Fatalf("order-success mail %+v, %v", success, err)
	}
	mail.None(events.QueueOrderSuccess, byOrderID, fmt.Sprint(o.ID), 300*time.Millisecond)
	// One order-paid, for the product service to record the units as sold,
	// whatever number of times the payment was asked for.
	var payload []byte
	if err := s.db.QueryRow(context.Background(), `SELECT payload FROM outbox WHERE topic = 'order-paid' AND key = $1`, fmt.Sprint(o.ID)).Scan(&payload); err != nil {
		t.Fatalf("order-paid: %v", err)
	}
	if event, err := events.Decode[events.OrderPaid](payload); err != nil || event.OrderID != o.ID || event.CustomerID != ann.ID || event.PaidAt.IsZero() {
		t.Fatalf("order-paid %+v, %v", event, err)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-paid'`); n != 1 {
		t.Fatalf("%d order-paid events for one payment", n)
	}

	cancelled := s.placeOrder(t, &ann, [2]int64{1, 1})
	s.Do(t, &ann, http.MethodPost, "/orders/cancel", map[string]any{"request_id": uuid.NewString(), "order_id": cancelled.ID}).Expect(t, http.StatusOK, "")
	s.pay(t, &ann, cancelled.ID).Expect(t, http.StatusConflict, "order already cancelled")
	if st, reason := s.status(t, cancelled.ID); st != "CANCELLED" || reason != "customer" {
		t.Fatalf("cancelled order is %s (%s)", st, reason)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-cancelled' AND key = $1`, fmt.Sprint(cancelled.ID)); n != 1 {
		t.Fatalf("%d order-cancelled events for a customer cancel", n)
	}
	mail.Next(events.QueueOrderCancelled, byOrderID, fmt.Sprint(cancelled.ID))
}

func TestSagaThroughKafka(t *testing.T) {
	s := start(t, testConfig(t))
	mail := amqptest.NewReader(t, s.amqpURL)
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: s.brokers}, ClientID: "product-test"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)

	// The product copy follows the product events, newest version wins.
	now := time.Now()
	kafkatest.Publish(t, producer, events.TopicProductCreated, events.Key(7), events.Product{ID: 7, Name: "tea", Description: "d", Price: money.MustParse("3.50"), Quantity: 10, Version: 1, CreatedAt: now, UpdatedAt: now}, uuid.NewString())
	kafkatest.Publish(t, producer, events.TopicProductUpdated, events.Key(7), events.Product{ID: 7, Name: "tea", Description: "d", Price: money.MustParse("4.00"), Quantity: 10, Version: 3, CreatedAt: now, UpdatedAt: now}, uuid.NewString())
	kafkatest.Publish(t, producer, events.TopicProductUpdated, events.Key(7), events.Product{ID: 7, Name: "tea", Description: "d", Price: money.MustParse("9.99"), Quantity: 10, Version: 2, CreatedAt: now, UpdatedAt: now}, uuid.NewString())
	testenv.WaitFor(t, 20*time.Second, "the product copy at version 3", func() bool {
		return count(t, s.db, `SELECT count(*) FROM products WHERE id = 7 AND version = 3 AND price = 4.00`) == 1
	})
	time.Sleep(300 * time.Millisecond)
	if n := count(t, s.db, `SELECT count(*) FROM products WHERE id = 7 AND version = 3 AND price = 4.00`); n != 1 {
		t.Fatal("an older product version overwrote a newer one")
	}

	reserved := s.placeOrder(t, &ann, [2]int64{7, 2})
	rejected := s.placeOrder(t, &ann, [2]int64{7, 1})
	kafkatest.Publish(t, producer, events.TopicStockReserved, events.Key(reserved.ID), events.StockReserved{OrderID: reserved.ID}, uuid.NewString())
	kafkatest.Publish(t, producer, events.TopicStockRejected, events.Key(rejected.ID), events.StockRejected{OrderID: rejected.ID, Reason: "insufficient_stock",
		Shortages: []events.Shortage{{ProductID: 7, Requested: 1, Available: 0}}}, uuid.NewString())
	testenv.WaitFor(t, 20*time.Second, "the rejected order to be cancelled", func() bool {
		st, reason := s.status(t, rejected.ID)
		return st == "CANCELLED" && reason == "out_of_stock"
	})
	cancelMail, err := events.Decode[events.OrderCancelledMail](mail.Next(events.QueueOrderCancelled, byOrderID, fmt.Sprint(rejected.ID)).Body)
	if err != nil || cancelMail.Reason != "out_of_stock" || cancelMail.Email != ann.Email {
		t.Fatalf("cancellation mail %+v, %v", cancelMail, err)
	}
	testenv.WaitFor(t, 20*time.Second, "the reserved order to be payable", func() bool {
		return s.pay(t, &ann, reserved.ID).Status == http.StatusOK
	})

	kafkatest.Publish(t, producer, events.TopicProductDeleted, events.Key(7), events.ProductDeleted{ID: 7, Version: 4, DeletedAt: now}, uuid.NewString())
	testenv.WaitFor(t, 20*time.Second, "the deletion", func() bool {
		return count(t, s.db, `SELECT count(*) FROM products WHERE id = 7 AND deleted`) == 1
	})
	s.Do(t, &ann, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{7, 1})).Expect(t, http.StatusNotFound, "product not found")
}

func TestTimersRemindWhilePendingThenExpire(t *testing.T) {
	cfg := testConfig(t)
	cfg.ReminderDelays = []time.Duration{500 * time.Millisecond, time.Second}
	cfg.ExpiryDelay = 2 * time.Second
	s := start(t, cfg)
	mail := amqptest.NewReader(t, s.amqpURL)
	s.product(t, 1, "5.00", 100)

	unpaid := s.placeOrder(t, &ann, [2]int64{1, 1})
	paid := s.placeOrder(t, &ann, [2]int64{1, 1})
	s.reserve(t, paid.ID)
	s.pay(t, &ann, paid.ID).Expect(t, http.StatusOK, "")
	cancelled := s.placeOrder(t, &ann, [2]int64{1, 1})
	s.Do(t, &ann, http.MethodPost, "/orders/cancel", map[string]any{"request_id": uuid.NewString(), "order_id": cancelled.ID}).Expect(t, http.StatusOK, "")

	for want := 1; want <= 2; want++ {
		reminder, err := events.Decode[events.PaymentReminderMail](mail.Next(events.QueuePaymentReminder, byOrderID, fmt.Sprint(unpaid.ID)).Body)
		if err != nil || reminder.ReminderNumber != want || reminder.Email != ann.Email || reminder.TotalAmount.String() != "5.00" {
			t.Fatalf("reminder %d: %+v, %v", want, reminder, err)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "expiry", func() bool {
		st, _ := s.status(t, unpaid.ID)
		return st == "CANCELLED"
	})
	var lived time.Duration
	if err := s.db.QueryRow(context.Background(), `SELECT extract(epoch FROM updated_at - created_at) * interval '1 second' FROM orders WHERE id = $1`, unpaid.ID).Scan(&lived); err != nil {
		t.Fatal(err)
	}
	if lived < 2*time.Second {
		t.Fatalf("expired %v after it was placed, before its 2 s delay", lived)
	}
	if _, reason := s.status(t, unpaid.ID); reason != "expired" {
		t.Fatalf("cancel reason %q, want expired", reason)
	}
	testenv.WaitFor(t, 15*time.Second, "the paid order to complete", func() bool {
		st, _ := s.status(t, paid.ID)
		return st == "COMPLETED"
	})
	// A paid order gets no reminders; the expired one restocks through order-cancelled.
	if n := mail.Count(events.QueuePaymentReminder, byOrderID, fmt.Sprint(paid.ID)); n != 0 {
		t.Fatalf("%d reminders for a paid order", n)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-cancelled' AND key = $1`, fmt.Sprint(unpaid.ID)); n != 1 {
		t.Fatalf("%d order-cancelled events for the expired order, want 1", n)
	}
	mail.Next(events.QueueOrderCancelled, byOrderID, fmt.Sprint(unpaid.ID))

	// One timer at a time: each order's chain queued reminder 1, reminder 2 and
	// the expiry one after the other, except the cancelled order's, which
	// ended when its first reminder found it cancelled.
	testenv.WaitFor(t, 15*time.Second, "every reminder timer to be handled", func() bool {
		return count(t, s.db, `SELECT count(*) FROM inbox WHERE consumer = 'order.order-reminder'`) == 5
	})
	timers := func(o orderJSON) int {
		return count(t, s.db, `SELECT count(*) FROM outbox WHERE key LIKE '%.delay.%' AND convert_from(payload, 'UTF8')::jsonb->>'order_id' = $1`, fmt.Sprint(o.ID))
	}
	for _, c := range []struct {
		name  string
		order orderJSON
		want  int
	}{{"unpaid", unpaid, 3}, {"paid", paid, 3}, {"cancelled", cancelled, 1}} {
		if got := timers(c.order); got != c.want {
			t.Errorf("the %s order queued %d timers, want %d", c.name, got, c.want)
		}
	}
}

func TestPayAndExpiryRaceHasOneWinner(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "1.00", 10_000)
	ctx := context.Background()
	const rounds = 30
	paidWins := 0
	for range rounds {
		o := s.placeOrder(t, &ann, [2]int64{1, 1})
		s.reserve(t, o.ID)
		var payStatus int
		var expireErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); payStatus = s.pay(t, &ann, o.ID).Status }()
		go func() {
			defer wg.Done()
			expireErr = s.app.Saga.Expire(ctx, uuid.NewString(), events.OrderExpiry{OrderID: o.ID})
		}()
		wg.Wait()
		if expireErr != nil {
			t.Fatal(expireErr)
		}
		status, _ := s.status(t, o.ID)
		switch {
		case payStatus == http.StatusOK && status == "COMPLETED":
			paidWins++
		case payStatus == http.StatusConflict && status == "CANCELLED":
		default:
			t.Fatalf("pay answered %d and the order is %s: want paid+completed or refused+cancelled", payStatus, status)
		}
		var paidAt *time.Time
		_ = s.db.QueryRow(ctx, `SELECT paid_at FROM orders WHERE id = $1`, o.ID).Scan(&paidAt)
		if status == "CANCELLED" && paidAt != nil {
			t.Fatal("a paid order was cancelled")
		}
	}
	t.Logf("pay won %d of %d races", paidWins, rounds)
}

func TestRedeliveredTimersAndEventsHaveOneEffect(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "1.00", 100)
	ctx := context.Background()
	o := s.placeOrder(t, &ann, [2]int64{1, 1})
	timerID := uuid.NewString()
	for range 3 {
		if err := s.app.Saga.Remind(ctx, timerID, events.OrderReminder{OrderID: o.ID, ReminderNumber: 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.app.Saga.Expire(ctx, timerID, events.OrderExpiry{OrderID: o.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE key = 'send.payment.reminder'`); n != 1 {
		t.Fatalf("%d reminders for one redelivered timer", n)
	}
	// The first timer, and the next one the reminder queued, once.
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE key LIKE '%.delay.%'`); n != 2 {
		t.Fatalf("%d timers queued, want the first and the one after it", n)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-cancelled'`); n != 1 {
		t.Fatalf("%d order-cancelled for one redelivered expiry", n)
	}
	// A second expiry timer (another id) for an order already cancelled does nothing.
	if err := s.app.Saga.Expire(ctx, uuid.NewString(), events.OrderExpiry{OrderID: o.ID}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-cancelled'`); n != 1 {
		t.Fatal("a second expiry cancelled again")
	}
}

func TestTimersSurviveABrokerRestart(t *testing.T) {
	broker := testenv.Restartable(t)
	cfg := testConfig(t)
	cfg.AMQP.URL = broker.URL
	cfg.ReminderDelays = []time.Duration{4 * time.Second}
	cfg.ExpiryDelay = 6 * time.Second
	s := start(t, cfg)
	s.product(t, 1, "1.00", 100)
	o := s.placeOrder(t, &ann, [2]int64{1, 1})
	testenv.WaitFor(t, 10*time.Second, "the timers to leave the outbox", func() bool {
		return count(t, s.db, `SELECT count(*) FROM outbox WHERE destination = 'amqp' AND key LIKE '%.delay.%' AND sent_at IS NULL`) == 0
	})
	broker.Stop(t)
	time.Sleep(time.Second)
	broker.Start(t)
	testenv.WaitFor(t, 30*time.Second, "the expiry after the restart", func() bool {
		st, _ := s.status(t, o.ID)
		return st == "CANCELLED"
	})
	// The reminder waited in its delay queue through the restart and, when it
	// fired, queued the expiry: both arrived, one after the other.
	testenv.WaitFor(t, 30*time.Second, "the reminder timer after the restart", func() bool {
		return count(t, s.db, `SELECT count(*) FROM inbox WHERE consumer = 'order.order-reminder'`) == 1
	})
}

func TestListFiltersByDateStatusAndPage(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "1.00", 100)
	for range 3 {
		s.placeOrder(t, &ann, [2]int64{1, 1})
	}
	o := s.placeOrder(t, &ann, [2]int64{1, 1})
	s.Do(t, &ann, http.MethodPost, "/orders/cancel", map[string]any{"request_id": uuid.NewString(), "order_id": o.ID}).Expect(t, http.StatusOK, "")
	s.placeOrder(t, &bob, [2]int64{1, 1})
	if _, err := s.db.Exec(context.Background(), `UPDATE orders SET created_at = now() - interval '40 days' WHERE id = (SELECT min(id) FROM orders)`); err != nil {
		t.Fatal(err)
	}
	list := func(query string) (int, []orderJSON) {
		r := s.Do(t, &ann, http.MethodGet, "/orders?"+query, nil).Expect(t, http.StatusOK, "")
		var orders []orderJSON
		if err := json.Unmarshal(r.Body.Data, &orders); err != nil {
			t.Fatal(err)
		}
		return r.Body.Paging.TotalItem, orders
	}
	if total, orders := list(""); total != 3 || orders[0].ID != o.ID {
		t.Fatalf("default list: %d orders, first %d; want 3 of the last 30 days, newest (%d) first", total, orders[0].ID, o.ID)
	}
	if total, _ := list("status=CANCELLED"); total != 1 {
		t.Fatalf("%d cancelled orders, want 1", total)
	}
	old := time.Now().AddDate(0, 0, -40).Format("02-01-2006")
	if total, _ := list("start-date=" + old + "&end-date=" + old); total != 1 {
		t.Fatalf("%d orders on %s, want 1", total, old)
	}
	if total, orders := list("limit=2&page=2"); total != 3 || len(orders) != 1 {
		t.Fatalf("page 2 of 2: %d total, %d orders", total, len(orders))
	}
	for _, bad := range []string{"start-date=2026-01-01", "end-date=32-01-2026", "start-date=02-01-2026&end-date=01-01-2026", "status=LOST", "limit=0", "limit=26", "page=0"} {
		s.Do(t, &ann, http.MethodGet, "/orders?"+bad, nil).Expect(t, http.StatusBadRequest, "input validation error")
	}
	// The statuses are named in the answer as docs/api.md shows them.
	r := s.Do(t, &ann, http.MethodGet, "/orders?status=LOST", nil).Expect(t, http.StatusBadRequest, "input validation error")
	if want := `{"message":"input validation error","errors":[{"field":"status","message":"must be one of: PENDING, PAID, COMPLETED, CANCELLED"}]}`; strings.TrimSpace(string(r.Raw)) != want {
		t.Fatalf("answered %s, want %s", r.Raw, want)
	}
}

// Hoarding: one customer fired orders in parallel and held the whole
// stock unpaid until expiry. Before the limits every one of these orders was
// created (40 orders, and 200 units for bob); now the customer's row lock makes
// the count exact however the requests interleave.
func TestPendingLimitsHoldUnderParallelOrders(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPendingOrders, cfg.MaxPendingUnits = 5, 12
	s := start(t, cfg)
	s.product(t, 1, "1.00", 100_000)

	fire := func(as *identity.User, racers int, quantity int64) map[string]int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		outcomes := map[string]int{}
		for range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := s.Do(t, as, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, quantity}))
				mu.Lock()
				defer mu.Unlock()
				outcomes[fmt.Sprint(r.Status, " ", r.Body.Message)]++
				if r.Status == http.StatusConflict && r.FirstError() != "items" {
					t.Errorf("the 409 names no field: %s", r.Raw)
				}
			}()
		}
		wg.Wait()
		return outcomes
	}
	// ann: 40 orders of 1 unit; the order limit (5) binds.
	got := fire(&ann, 40, 1)
	if got["201 "] != 5 || got["409 too many pending orders"] != 35 {
		t.Fatalf("ann's 40 parallel orders: %v; want 5 created, 35 refused with 409 too many pending orders", got)
	}
	// bob: 40 orders of 5 units; the unit limit (12) binds after 2 orders.
	got = fire(&bob, 40, 5)
	if got["201 "] != 2 || got["409 too many units in pending orders"] != 38 {
		t.Fatalf("bob's 40 parallel orders of 5 units: %v; want 2 created, 38 refused with 409 too many units in pending orders", got)
	}
	for _, c := range []struct {
		customer      int64
		orders, units int
	}{{ann.ID, 5, 5}, {bob.ID, 2, 10}} {
		if n := count(t, s.db, `SELECT count(*) FROM orders WHERE customer_id = $1`, c.customer); n != c.orders {
			t.Errorf("customer %d has %d orders, want %d", c.customer, n, c.orders)
		}
		if n := count(t, s.db, `SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.customer_id = $1`, c.customer); n != c.units {
			t.Errorf("customer %d holds %d units, want %d", c.customer, n, c.units)
		}
	}
	pendingCountsMatch(t, s.db)
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-created'`); n != 7 {
		t.Fatalf("%d order-created events, want 7: a refused order must announce nothing", n)
	}

	r := s.Do(t, &bob, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, 3})).Expect(t, http.StatusConflict, "too many units in pending orders")
	if want := "a customer may hold at most 12 units in pending (unpaid) orders; 10 are held and this order adds 3"; len(r.Body.Errors) != 1 || r.Body.Errors[0].Message != want {
		t.Fatalf("errors %+v, want items: %q", r.Body.Errors, want)
	}
	r = s.Do(t, &ann, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, 1})).Expect(t, http.StatusConflict, "too many pending orders")
	if want := "a customer may have at most 5 pending (unpaid) orders; pay or cancel one, or wait for one to expire"; len(r.Body.Errors) != 1 || r.Body.Errors[0].Message != want {
		t.Fatalf("errors %+v, want items: %q", r.Body.Errors, want)
	}
	// A request id that created an order gets that order again, whatever the
	// limits say now.
	var requestID string
	var id int64
	if err := s.db.QueryRow(context.Background(), `SELECT request_id, id FROM orders WHERE customer_id = $1 LIMIT 1`, ann.ID).Scan(&requestID, &id); err != nil {
		t.Fatal(err)
	}
	if again := orderIn(t, s.Do(t, &ann, http.MethodPost, "/orders", orderBody(requestID, [2]int64{1, 1})).Expect(t, http.StatusOK, "")); again.ID != id {
		t.Fatalf("the retry of request %s answered order %d, want %d", requestID, again.ID, id)
	}
	s.Do(t, nil, http.MethodGet, "/metrics", nil).Expect(t, http.StatusNotFound, "route not found")
	metrics := string(s.metrics.Do(t, nil, http.MethodGet, "/metrics", nil).Raw)
	for _, want := range []string{`kshop_orders_refused_total{limit="orders"} 36`, `kshop_orders_refused_total{limit="units"} 39`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Paid, cancelled (by the customer, for lack of stock) and expired orders stop
// counting as pending: each frees its place at once.
func TestOrdersLeavingPendingFreeTheLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPendingOrders, cfg.MaxPendingUnits = 2, 1000
	s := start(t, cfg)
	s.product(t, 1, "1.00", 100_000)
	ctx := context.Background()
	place := func() apitest.Reply {
		return s.Do(t, &ann, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, 1}))
	}
	first, second := s.placeOrder(t, &ann, [2]int64{1, 1}), s.placeOrder(t, &ann, [2]int64{1, 1})
	place().Expect(t, http.StatusConflict, "too many pending orders")
	s.placeOrder(t, &bob, [2]int64{1, 1}) // another customer's limit is their own

	s.reserve(t, first.ID)
	s.pay(t, &ann, first.ID).Expect(t, http.StatusOK, "")
	third := orderIn(t, place().Expect(t, http.StatusCreated, ""))
	place().Expect(t, http.StatusConflict, "too many pending orders")

	s.Do(t, &ann, http.MethodPost, "/orders/cancel", map[string]any{"request_id": uuid.NewString(), "order_id": second.ID}).Expect(t, http.StatusOK, "")
	fourth := orderIn(t, place().Expect(t, http.StatusCreated, ""))
	place().Expect(t, http.StatusConflict, "too many pending orders")

	if err := s.app.Saga.Expire(ctx, uuid.NewString(), events.OrderExpiry{OrderID: third.ID}); err != nil {
		t.Fatal(err)
	}
	place().Expect(t, http.StatusCreated, "")
	place().Expect(t, http.StatusConflict, "too many pending orders")

	if err := s.app.Saga.StockRejected(ctx, uuid.NewString(), events.StockRejected{OrderID: fourth.ID, Reason: "insufficient_stock"}); err != nil {
		t.Fatal(err)
	}
	place().Expect(t, http.StatusCreated, "")
	place().Expect(t, http.StatusConflict, "too many pending orders")
	pendingCountsMatch(t, s.db)
}

// Totals: 11 lines of 1000 units at 99 999 999.99 total
// 1 099 999 999 890.00, more than numeric(14,2) holds, and the order was a 500.
// The column now holds the largest total the contract admits (50 such lines).
func TestTheLargestTotalsTheContractAdmitsAreStored(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPendingUnits = (11 + 50) * 1000 // both orders stay pending
	s := start(t, cfg)
	var eleven, fifty [][2]int64
	for id := int64(1); id <= 50; id++ {
		s.product(t, id, "99999999.99", 1000)
		if id <= 11 {
			eleven = append(eleven, [2]int64{id, 1000})
		}
		fifty = append(fifty, [2]int64{id, 1000})
	}
	for _, c := range []struct {
		lines [][2]int64
		total string
	}{{eleven, "1099999999890.00"}, {fifty, "4999999999500.00"}} {
		o := orderIn(t, s.Do(t, &ann, http.MethodPost, "/orders", orderBody(uuid.NewString(), c.lines...)).Expect(t, http.StatusCreated, ""))
		if o.TotalAmount != c.total {
			t.Fatalf("%d lines: total %s, want %s", len(c.lines), o.TotalAmount, c.total)
		}
		if got := orderIn(t, s.Do(t, &ann, http.MethodGet, fmt.Sprint("/orders/", o.ID), nil).Expect(t, http.StatusOK, "")); got.TotalAmount != c.total {
			t.Fatalf("%d lines: stored total %s, want %s", len(c.lines), got.TotalAmount, c.total)
		}
		var created events.OrderCreated
		var payload []byte
		if err := s.db.QueryRow(context.Background(), `SELECT payload FROM outbox WHERE topic = 'order-created' AND key = $1`, fmt.Sprint(o.ID)).Scan(&payload); err != nil {
			t.Fatal(err)
		}
		if created, _ = events.Decode[events.OrderCreated](payload); created.TotalAmount.String() != c.total {
			t.Fatalf("order-created carries %s, want %s", created.TotalAmount, c.total)
		}
	}
}

// A batch of stock-reserved answers records each order's reservation once: a
// redelivery, an unknown order and an order already rejected change nothing.
func TestABatchOfReservationsRecordsEachOnce(t *testing.T) {
	s := start(t, testConfig(t))
	s.product(t, 1, "1.00", 100)
	ctx := context.Background()
	first, second, rejected := s.placeOrder(t, &ann, [2]int64{1, 1}), s.placeOrder(t, &ann, [2]int64{1, 2}), s.placeOrder(t, &ann, [2]int64{1, 3})
	if err := s.app.Saga.StockRejected(ctx, uuid.NewString(), events.StockRejected{OrderID: rejected.ID, Reason: "insufficient_stock"}); err != nil {
		t.Fatal(err)
	}
	answer := func(id string, orderID int64) batch.Event[events.StockReserved] {
		return batch.Event[events.StockReserved]{Ctx: ctx, ID: id, Payload: events.StockReserved{OrderID: orderID}}
	}
	redelivered := uuid.NewString()
	answers := []batch.Event[events.StockReserved]{
		answer(redelivered, first.ID), answer(uuid.NewString(), second.ID), answer(redelivered, first.ID),
		answer(uuid.NewString(), rejected.ID), answer(uuid.NewString(), 999999),
	}
	for range 2 { // the whole batch redelivered
		if err := s.app.Saga.StockReservedAll(ctx, answers); err != nil {
			t.Fatal(err)
		}
	}
	stock := func(id int64) string {
		var status string
		if err := s.db.QueryRow(ctx, `SELECT stock_status FROM orders WHERE id = $1`, id).Scan(&status); err != nil {
			t.Fatal(err)
		}
		return status
	}
	if a, b, c := stock(first.ID), stock(second.ID), stock(rejected.ID); a != "reserved" || b != "reserved" || c != "rejected" {
		t.Fatalf("stock status %s, %s, %s; want reserved, reserved, rejected", a, b, c)
	}
	if status, _ := s.status(t, rejected.ID); status != "CANCELLED" {
		t.Fatalf("the rejected order is %s after a late reservation, want CANCELLED", status)
	}
	metrics := string(s.metrics.Do(t, nil, http.MethodGet, "/metrics", nil).Raw)
	if want := `kshop_order_saga_events_total{kind="stock_reserved"} 2`; !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
}
