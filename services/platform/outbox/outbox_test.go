package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// effects is what a consumer does with a message in the tests: one row per message
// it processed. No unique constraint, so a duplicate effect would show up as a
// second row.
var effects = pg.Migrations{Source: "outbox_test", FS: fstest.MapFS{
	"0001_effects.sql": {Data: []byte("-- +goose Up\nCREATE TABLE effects (event_id text NOT NULL, payload text NOT NULL);")},
}}

func newDatabase(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool, outbox.Migrations, inbox.Migrations, effects); err != nil {
		t.Fatal(err)
	}
	return pool
}

// addMessages adds n messages in transactions of perTx rows.
func addMessages(pool *pgxpool.Pool, n, perTx int, build func(i int) outbox.Message) error {
	ctx := context.Background()
	for start := 0; start < n; start += perTx {
		err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			for i := start; i < start+perTx && i < n; i++ {
				if err := outbox.Add(ctx, tx, build(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func writeMessages(t testing.TB, pool *pgxpool.Pool, n, perTx int, build func(i int) outbox.Message) {
	t.Helper()
	if err := addMessages(pool, n, perTx, build); err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestAddRejectsMessagesThatCanNeverBePublished(t *testing.T) {
	pool := newDatabase(t)
	for name, msg := range map[string]outbox.Message{
		"unknown destination": {Destination: "sqs", Topic: "x", Payload: []byte("{}")},
		"kafka without topic": {Destination: outbox.Kafka, Key: "1", Payload: []byte("{}")},
		"amqp without target": {Destination: outbox.AMQP, Payload: []byte("{}")},
		"event id not uuid":   {EventID: "42", Destination: outbox.Kafka, Topic: "t", Payload: []byte("{}")},
		"payload not JSON":    outbox.Event(signalTopic{}, "1", make(signal)),
		"kafka with due time": {Destination: outbox.Kafka, Topic: "t", Key: "1", Payload: []byte("{}"), DueAt: time.Now().Add(time.Hour)},
	} {
		t.Run(name, func(t *testing.T) {
			err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
				return outbox.Add(context.Background(), tx, msg)
			})
			if !errors.Is(err, outbox.ErrInvalidMessage) {
				t.Fatalf("err = %v, want ErrInvalidMessage", err)
			}
		})
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("%d rows written, want 0", n)
	}
}

func TestRolledBackTransactionPublishesNothing(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	boom := errors.New("state change failed")
	err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		if err := outbox.Add(ctx, tx, outbox.Message{Destination: outbox.Kafka, Topic: "t", Key: "1", Payload: []byte("{}")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("%d rows after rollback, want 0", n)
	}
}

// recordingPublisher confirms everything except the messages failing says no to.
type recordingPublisher struct {
	mu      sync.Mutex
	got     []outbox.Message
	failing func(outbox.Message) bool
}

func (p *recordingPublisher) PublishBatch(_ context.Context, msgs []outbox.Message) []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if p.failing != nil && p.failing(m) {
			errs[i] = errors.New("broker said no")
			continue
		}
		p.got = append(p.got, m)
	}
	return errs
}

func TestUnconfirmedRowsStayUnsentAndAreRetried(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	writeMessages(t, pool, 10, 10, func(i int) outbox.Message {
		return outbox.Message{Destination: outbox.AMQP, Topic: "x", Key: fmt.Sprint(i), Payload: []byte("{}")}
	})
	publisher := &recordingPublisher{failing: func(m outbox.Message) bool { return m.Key == "3" || m.Key == "7" }}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: publisher}, outbox.RelayConfig{}, quiet)

	n, err := relay.RelayOnce(ctx)
	if n != 8 || err == nil || !strings.Contains(err.Error(), "broker said no") {
		t.Fatalf("RelayOnce = %d, %v; want 8 confirmed and an error naming the broker's refusal", n, err)
	}
	if got := count(t, pool, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND attempts = 1 AND last_error = 'broker said no'`); got != 2 {
		t.Fatalf("%d rows recorded as failed, want 2", got)
	}

	publisher.failing = nil
	if n, err := relay.RelayOnce(ctx); n != 2 || err != nil {
		t.Fatalf("second RelayOnce = %d, %v; want the 2 retried rows", n, err)
	}
	if got := count(t, pool, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`); got != 0 {
		t.Fatalf("%d rows unsent, want 0", got)
	}
}

// A delayed message's due time goes through the table to the publisher, to the
// microsecond PostgreSQL keeps; the other messages have none.
func TestTheDueTimeReachesThePublisher(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	due := time.Now().Add(4 * time.Hour).Truncate(time.Microsecond)
	if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Add(ctx, tx,
			outbox.Delayed(priceTopic{}, "prices.delay.4h", due, priceChanged{ProductID: 1, Cents: 100}),
			outbox.Work(priceTopic{}, priceChanged{ProductID: 2, Cents: 200}))
	}); err != nil {
		t.Fatal(err)
	}
	publisher := &recordingPublisher{}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: publisher}, outbox.RelayConfig{}, quiet)
	if n, err := relay.RelayOnce(ctx); n != 2 || err != nil {
		t.Fatalf("RelayOnce = %d, %v", n, err)
	}
	if got := publisher.got[0]; got.Key != "prices.delay.4h" || !got.DueAt.Equal(due) {
		t.Errorf("the delayed message reached the publisher due at %v, want %v", got.DueAt, due)
	}
	if got := publisher.got[1]; !got.DueAt.IsZero() {
		t.Errorf("the work message has a due time: %v", got.DueAt)
	}
}

