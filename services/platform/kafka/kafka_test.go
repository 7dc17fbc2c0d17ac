package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var fast = retry.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2}

// TestMain installs a real tracer provider and the W3C propagator, as
// telemetry.Setup does in a service.
func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

func newProducer(t testing.TB, brokers string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: brokers}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

type seen struct {
	mu     sync.Mutex
	msgs   []kafka.Message
	traces []string
}

func (s *seen) add(ctx context.Context, m kafka.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	s.traces = append(s.traces, trace.SpanContextFromContext(ctx).TraceID().String())
}

func (s *seen) values() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = string(m.Value)
	}
	return out
}

// consume runs a consumer until the returned stop function is called.
func consume(t *testing.T, cfg kafka.ConsumerConfig, h kafka.Handler) (stop func()) {
	t.Helper()
	c, err := kafka.NewConsumer(cfg, h, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRoundTripCarriesKeyHeadersAndTrace(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(3, "orders"))
	got := &seen{}
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "test", Topics: []string{"orders"}},
		func(ctx context.Context, m kafka.Message) error { got.add(ctx, m); return nil })

	ctx, span := otel.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	err := newProducer(t, brokers).Publish(ctx, kafka.Message{
		Topic: "orders", Key: []byte("42"), Value: []byte(`{"order_id":42}`),
		Headers: map[string]string{"event-type": "order-created"},
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the message", func() bool { return len(got.values()) == 1 })
	m := got.msgs[0]
	if string(m.Key) != "42" || string(m.Value) != `{"order_id":42}` || m.Headers["event-type"] != "order-created" || m.Topic != "orders" {
		t.Fatalf("got %+v", m)
	}
	if want := span.SpanContext().TraceID().String(); got.traces[0] != want {
		t.Fatalf("handler ran in trace %s, want the producer's trace %s", got.traces[0], want)
	}
}

func TestPublishBatchIsAcknowledged(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(3, "bulk"))
	msgs := make([]kafka.Message, 1000)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: "bulk", Key: []byte(fmt.Sprint(i % 10)), Value: []byte(fmt.Sprint(i))}
	}
	for i, err := range newProducer(t, brokers).PublishBatch(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	got := &seen{}
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "count", Topics: []string{"bulk"}},
		func(ctx context.Context, m kafka.Message) error { got.add(ctx, m); return nil })
	testenv.WaitFor(t, 30*time.Second, "1000 messages", func() bool { return len(got.values()) == 1000 })
}

// TestOffsetsAreStoredOnlyAfterSuccess stops a consumer while it is still retrying
// message 3, then starts another member of the same group: it must begin at
// message 3, neither skipping it nor repeating 1 and 2.
func TestOffsetsAreStoredOnlyAfterSuccess(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(1, "steps"))
	p := newProducer(t, brokers)
	for i := 1; i <= 5; i++ {
		if err := p.Publish(context.Background(), kafka.Message{Topic: "steps", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "steps", Topics: []string{"steps"}, MaxAttempts: 1000, Backoff: fast}

	first := &seen{}
	var failing atomic.Bool
	stop := consume(t, cfg, func(ctx context.Context, m kafka.Message) error {
		if string(m.Value) == "3" {
			failing.Store(true)
			return errors.New("database down")
		}
		first.add(ctx, m)
		return nil
	})
	testenv.WaitFor(t, 30*time.Second, "the consumer to get stuck on message 3", failing.Load)
	stop()
	if got := first.values(); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("first consumer handled %v, want [1 2]", got)
	}

	second := &seen{}
	consume(t, cfg, func(ctx context.Context, m kafka.Message) error { second.add(ctx, m); return nil })
	testenv.WaitFor(t, 30*time.Second, "messages 3 to 5", func() bool { return len(second.values()) >= 3 })
	time.Sleep(200 * time.Millisecond)
	if got := second.values(); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("second consumer handled %v, want [3 4 5]", got)
	}
}

