package order_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/identity"
)

// BenchmarkCreateOrder measures POST /orders end to end: lock, price from the
// product copy, the customer's pending limits, one transaction with the order,
// its items, order-created and four timers. Clients in parallel, each a
// customer of its own (one customer's orders are placed one at a time), each
// order with two lines; nobody pays, so the limits are raised out of the way.
func BenchmarkCreateOrder(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxPendingOrders, cfg.MaxPendingUnits = 1_000_000, 1_000_000_000
	s := start(b, cfg)
	s.product(b, 1, "10.00", 1_000_000)
	s.product(b, 2, "2.50", 1_000_000)
	var customers atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		customer := identity.User{ID: 1000 + customers.Add(1), Email: "bench@example.com", Roles: []string{"customer"}}
		for pb.Next() {
			r := s.Do(b, &customer, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, 1}, [2]int64{2, 3}))
			if r.Status != http.StatusCreated {
				b.Errorf("status %d: %s", r.Status, r.Raw)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}

// BenchmarkTimerLateness places 10 000 orders that nobody pays, each with one
// payment reminder and its expiry on the RabbitMQ delay queues, and measures how
// late the timers fire against their due time (placed + delay) while all 10 000
// are pending: a reminder fires when its payment-reminder e-mail is queued, an
// expiry when the order is cancelled. Lateness includes the outbox relay's lag
// publishing 30 000 messages (reported on its own as timer-relay-lag), the TTL
// queue, the dead-lettering and the handler's transaction. The delays are shortened (40 s and 60 s) so all
// orders are placed before the first reminder is due. One run whatever b.N.
func BenchmarkTimerLateness(b *testing.B) {
	const pending = 10_000
	reminder, expiry := 40*time.Second, 60*time.Second
	cfg := testConfig(b)
	cfg.ReminderDelays = []time.Duration{reminder}
	cfg.ExpiryDelay = expiry
	cfg.MaxPendingOrders, cfg.MaxPendingUnits = pending, pending // 200 each for 50 customers: all must be placed
	s := start(b, cfg)
	s.product(b, 1, "5.00", 1_000_000)
	ctx := context.Background()

	placing := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= pending; n = next.Add(1) {
				if _, _, err := s.app.Orders.Create(ctx, order.Customer{ID: 1000 + n%50, Email: "timer@example.com"},
					uuid.NewString(), "timer benchmark", []order.Line{{ProductID: 1, Quantity: 1}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	placed := time.Since(placing)
	if b.Failed() {
		return
	}
	if placed > reminder {
		b.Logf("placing %d orders took %v, longer than the %v reminder: not all were pending when the first timer fired", pending, placed, reminder)
	}
	deadline := placing.Add(expiry + placed + 5*time.Minute)
	for count(b, s.db, `SELECT count(*) FROM orders WHERE status = 'CANCELLED'`) < pending {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d orders expired 5 minutes after their due time",
				count(b, s.db, `SELECT count(*) FROM orders WHERE status = 'CANCELLED'`), pending)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.StopTimer()

	// percentiles of a lateness in milliseconds: p50, p99, max.
	lateness := func(query string, args ...any) (p50, p99, worst float64) {
		b.Helper()
		if err := s.db.QueryRow(ctx, `
			SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY late), percentile_cont(0.99) WITHIN GROUP (ORDER BY late), max(late)
			FROM (`+query+`) AS timers`, args...).Scan(&p50, &p99, &worst); err != nil {
			b.Fatal(err)
		}
		return p50, p99, worst
	}
	reminders := count(b, s.db, `SELECT count(*) FROM outbox WHERE key = $1`, events.RoutingPaymentReminder)
	if reminders != pending {
		b.Fatalf("%d payment reminders queued for %d pending orders", reminders, pending)
	}
	rp50, rp99, rmax := lateness(`
		SELECT extract(epoch FROM m.created_at - o.created_at) * 1000 - $2 AS late
		FROM outbox m JOIN orders o ON o.id = (convert_from(m.payload, 'UTF8')::jsonb->>'order_id')::bigint
		WHERE m.key = $1`, events.RoutingPaymentReminder, reminder.Milliseconds())
	ep50, ep99, emax := lateness(`
		SELECT extract(epoch FROM updated_at - created_at) * 1000 - $1 AS late
		FROM orders WHERE cancel_reason = 'expired'`, expiry.Milliseconds())
	// The time a timer spent in the outbox before it reached its delay queue
	// (its own expiration makes up for it: outbox.Delayed).
	relayP50, relayP99, relayMax := lateness(`
		SELECT extract(epoch FROM sent_at - created_at) * 1000 AS late
		FROM outbox WHERE key IN ($1, $2)`, events.TimerOrderReminder.DelayQueueName(reminder), events.TimerOrderExpiry.DelayQueueName(expiry-reminder))
	// How fast the timers fired once due, against the rate they fell due at.
	firedPerSecond := func(query string, args ...any) float64 {
		b.Helper()
		var seconds float64
		if err := s.db.QueryRow(ctx, `SELECT extract(epoch FROM max(at) - min(at)) FROM (`+query+`) AS fired`, args...).Scan(&seconds); err != nil {
			b.Fatal(err)
		}
		return pending / max(seconds, 0.001)
	}
	remindersPerSecond := firedPerSecond(`SELECT created_at AS at FROM outbox WHERE key = $1`, events.RoutingPaymentReminder)
	expiriesPerSecond := firedPerSecond(`SELECT updated_at AS at FROM orders WHERE cancel_reason = 'expired'`)
	purgeMailQueues(b, s.amqpURL)

	b.ReportMetric(pending, "pending-orders")
	b.ReportMetric(float64(pending)/placed.Seconds(), "placed-orders/s")
	b.ReportMetric(rp50, "reminder-late-p50-ms")
	b.ReportMetric(rp99, "reminder-late-p99-ms")
	b.ReportMetric(rmax, "reminder-late-max-ms")
	b.ReportMetric(ep50, "expiry-late-p50-ms")
	b.ReportMetric(ep99, "expiry-late-p99-ms")
	b.ReportMetric(emax, "expiry-late-max-ms")
	b.ReportMetric(remindersPerSecond, "reminders-fired/s")
	b.ReportMetric(expiriesPerSecond, "expiries-fired/s")
	b.ReportMetric(relayP50, "timer-relay-lag-p50-ms")
	b.ReportMetric(relayP99, "timer-relay-lag-p99-ms")
	b.ReportMetric(relayMax, "timer-relay-lag-max-ms")
}

// purgeMailQueues drops the reminder and cancellation e-mails nobody consumes
// here, so the benchmark leaves no backlog on the shared RabbitMQ node.
func purgeMailQueues(b *testing.B, url string) {
	b.Helper()
	ch, err := amqptest.Dial(b, url).Channel()
	if err != nil {
		b.Fatal(err)
	}
	for _, queue := range []string{events.QueuePaymentReminder, events.QueueOrderCancelled} {
		if _, err := ch.QueuePurge(queue, false); err != nil {
			b.Fatalf("purge %s: %v", queue, err)
		}
	}
}