func TestDeleteSentLeavesNoConfirmedPayloadBehind(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	writeMessages(t, pool, 4, 4, func(i int) outbox.Message {
		return outbox.Message{Destination: outbox.AMQP, Topic: "x", Key: fmt.Sprint(i), Payload: []byte(`{"token":"123456"}`)}
	})
	publisher := &recordingPublisher{failing: func(m outbox.Message) bool { return m.Key == "2" }}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: publisher}, outbox.RelayConfig{DeleteSent: true}, quiet)

	if n, _ := relay.RelayOnce(ctx); n != 3 {
		t.Fatalf("RelayOnce confirmed %d rows, want 3", n)
	}
	if got := count(t, pool, `SELECT count(*) FROM outbox`); got != 1 {
		t.Fatalf("%d rows left in the outbox, want only the unconfirmed one", got)
	}
	if got := count(t, pool, `SELECT count(*) FROM outbox WHERE key = '2' AND sent_at IS NULL`); got != 1 {
		t.Fatal("the unconfirmed row is gone; it must stay for a retry")
	}
}

func TestTraceContextIsStoredWithTheRow(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	writeMessages(t, pool, 1, 1, func(int) outbox.Message {
		return outbox.Message{Destination: outbox.Kafka, Topic: "t", Key: "1", Payload: []byte("{}"),
			Headers: map[string]string{"traceparent": traceparent}}
	})
	publisher := &recordingPublisher{}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.Kafka: publisher}, outbox.RelayConfig{}, quiet)
	if _, err := relay.RelayOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := publisher.got[0].Headers["traceparent"]; got != traceparent {
		t.Fatalf("published traceparent %q, want %q", got, traceparent)
	}
}

func TestBacklogMetrics(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	writeMessages(t, pool, 5, 5, func(i int) outbox.Message {
		return outbox.Message{Destination: outbox.AMQP, Topic: "x", Key: "k", Payload: []byte("{}")}
	})
	if _, err := pool.Exec(ctx, `UPDATE outbox SET created_at = now() - interval '90 seconds'`); err != nil {
		t.Fatal(err)
	}
	unsent, oldest, err := outbox.Backlog(ctx, pool)
	if err != nil || unsent != 5 || oldest < 90*time.Second {
		t.Fatalf("Backlog = %d, %v, %v; want 5 rows, oldest ≥ 90 s", unsent, oldest, err)
	}

	// A relay whose broker refuses everything keeps the gauges up to date.
	reg := prometheus.NewRegistry()
	publisher := &recordingPublisher{failing: func(outbox.Message) bool { return true }}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: publisher},
		outbox.RelayConfig{Registerer: reg, PollInterval: 10 * time.Millisecond, Backoff: fastBackoff}, quiet)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(runCtx) }()
	// The gauges are refreshed on their own schedule, apart from publishing, so
	// both are awaited rather than read at one instant.
	testenv.WaitFor(t, 10*time.Second, "the unsent-rows gauge at 5 and at least 5 counted failures", func() bool {
		return gaugeValue(t, reg, "outbox_unsent_rows") == 5 && gaugeValue(t, reg, "outbox_publish_failures_total") >= 5
	})
	stop()
	<-done
	if age := gaugeValue(t, reg, "outbox_oldest_unsent_age_seconds"); age < 90 {
		t.Fatalf("oldest unsent age gauge = %v, want ≥ 90", age)
	}
}