func TestPoisonMessageGoesToDeadLetterTopic(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(1, "payments", "payments.dlt"))
	var calls atomic.Int32
	good := &seen{}
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "payments", Topics: []string{"payments"}, MaxAttempts: 3, Backoff: fast},
		func(ctx context.Context, m kafka.Message) error {
			if string(m.Value) == "poison" {
				if calls.Add(1) == 2 {
					panic("handler bug") // a panic counts as a failed attempt
				}
				return errors.New("cannot parse")
			}
			good.add(ctx, m)
			return nil
		})
	dead := &seen{}
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "dlt-reader", Topics: []string{"payments.dlt"}},
		func(ctx context.Context, m kafka.Message) error { dead.add(ctx, m); return nil })

	p := newProducer(t, brokers)
	for _, v := range []string{"poison", "fine"} {
		if err := p.Publish(context.Background(), kafka.Message{Topic: "payments", Key: []byte("k"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the message after the poison one", func() bool { return len(good.values()) == 1 })
	testenv.WaitFor(t, 30*time.Second, "the dead letter", func() bool { return len(dead.values()) == 1 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("poison handled %d times, want MaxAttempts = 3", n)
	}
	d := dead.msgs[0]
	if string(d.Value) != "poison" || string(d.Key) != "k" || d.Headers[kafka.HeaderDLTOriginalTopic] != "payments" ||
		d.Headers[kafka.HeaderDLTReason] != "cannot parse" || d.Headers[kafka.HeaderDLTAttempts] != "3" {
		t.Fatalf("dead letter = %+v", d)
	}
}

func TestPermanentErrorIsDeadLetteredAtOnce(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(1, "mail", "mail.dlt"))
	var calls atomic.Int32
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "mail", Topics: []string{"mail"}, MaxAttempts: 5, Backoff: fast},
		func(context.Context, kafka.Message) error {
			calls.Add(1)
			return retry.Permanent(errors.New("malformed payload"))
		})
	dead := &seen{}
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "dlt-reader", Topics: []string{"mail.dlt"}},
		func(ctx context.Context, m kafka.Message) error { dead.add(ctx, m); return nil })
	if err := newProducer(t, brokers).Publish(context.Background(), kafka.Message{Topic: "mail", Value: []byte("{")}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the dead letter", func() bool { return len(dead.values()) == 1 })
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1", n)
	}
}

func TestNoBrokerIsNotReadyAndDoesNotPanic(t *testing.T) {
	p := newProducer(t, "127.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := p.Ready(ctx); err == nil {
		t.Fatal("Ready = nil without a broker")
	}
	if err := p.Publish(ctx, kafka.Message{Topic: "t", Value: []byte("x")}); err == nil {
		t.Fatal("Publish succeeded without a broker")
	}
}

func BenchmarkPublishBatch(b *testing.B) {
	brokers := kafkatest.NewCluster(b, kafkatest.WithTopics(3, "bench"))
	p := newProducer(b, brokers)
	const batch = 500
	msgs := make([]kafka.Message, batch)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: "bench", Key: []byte(fmt.Sprint(i)), Value: make([]byte, 200)}
	}
	start := time.Now()
	for b.Loop() {
		for _, err := range p.PublishBatch(context.Background(), msgs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
}

// TestClientsCarryNoLargeBuffers: creating a producer and a consumer (which
// has a dead-letter producer of its own) adds a few megabytes of Go heap at
// most. confluent-kafka-go's default channels hold a million entries each,
// about 24 MB per producer that every garbage collection scans.
func TestClientsCarryNoLargeBuffers(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: "127.0.0.1:1"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: "127.0.0.1:1"}, GroupID: "footprint", Topics: []string{"t"}},
		func(context.Context, kafka.Message) error { return nil })
	const ceiling = 4 << 20
	if grown := int64(heap()) - int64(before); grown > ceiling {
		t.Fatalf("a producer and a consumer hold %.1f MiB of Go heap, want at most %d MiB", float64(grown)/(1<<20), ceiling>>20)
	}
}
