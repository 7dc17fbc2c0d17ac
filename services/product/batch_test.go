package product_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/testenv"
)

// A batch decides every order exactly as one transaction per order would, in
// the batch's order: the same reservations, rejections and reasons, stock,
// history and answers; a twin event, a redelivery and an order cancelled or
// decided before change nothing; the order service hears each product's stock
// after the batch once; and each answer is traced in its own order's trace.
func TestABatchDecidesEveryOrderAsOneByOneWould(t *testing.T) {
	one, all := newService(t), newService(t)
	ctx := context.Background()
	setUp := func(s *service) []int64 {
		var ids []int64
		for _, p := range []struct {
			name     string
			quantity int
		}{{"plenty", 100}, {"scarce", 3}, {"gone", 5}, {"second", 4}} {
			ids = append(ids, s.create(t, p.name, 1, p.quantity).ID)
		}
		s.Do(t, &admin, "DELETE", fmt.Sprint("/products/", ids[2]), nil).Expect(t, 200, "")
		// Decided before the batch: a cancel first, and a reservation.
		if err := s.app.Stock.Release(ctx, uuid.NewString(), events.OrderCancelled{OrderID: 20, CustomerID: 9, Reason: events.CancelCustomer}); err != nil {
			t.Fatal(err)
		}
		if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(30, item(ids[0], 1))); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	ids := setUp(one)
	if other := setUp(all); !slices.Equal(ids, other) {
		t.Fatalf("the two databases gave the products ids %v and %v; the comparison needs the same", ids, other)
	}
	const plenty, scarce, gone, second, unknown = 0, 1, 2, 3, 4
	productID := func(i int) int64 {
		if i == unknown {
			return 424242
		}
		return ids[i]
	}
	order := func(orderID int64, lines ...[2]int) events.OrderCreated {
		var items []events.OrderCreatedItem
		for _, l := range lines {
			items = append(items, item(productID(l[0]), int64(l[1])))
		}
		return orderOf(orderID, items...)
	}
	redelivered := uuid.NewString()
	created := []batch.Event[events.OrderCreated]{
		{ID: uuid.NewString(), Payload: order(1, [2]int{plenty, 10}, [2]int{scarce, 2})}, // reserved; scarce 1 left
		{ID: uuid.NewString(), Payload: order(2, [2]int{scarce, 2})},                     // rejected: only 1 left now
		{ID: redelivered, Payload: order(3, [2]int{second, 1}, [2]int{scarce, 1})},       // reserved; scarce 0 left
		{ID: uuid.NewString(), Payload: order(4, [2]int{gone, 1}, [2]int{plenty, 1})},    // rejected: deleted
		{ID: uuid.NewString(), Payload: order(5, [2]int{unknown, 1})},                    // rejected: unknown
		{ID: uuid.NewString(), Payload: order(6, [2]int{second, 1}, [2]int{second, 1})},  // reserved: one product twice; second 1 left
		{ID: uuid.NewString(), Payload: order(1, [2]int{plenty, 10}, [2]int{scarce, 2})}, // the same order again: nothing
		{ID: redelivered, Payload: order(3, [2]int{second, 1}, [2]int{scarce, 1})},       // redelivered: nothing
		{ID: uuid.NewString(), Payload: order(20, [2]int{plenty, 1})},                    // cancelled before: nothing
		{ID: uuid.NewString(), Payload: order(30, [2]int{plenty, 1})},                    // decided before: nothing
		{ID: uuid.NewString(), Payload: order(7, [2]int{plenty, 5}, [2]int{second, 1})},  // reserved; second 0 left
		{ID: uuid.NewString(), Payload: order(8, [2]int{second, 1})},                     // rejected: none left
	}
	traceOf := map[int64]string{}
	for i := range created {
		eventCtx, span := otel.Tracer("test").Start(ctx, "order-created publish")
		span.End()
		created[i].Ctx = eventCtx
		if _, ok := traceOf[created[i].Payload.OrderID]; !ok && created[i].Payload.OrderID != 30 { // 30's answer came before
			traceOf[created[i].Payload.OrderID] = span.SpanContext().TraceID().String()
		}
		if err := one.app.Stock.Reserve(eventCtx, created[i].ID, created[i].Payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := all.app.Stock.ReserveAll(ctx, created); err != nil {
		t.Fatal(err)
	}

	for what, query := range map[string]string{
		"stock":        `SELECT id, quantity, version FROM products ORDER BY id`,
		"decisions":    `SELECT order_id, status, coalesce(reason, '') FROM order_stock ORDER BY order_id`,
		"reservations": `SELECT order_id, product_id, quantity FROM reservations ORDER BY order_id, product_id`,
		"history":      `SELECT product_id, version, kind, changes::text, coalesce(order_id, 0), coalesce(units, 0) FROM product_history WHERE kind <> 'created' ORDER BY product_id, version`,
		"answers":      `SELECT topic, key, convert_from(payload, 'UTF8') FROM outbox WHERE topic IN ('stock-reserved', 'stock-rejected') ORDER BY key::bigint`,
	} {
		if got, want := testenv.Rows(t, all.db, query), testenv.Rows(t, one.db, query); !slices.Equal(got, want) {
			t.Errorf("%s after the batch:\n%s\nwant, as one by one:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if got := testenv.Rows(t, all.db, `SELECT order_id, status FROM order_stock WHERE status = 'reserved' ORDER BY order_id`); len(got) != 5 {
		t.Errorf("reserved orders %v, want 1, 3, 6, 7 and 30", got)
	}

	// The order service's copy: one product-updated per product the batch
	// moved, with its stock and version after the batch, as the last of the
	// one-by-one updates has them.
	latest := func(s *service) map[string]string {
		out := map[string]string{}
		for _, row := range testenv.Rows(t, s.db, `SELECT key, convert_from(payload, 'UTF8') FROM outbox WHERE topic = 'product-updated' ORDER BY id`) {
			key, payload, _ := strings.Cut(row, "|")
			var p events.Product
			if err := json.Unmarshal([]byte(payload), &p); err != nil {
				t.Fatal(err)
			}
			out[key] = fmt.Sprintf("quantity %d version %d", p.Quantity, p.Version)
		}
		return out
	}
	before := 1 // order 30's, before the batch
	if n := count(t, all.db, `SELECT count(*) FROM outbox WHERE topic = 'product-updated'`) - before; n != 3 {
		t.Errorf("%d product-updated from the batch, want 3: plenty, scarce and second, once each", n)
	}
	if got, want := latest(all), latest(one); !maps(got, want) {
		t.Errorf("latest product-updated %v, want %v", got, want)
	}

	for _, row := range testenv.Rows(t, all.db, `SELECT key, headers->>'traceparent' FROM outbox WHERE topic IN ('stock-reserved', 'stock-rejected')`) {
		key, traceparent, _ := strings.Cut(row, "|")
		var orderID int64
		fmt.Sscan(key, &orderID)
		if want := traceOf[orderID]; want != "" && !strings.Contains(traceparent, want) {
			t.Errorf("the answer to order %d is traced in %s, not in its order's trace %s", orderID, traceparent, want)
		}
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Batches decided side by side, their orders wanting the same products listed
// in either order, neither deadlock nor oversell.
func TestConcurrentBatchesNeverOversell(t *testing.T) {
	s := newService(t)
	a, b := s.create(t, "a", 1, 30), s.create(t, "b", 1, 30)
	const batches, perBatch = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, batches)
	for n := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var created []batch.Event[events.OrderCreated]
			for i := range perBatch {
				orderID := int64(1000 + n*perBatch + i)
				items := []events.OrderCreatedItem{item(a.ID, 1), item(b.ID, 1)}
				if i%2 == 1 {
					slices.Reverse(items)
				}
				created = append(created, batch.Event[events.OrderCreated]{Ctx: context.Background(), ID: uuid.NewString(), Payload: orderOf(orderID, items...)})
			}
			errs <- s.app.Stock.ReserveAll(context.Background(), created)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if stockOf(t, s, a.ID) != 0 || stockOf(t, s, b.ID) != 0 {
		t.Fatalf("stock %d and %d after 80 orders for 30 units, want 0 and 0", stockOf(t, s, a.ID), stockOf(t, s, b.ID))
	}
	reserved := count(t, s.db, `SELECT count(*) FROM order_stock WHERE status = 'reserved'`)
	rejected := count(t, s.db, `SELECT count(*) FROM order_stock WHERE status = 'rejected'`)
	units := count(t, s.db, `SELECT coalesce(sum(quantity), 0) FROM reservations`)
	if reserved != 30 || rejected != 50 || units != 60 {
		t.Fatalf("reserved %d orders (%d units), rejected %d; want 30 (60 units) and 50", reserved, units, rejected)
	}
}

// A burst of orders through Kafka, decided in batches by the running service:
// every order answered once, none oversold.
func TestABurstOfOrdersThroughKafkaIsDecidedOnceEach(t *testing.T) {
	s := newService(t)
	reader := readTopics(t, s.brokers, events.TopicStockReserved.Name(), events.TopicStockRejected.Name())
	p := s.create(t, "burst", 1, 150)
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: s.brokers}, ClientID: "order-test"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	const orders = 400
	msgs := make([]kafka.Message, orders)
	for i := range msgs {
		order := orderOf(int64(5000+i), item(p.ID, 1))
		body, err := json.Marshal(order)
		if err != nil {
			t.Fatal(err)
		}
		headers := events.TopicOrderCreated.Headers()
		headers[kafka.EventIDHeader] = uuid.NewString()
		msgs[i] = kafka.Message{Topic: events.TopicOrderCreated.Name(), Key: []byte(events.Key(order.OrderID)), Value: body, Headers: headers}
	}
	for i, err := range producer.PublishBatch(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
	}
	testenv.WaitFor(t, 60*time.Second, "an answer to every order", func() bool {
		return len(reader.where(events.TopicStockReserved.Name(), ""))+len(reader.where(events.TopicStockRejected.Name(), "")) >= orders
	})
	time.Sleep(300 * time.Millisecond)
	reserved, rejected := len(reader.where(events.TopicStockReserved.Name(), "")), len(reader.where(events.TopicStockRejected.Name(), ""))
	if reserved != 150 || rejected != orders-150 || stockOf(t, s, p.ID) != 0 {
		t.Fatalf("%d reserved and %d rejected answers, stock %d; want 150, %d and 0", reserved, rejected, stockOf(t, s, p.ID), orders-150)
	}
}