// stalledPublisher never confirms until released, like a broker that went
// away in the middle of a batch.
type stalledPublisher struct{ release chan struct{} }

func (p stalledPublisher) PublishBatch(ctx context.Context, msgs []outbox.Message) []error {
	select {
	case <-p.release:
	case <-ctx.Done():
	}
	errs := make([]error, len(msgs))
	for i := range errs {
		errs[i] = errors.New("no confirm")
	}
	return errs
}

// While a round waits for confirms that do not come (a broker away), the
// backlog gauges still follow the table: that is when an operator reads them.
func TestBacklogIsMeasuredWhileARoundWaits(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	publisher := stalledPublisher{release: make(chan struct{})}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: publisher},
		outbox.RelayConfig{Registerer: reg, PollInterval: 10 * time.Millisecond, Backoff: fastBackoff}, quiet)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(runCtx) }()
	// The rows arrive once the relay runs (its first look found none), so the
	// round that claims them is the one that waits.
	time.Sleep(200 * time.Millisecond)
	writeMessages(t, pool, 3, 3, func(i int) outbox.Message {
		return outbox.Message{Destination: outbox.AMQP, Topic: "x", Key: fmt.Sprint(i), Payload: []byte("{}")}
	})
	testenv.WaitFor(t, 15*time.Second, "the unsent-rows gauge at 3 while the round waits", func() bool {
		return gaugeValue(t, reg, "outbox_unsent_rows") == 3
	})
	close(publisher.release)
	stop()
	<-done
}

func gaugeValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestPruneDeletesOnlyOldSentRows(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	writeMessages(t, pool, 3, 3, func(i int) outbox.Message {
		return outbox.Message{Destination: outbox.AMQP, Topic: "x", Key: fmt.Sprint(i), Payload: []byte("{}")}
	})
	// row 1: sent two days ago, row 2: sent just now, row 3: unsent.
	if _, err := pool.Exec(ctx, `UPDATE outbox SET sent_at = CASE key WHEN '0' THEN now() - interval '2 days' WHEN '1' THEN now() END`); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.Prune(ctx, pool, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if left := count(t, pool, `SELECT count(*) FROM outbox`); left != 2 {
		t.Fatalf("%d rows left, want 2", left)
	}
}

var fastBackoff = retry.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond, Multiplier: 2}

