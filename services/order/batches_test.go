package order_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/testenv"
)

// numberApart makes s number its orders from first on. The mail queues are
// the test process's (one RabbitMQ virtual host) and other tests read them by
// order id: the e-mails of these tests' many timers must not answer for theirs.
func numberApart(t *testing.T, s *service, first int64) {
	t.Helper()
	if _, err := s.db.Exec(context.Background(), `SELECT setval('orders_id_seq', $1, false)`, first); err != nil {
		t.Fatal(err)
	}
}

// timer makes a timer of the batch, in a trace of its own; tracesOf
// remembers the traces of each order's timers.
func timer[T any](ctx context.Context, tracesOf map[int64][]string, orderID int64, id string, payload T) batch.Event[T] {
	timerCtx, span := otel.Tracer("test").Start(ctx, "timer")
	span.End()
	tracesOf[orderID] = append(tracesOf[orderID], span.SpanContext().TraceID().String())
	return batch.Event[T]{Ctx: timerCtx, ID: id, Payload: payload}
}

// Batches of reminders and expiries do exactly what one transaction per timer
// does: the same e-mails and next timers, the same cancellations and
// completions, the same pending counters; a redelivered timer, a second expiry
// and a timer of an order that is not ours change nothing; and what each timer
// says is traced in that timer's trace.
func TestBatchesOfTimersActAsOneByOneWould(t *testing.T) {
	one, all := start(t, testConfig(t)), start(t, testConfig(t))
	setUp := func(s *service) (pending, other, paid, cancelled int64) {
		numberApart(t, s, 7_000_000)
		s.product(t, 1, "2.50", 100)
		pending, other = s.placeOrder(t, &ann, [2]int64{1, 2}).ID, s.placeOrder(t, &bob, [2]int64{1, 1}).ID
		paid = s.placeOrder(t, &ann, [2]int64{1, 3}).ID
		s.reserve(t, paid)
		s.pay(t, &ann, paid).Expect(t, http.StatusOK, "")
		cancelled = s.placeOrder(t, &bob, [2]int64{1, 1}).ID
		s.Do(t, &bob, http.MethodPost, "/orders/cancel", map[string]any{"request_id": uuid.NewString(), "order_id": cancelled}).Expect(t, http.StatusOK, "")
		return
	}
	pending, other, paid, cancelled := setUp(one)
	if a, b, c, d := setUp(all); a != pending || b != other || c != paid || d != cancelled {
		t.Fatalf("the two databases numbered the orders differently: %d %d %d %d and %d %d %d %d", pending, other, paid, cancelled, a, b, c, d)
	}
	ctx := context.Background()
	tracesOf := map[int64][]string{}
	redelivered := uuid.NewString()
	remind := func(orderID int64, id string, n int) batch.Event[events.OrderReminder] {
		return timer(ctx, tracesOf, orderID, id, events.OrderReminder{OrderID: orderID, ReminderNumber: n})
	}
	reminders := []batch.Event[events.OrderReminder]{
		remind(pending, redelivered, 1), remind(other, uuid.NewString(), 1), remind(paid, uuid.NewString(), 1),
		remind(cancelled, uuid.NewString(), 1), remind(pending, redelivered, 1), remind(6_999_999, uuid.NewString(), 1),
		remind(pending, uuid.NewString(), 2),
	}
	expire := func(orderID int64, id string) batch.Event[events.OrderExpiry] {
		return timer(ctx, tracesOf, orderID, id, events.OrderExpiry{OrderID: orderID})
	}
	expiries := []batch.Event[events.OrderExpiry]{
		expire(pending, uuid.NewString()), expire(paid, uuid.NewString()), expire(pending, uuid.NewString()),
		expire(cancelled, uuid.NewString()), expire(6_999_999, uuid.NewString()), expire(other, uuid.NewString()),
	}
	for _, r := range reminders {
		if err := one.app.Saga.Remind(r.Ctx, r.ID, r.Payload); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range expiries {
		if err := one.app.Saga.Expire(e.Ctx, e.ID, e.Payload); err != nil {
			t.Fatal(err)
		}
	}
	var before int64
	if err := all.db.QueryRow(ctx, `SELECT max(id) FROM outbox`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := all.app.Saga.RemindAll(ctx, reminders); err != nil {
		t.Fatal(err)
	}
	if err := all.app.Saga.ExpireAll(ctx, expiries); err != nil {
		t.Fatal(err)
	}

	said := `SELECT destination, topic, key, p->>'order_id', coalesce(p->>'reminder_number', ''), coalesce(p->>'reason', ''), coalesce(p->>'email', '')
		FROM (SELECT id, destination, topic, key, convert_from(payload, 'UTF8')::jsonb AS p FROM outbox) o ORDER BY p->>'order_id', topic, key, id`
	for what, query := range map[string]string{
		"orders":    `SELECT id, status, coalesce(cancel_reason, '') FROM orders ORDER BY id`,
		"customers": `SELECT id, pending_orders, pending_units FROM customers ORDER BY id`,
		"outbox":    said,
		"claims":    `SELECT consumer, count(*) FROM inbox GROUP BY consumer ORDER BY consumer`,
	} {
		if got, want := testenv.Rows(t, all.db, query), testenv.Rows(t, one.db, query); !slices.Equal(got, want) {
			t.Errorf("%s after the batches:\n%s\nwant, as one by one:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if got := testenv.Rows(t, all.db, `SELECT id, status FROM orders WHERE status = 'CANCELLED' AND cancel_reason = 'expired' ORDER BY id`); len(got) != 2 {
		t.Errorf("expired orders %v, want the two pending ones", got)
	}
	for _, row := range testenv.Rows(t, all.db, fmt.Sprintf(`SELECT convert_from(payload, 'UTF8')::jsonb->>'order_id', headers->>'traceparent'
		FROM outbox WHERE id > %d`, before)) {
		orderID, traceparent, _ := strings.Cut(row, "|")
		var id int64
		fmt.Sscan(orderID, &id)
		if !slices.ContainsFunc(tracesOf[id], func(trace string) bool { return strings.Contains(traceparent, trace) }) {
			t.Errorf("a message about order %d is traced in %s, in none of its timers' traces %v", id, traceparent, tracesOf[id])
		}
	}
}

// Expiry batches run side by side over orders of the same customers, each
// batch in its own order, round after round: none deadlocks, every order
// expires once and the customers' pending counters come back to zero.
func TestConcurrentExpiryBatchesNeitherDeadlockNorMiscount(t *testing.T) {
	s := start(t, testConfig(t))
	numberApart(t, s, 8_000_000)
	s.product(t, 1, "1.00", 100000)
	customers := []identity.User{ann, bob,
		{ID: 103, Email: "cy@example.com", Roles: []string{"customer"}}, {ID: 104, Email: "di@example.com", Roles: []string{"customer"}}}
	const rounds, perRound, batches = 8, 64, 4
	for range rounds {
		var orders []int64
		for i := range perRound {
			// Each batch takes every fourth order: every customer has orders in each.
			orders = append(orders, s.placeOrder(t, &customers[i/batches%len(customers)], [2]int64{1, 1}).ID)
		}
		var wg sync.WaitGroup
		errs := make(chan error, batches)
		for b := range batches {
			var expiries []batch.Event[events.OrderExpiry]
			for i := b; i < len(orders); i += batches {
				expiries = append(expiries, batch.Event[events.OrderExpiry]{Ctx: context.Background(), ID: uuid.NewString(), Payload: events.OrderExpiry{OrderID: orders[i]}})
			}
			if b%2 == 1 {
				slices.Reverse(expiries)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.app.Saga.ExpireAll(context.Background(), expiries)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := count(t, s.db, `SELECT count(*) FROM orders WHERE status = 'CANCELLED' AND cancel_reason = 'expired'`); n != rounds*perRound {
		t.Fatalf("%d of %d orders expired", n, rounds*perRound)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'order-cancelled'`); n != rounds*perRound {
		t.Fatalf("%d order-cancelled for %d orders", n, rounds*perRound)
	}
	if n := count(t, s.db, `SELECT coalesce(sum(pending_orders) + sum(pending_units), 0) FROM customers`); n != 0 {
		t.Fatalf("the customers' pending counters add up to %d, want 0", n)
	}
}
