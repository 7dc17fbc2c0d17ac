package amqp_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestMain installs what telemetry.Setup installs in a service: a real tracer
// provider and the W3C propagator, so trace context can cross the broker.
func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

var fast = retry.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2}

func connect(t *testing.T, url string) *amqp.Connection {
	t.Helper()
	conn := amqp.Dial(url, quiet)
	t.Cleanup(func() { _ = conn.Close() })
	testenv.WaitFor(t, 30*time.Second, "the RabbitMQ connection", func() bool { return conn.Ready(context.Background()) == nil })
	return conn
}

// workQueue declares a direct exchange bound to a fresh queue with a dead-letter queue.
func workQueue(t *testing.T, conn *amqp.Connection) (exchange, queue string) {
	t.Helper()
	suffix := testenv.RandomSuffix()
	exchange, queue = "test-x-"+suffix, "test-q-"+suffix
	err := conn.Declare(context.Background(), amqp.Topology{
		Exchanges: []amqp.Exchange{{Name: exchange, Kind: "direct"}},
		Queues:    []amqp.Queue{{Name: queue, DeadLetter: true}},
		Bindings:  []amqp.Binding{{Exchange: exchange, Queue: queue, RoutingKey: "work"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return exchange, queue
}

// inspect reads queue state with a plain client, independent of the code under test.
func inspect(t *testing.T, url string) *amqp091.Channel {
	t.Helper()
	conn := amqptest.Dial(t, url)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// collector is a handler that records what it saw.
type collector struct {
	mu     sync.Mutex
	got    []amqp.Delivery
	at     []time.Time
	traces []string
}

func (c *collector) handle(ctx context.Context, d amqp.Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, d)
	c.at = append(c.at, time.Now())
	c.traces = append(c.traces, trace.SpanContextFromContext(ctx).TraceID().String())
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func run(t *testing.T, consumer *amqp.Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = consumer.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPublishAndConsumeRoundTrip(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn := connect(t, url)
	exchange, queue := workQueue(t, conn)
	c := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue}, c.handle, quiet))

	err := amqp.NewPublisher(conn).Publish(context.Background(), amqp.Message{
		Exchange: exchange, RoutingKey: "work", MessageID: "m-1",
		Headers: map[string]string{"event-type": "test"}, Body: []byte(`{"n":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the message", func() bool { return c.count() == 1 })
	d := c.got[0]
	if d.MessageID != "m-1" || string(d.Body) != `{"n":1}` || d.Headers["event-type"] != "test" || d.Attempt != 1 {
		t.Fatalf("got %+v", d)
	}
	if d.Headers["traceparent"] == "" {
		t.Fatal("no traceparent header: trace context must cross the broker")
	}
	if got, want := c.traces[0], d.Headers["traceparent"][3:35]; got != want {
		t.Fatalf("handler ran in trace %s, want the publisher's trace %s", got, want)
	}
}

func TestPublishBatchIsConfirmed(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn := connect(t, url)
	exchange, queue := workQueue(t, conn)
	msgs := make([]amqp.Message, 1000)
	for i := range msgs {
		msgs[i] = amqp.Message{Exchange: exchange, RoutingKey: "work", Body: []byte("x")}
	}
	for i, err := range amqp.NewPublisher(conn).PublishBatch(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	q, err := inspect(t, url).QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil || q.Messages != 1000 {
		t.Fatalf("queue holds %d messages (%v), want 1000", q.Messages, err)
	}
}

func TestUnroutableMessageIsAnError(t *testing.T) {
	conn := connect(t, testenv.AMQPURL(t))
	exchange, _ := workQueue(t, conn)
	p := amqp.NewPublisher(conn)
	errs := p.PublishBatch(context.Background(), []amqp.Message{
		{Exchange: exchange, RoutingKey: "work", Body: []byte("routed")},
		{Exchange: exchange, RoutingKey: "nobody-listens", Body: []byte("lost")},
	})
	if errs[0] != nil {
		t.Fatalf("routed message: %v", errs[0])
	}
	if !errors.Is(errs[1], amqp.ErrUnroutable) {
		t.Fatalf("unroutable message: err = %v, want ErrUnroutable", errs[1])
	}
	// A missing exchange closes the channel; the publisher must recover from that.
	if err := p.Publish(context.Background(), amqp.Message{Exchange: "no-such-exchange-" + testenv.RandomSuffix(), Body: []byte("x")}); err == nil {
		t.Fatal("publishing to a missing exchange succeeded")
	}
	if err := p.Publish(context.Background(), amqp.Message{Exchange: exchange, RoutingKey: "work", Body: []byte("again")}); err != nil {
		t.Fatalf("publisher did not recover from a closed channel: %v", err)
	}
}

func TestDelayedMessageArrivesAfterItsDelay(t *testing.T) {
	conn := connect(t, testenv.AMQPURL(t))
	exchange, queue := workQueue(t, conn)
	const delay = 700 * time.Millisecond
	delayQueue := "test-delay-" + testenv.RandomSuffix()
	if err := conn.Declare(context.Background(), amqp.Topology{Delays: []amqp.DelayQueue{
		{Name: delayQueue, Delay: delay, TargetExchange: exchange, TargetRoutingKey: "work"},
	}}); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue}, c.handle, quiet))

	sent := time.Now()
	if err := amqp.NewPublisher(conn).Publish(context.Background(), amqp.Message{RoutingKey: delayQueue, MessageID: "late", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the delayed message", func() bool { return c.count() == 1 })
	waited := c.at[0].Sub(sent)
	if waited < delay || waited > delay+time.Second {
		t.Fatalf("delivered after %v, want between %v and %v", waited, delay, delay+time.Second)
	}
	if c.got[0].MessageID != "late" || c.got[0].RoutingKey != "work" {
		t.Fatalf("got %+v", c.got[0])
	}
	t.Logf("asked %v, delivered after %v", delay, waited)
}

// A message's own expiration ends its wait in a delay queue before the
// queue's TTL: the order timers use it to leave on their due time however late
// they were queued.
func TestAMessageLeavesADelayQueueAtItsOwnExpiration(t *testing.T) {
	conn := connect(t, testenv.AMQPURL(t))
	exchange, queue := workQueue(t, conn)
	delayQueue := "test-delay-" + testenv.RandomSuffix()
	if err := conn.Declare(context.Background(), amqp.Topology{Delays: []amqp.DelayQueue{
		{Name: delayQueue, Delay: time.Hour, TargetExchange: exchange, TargetRoutingKey: "work"},
	}}); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue}, c.handle, quiet))

	const expiresIn = 300 * time.Millisecond
	sent := time.Now()
	if err := amqp.NewPublisher(conn).Publish(context.Background(), amqp.Message{RoutingKey: delayQueue, MessageID: "due", Body: []byte("{}"), ExpiresIn: expiresIn}); err != nil {
		t.Fatal(err)
	}
	// The queue would hold it an hour; its own expiration lets it go.
	testenv.WaitFor(t, 30*time.Second, "the message to leave at its own expiration", func() bool { return c.count() == 1 })
	if waited := c.at[0].Sub(sent); waited < expiresIn {
		t.Fatalf("delivered after %v, before its expiration of %v", waited, expiresIn)
	}
	if c.got[0].MessageID != "due" || c.got[0].RoutingKey != "work" {
		t.Fatalf("got %+v", c.got[0])
	}
}

func TestPoisonMessageIsDeadLetteredAfterMaxAttempts(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn := connect(t, url)
	exchange, queue := workQueue(t, conn)
	var calls atomic.Int32
	good := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue, MaxAttempts: 3, Backoff: fast},
		func(ctx context.Context, d amqp.Delivery) error {
			if string(d.Body) == "poison" {
				calls.Add(1)
				if d.Attempt == 2 {
					panic("handler bug") // a panic counts as a failed attempt
				}
				return errors.New("cannot process poison")
			}
			return good.handle(ctx, d)
		}, quiet))

	p := amqp.NewPublisher(conn)
	for _, body := range []string{"poison", "fine"} {
		if err := p.Publish(context.Background(), amqp.Message{Exchange: exchange, RoutingKey: "work", MessageID: body, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the good message after the poison one", func() bool { return good.count() == 1 })
	ch := inspect(t, url)
	var dead amqp091.Delivery
	testenv.WaitFor(t, 10*time.Second, "the dead-lettered message", func() bool {
		var ok bool
		dead, ok, _ = ch.Get(amqp.DeadLetterQueue(queue), true)
		return ok
	})
	if n := calls.Load(); n != 3 {
		t.Fatalf("poison handled %d times, want exactly MaxAttempts = 3", n)
	}
	if string(dead.Body) != "poison" || dead.MessageId != "poison" ||
		dead.Headers["x-death-reason"] != "cannot process poison" || dead.Headers["x-original-exchange"] != exchange {
		t.Fatalf("dead letter = %q id=%q headers=%v", dead.Body, dead.MessageId, dead.Headers)
	}
	q, _ := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if q.Messages != 0 {
		t.Fatalf("work queue still holds %d messages: the poison message is looping", q.Messages)
	}
}

func TestPermanentErrorSkipsRetries(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn := connect(t, url)
	exchange, queue := workQueue(t, conn)
	var calls atomic.Int32
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue, MaxAttempts: 5, Backoff: fast},
		func(context.Context, amqp.Delivery) error {
			calls.Add(1)
			return retry.Permanent(errors.New("malformed payload"))
		}, quiet))
	if err := amqp.NewPublisher(conn).Publish(context.Background(), amqp.Message{Exchange: exchange, RoutingKey: "work", Body: []byte("{")}); err != nil {
		t.Fatal(err)
	}
	ch := inspect(t, url)
	testenv.WaitFor(t, 10*time.Second, "the dead-lettered message", func() bool {
		_, ok, _ := ch.Get(amqp.DeadLetterQueue(queue), true)
		return ok
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1", n)
	}
}

func TestDialToNothingIsNotReadyAndDoesNotPanic(t *testing.T) {
	conn := amqp.Dial("amqp://guest:guest@127.0.0.1:1/", quiet)
	defer conn.Close()
	time.Sleep(100 * time.Millisecond)
	if conn.Ready(context.Background()) == nil {
		t.Fatal("Ready = nil without a broker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := amqp.NewPublisher(conn).Publish(ctx, amqp.Message{RoutingKey: "q", Body: []byte("x")}); !errors.Is(err, amqp.ErrNotConnected) {
		t.Fatalf("Publish without a broker: err = %v, want ErrNotConnected", err)
	}
}

// TestRecoversAfterBrokerRestart stops and starts the broker under a publisher and
// a consumer made before the outage; both carry on without being recreated.
func TestRecoversAfterBrokerRestart(t *testing.T) {
	broker := testenv.Restartable(t)
	conn := connect(t, broker.URL)
	exchange, queue := workQueue(t, conn)
	c := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue}, c.handle, quiet))
	p := amqp.NewPublisher(conn)
	publish := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Publish(ctx, amqp.Message{Exchange: exchange, RoutingKey: "work", MessageID: id, Body: []byte(id)})
	}
	if err := publish("before"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the first message", func() bool { return c.count() == 1 })

	broker.Stop(t)
	testenv.WaitFor(t, 10*time.Second, "Ready to report the outage", func() bool { return conn.Ready(context.Background()) != nil })
	broker.Start(t)
	testenv.WaitFor(t, 60*time.Second, "the reconnect", func() bool { return conn.Ready(context.Background()) == nil })

	testenv.WaitFor(t, 30*time.Second, "a publish after the restart", func() bool { return publish("after") == nil })
	testenv.WaitFor(t, 30*time.Second, "the message published after the restart", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, d := range c.got {
			if d.MessageID == "after" {
				return true
			}
		}
		return false
	})
}

// Delayed messages that expire while the broker is down must still reach their
// target afterwards: the delay queue dead-letters at least once.
func TestDelayedMessageSurvivesABrokerRestart(t *testing.T) {
	broker := testenv.Restartable(t)
	conn := connect(t, broker.URL)
	// Targets as services declare them: quorum work queues, which come back
	// later than classic queues when the broker starts.
	suffix := testenv.RandomSuffix()
	exchange, queue, delayQueue := "test-timers-"+suffix, "test-timer-work-"+suffix, "test-delay-"+suffix
	topology := amqp.WorkTopology(amqp.WorkRoute{Exchange: exchange, ExchangeKind: "direct", RoutingKey: "work", Queue: queue})
	topology.Delays = []amqp.DelayQueue{{Name: delayQueue, Delay: 2 * time.Second, TargetExchange: exchange, TargetRoutingKey: "work"}}
	if err := conn.Declare(context.Background(), topology); err != nil {
		t.Fatal(err)
	}
	if err := amqp.NewPublisher(conn).Publish(context.Background(), amqp.Message{RoutingKey: delayQueue, MessageID: "timer", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	broker.Stop(t)
	time.Sleep(2500 * time.Millisecond) // the delay passes while the broker is down
	broker.Start(t)
	c := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue}, c.handle, quiet))
	testenv.WaitFor(t, 60*time.Second, "the delayed message after the restart", func() bool { return c.count() == 1 })
}