// TestConcurrentRelaysPublishEveryRowOnceToKafka runs four relays on one table
// while rows keep arriving and checks that Kafka received each event exactly once:
// FOR UPDATE SKIP LOCKED keeps the relays off each other's rows.
func TestConcurrentRelaysPublishEveryRowOnceToKafka(t *testing.T) {
	const rows = 2000
	pool := newDatabase(t)
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(3, "outbox-test"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	for range 4 {
		producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: brokers}}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(producer.Close)
		relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.Kafka: kafka.OutboxPublisher(producer)},
			outbox.RelayConfig{BatchSize: 50, PollInterval: 10 * time.Millisecond}, quiet)
		wg.Add(1)
		go func() { defer wg.Done(); _ = relay.Run(ctx) }()
	}
	writeMessages(t, pool, rows, 20, func(i int) outbox.Message {
		return outbox.Message{Destination: outbox.Kafka, Topic: "outbox-test", Key: fmt.Sprint(i % 37), Payload: []byte(fmt.Sprint(i))}
	})

	seen := map[string]int{}
	var mu sync.Mutex
	consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "outbox-test", Topics: []string{"outbox-test"}},
		func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen[m.Headers[kafka.EventIDHeader]]++
			return nil
		}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = consumer.Run(ctx) }()

	testenv.WaitFor(t, 90*time.Second, "every row published and consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == rows
	})
	// Give stragglers (a duplicate would arrive after the originals) a moment.
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s published %d times", id, n)
		}
	}
	if unsent := count(t, pool, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`); unsent != 0 {
		t.Fatalf("%d rows still unsent", unsent)
	}
}

// TestBrokerRestartMidBurstLosesNothingAndDuplicatesNoEffect stops RabbitMQ while
// rows are being written and relayed, starts it again, and checks that the
// consumer's effect happened exactly once per row: the relay retried what the
// broker never confirmed, and the inbox absorbed what it confirmed twice.
func TestBrokerRestartMidBurstLosesNothingAndDuplicatesNoEffect(t *testing.T) {
	const rows = 1500
	broker := testenv.Restartable(t)
	pool := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	suffix := testenv.RandomSuffix()
	exchange, queue := "outbox-test-"+suffix, "outbox-test-"+suffix
	conn := amqp.Dial(broker.URL, quiet)
	t.Cleanup(func() { _ = conn.Close() })
	topology := amqp.Topology{
		Exchanges: []amqp.Exchange{{Name: exchange, Kind: "direct"}},
		Queues:    []amqp.Queue{{Name: queue, DeadLetter: true}},
		Bindings:  []amqp.Binding{{Exchange: exchange, Queue: queue, RoutingKey: "work"}},
	}
	testenv.WaitFor(t, 30*time.Second, "RabbitMQ connection", func() bool { return conn.Ready(ctx) == nil })
	if err := conn.Declare(ctx, topology); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for range 2 {
		relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: amqp.OutboxPublisher(amqp.NewPublisher(conn))},
			outbox.RelayConfig{BatchSize: 50, PollInterval: 10 * time.Millisecond, Backoff: fastBackoff, PublishTimeout: time.Second}, quiet)
		wg.Add(1)
		go func() { defer wg.Done(); _ = relay.Run(ctx) }()
	}
	consumer := amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue, Prefetch: 50, Backoff: fastBackoff},
		func(ctx context.Context, d amqp.Delivery) error {
			return pg.InTx(ctx, pool, func(tx pgx.Tx) error {
				first, err := inbox.Claim(ctx, tx, "outbox-test", d.MessageID)
				if err != nil || !first {
					return err
				}
				_, err = tx.Exec(ctx, `INSERT INTO effects (event_id, payload) VALUES ($1, $2)`, d.MessageID, string(d.Body))
				return err
			})
		}, quiet)
	wg.Add(1)
	go func() { defer wg.Done(); _ = consumer.Run(ctx) }()

	written := make(chan error, 1)
	go func() {
		written <- addMessages(pool, rows, 10, func(i int) outbox.Message {
			time.Sleep(4 * time.Millisecond) // a burst of several seconds, so the outage lands inside it
			return outbox.Message{Destination: outbox.AMQP, Topic: exchange, Key: "work", Payload: []byte(fmt.Sprint(i))}
		})
	}()

	testenv.WaitFor(t, 60*time.Second, "a fifth of the effects", func() bool {
		return count(t, pool, `SELECT count(*) FROM effects`) >= rows/5
	})
	broker.Stop(t)
	stoppedWith := count(t, pool, `SELECT count(*) FROM effects`)
	writtenWhenStopped := count(t, pool, `SELECT count(*) FROM outbox`)
	time.Sleep(time.Second) // rows keep arriving in the outbox while the broker is away
	broker.Start(t)
	t.Logf("broker stopped after %d effects, %d of %d rows written; started again", stoppedWith, writtenWhenStopped, rows)
	if writtenWhenStopped == rows {
		t.Fatal("the burst ended before the outage: the test did not test an outage mid-burst")
	}

	if err := <-written; err != nil {
		t.Fatalf("write the burst: %v", err)
	}
	testenv.WaitFor(t, 90*time.Second, "every effect", func() bool {
		return count(t, pool, `SELECT count(*) FROM effects`) >= rows
	})
	time.Sleep(500 * time.Millisecond) // a duplicate effect would land after the last original
	cancel()
	wg.Wait()

	if n := count(t, pool, `SELECT count(*) FROM effects`); n != rows {
		t.Errorf("%d effects, want exactly %d", n, rows)
	}
	if n := count(t, pool, `SELECT count(DISTINCT payload) FROM effects`); n != rows {
		t.Errorf("%d distinct payloads in effects, want %d", n, rows)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`); n != 0 {
		t.Errorf("%d outbox rows unsent", n)
	}
	retried := count(t, pool, `SELECT count(*) FROM outbox WHERE attempts > 0`)
	t.Logf("outbox rows that needed more than one attempt: %d", retried)
	if retried == 0 {
		t.Error("no row needed a second attempt: the outage never reached the relay")
	}
}

// A committed row wakes an idle relay: with an hour between polls, only the
// notification can get it published within the test.
func TestCommitWakesAnIdleRelay(t *testing.T) {
	pool := newDatabase(t)
	publisher := &recordingPublisher{}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: publisher},
		outbox.RelayConfig{PollInterval: time.Hour}, quiet)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	defer func() { stop(); <-done }()
	time.Sleep(200 * time.Millisecond) // the relay found the outbox empty and waits

	writeMessages(t, pool, 1, 1, func(int) outbox.Message {
		return outbox.Message{Destination: outbox.AMQP, Topic: "x", Key: "woken", Payload: []byte("{}")}
	})
	testenv.WaitFor(t, 10*time.Second, "the relay to publish the new row", func() bool {
		publisher.mu.Lock()
		defer publisher.mu.Unlock()
		return len(publisher.got) == 1
	})
}

// countingTracer counts the statements sent on a connection.
type countingTracer struct{ statements atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.statements.Add(1)
	return ctx
}

func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestAddIsOneStatementHoweverManyMessages: an order announces its creation and
// its timers together; each message used to cost two round trips (insert,
// notify). Every field of every message arrives.
func TestAddIsOneStatementHoweverManyMessages(t *testing.T) {
	ctx := context.Background()
	config, err := pgxpool.ParseConfig(testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	tracer := &countingTracer{}
	config.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool, outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	msgs := []outbox.Message{
		{Destination: outbox.Kafka, Topic: "order-created", Key: "1", Headers: map[string]string{"event-type": "order-created"}, Payload: []byte(`{"order_id":1}`)},
		{Destination: outbox.AMQP, Key: "order-reminder.delay.4h", Payload: []byte(`{"reminder":1}`)},
		{Destination: outbox.AMQP, Key: "order-reminder.delay.8h", Payload: []byte(`{"reminder":2}`)},
		{Destination: outbox.AMQP, Topic: "mail", Key: "mail.order", Payload: []byte{0, 1, 2}},
	}
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		before := tracer.statements.Load()
		if err := outbox.Add(ctx, tx, msgs...); err != nil {
			return err
		}
		if n := tracer.statements.Load() - before; n != 1 {
			t.Errorf("Add of %d messages sent %d statements, want 1", len(msgs), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT destination, topic, key, headers->>'event-type', payload FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var destination, topic, key string
		var eventType *string
		var payload []byte
		err := r.Scan(&destination, &topic, &key, &eventType, &payload)
		et := ""
		if eventType != nil {
			et = *eventType
		}
		return fmt.Sprintf("%s|%s|%s|%s|%x", destination, topic, key, et, payload), err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kafka|order-created|1|order-created|" + fmt.Sprintf("%x", `{"order_id":1}`),
		"amqp||order-reminder.delay.4h||" + fmt.Sprintf("%x", `{"reminder":1}`),
		"amqp||order-reminder.delay.8h||" + fmt.Sprintf("%x", `{"reminder":2}`),
		"amqp|mail|mail.order||000102",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
