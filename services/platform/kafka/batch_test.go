package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// consumeBatches runs a batch consumer until the test ends.
func consumeBatches(t *testing.T, cfg kafka.ConsumerConfig, batch kafka.BatchHandler, each kafka.Handler) {
	t.Helper()
	cfg.Batch = batch
	c, err := kafka.NewConsumer(cfg, each, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// handledLog records what a batch consumer's two handlers did.
type handledLog struct {
	mu      sync.Mutex
	values  []string // every message handled, by either handler, in order
	batches []int    // the size of each batch that succeeded
	alone   []string // the messages the single-message handler got
}

func (l *handledLog) snapshot() (values []string, batches []int, alone []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.values), slices.Clone(l.batches), slices.Clone(l.alone)
}

// A backlog on a partition reaches the batch handler many messages at a time,
// in partition order, each with its own span in its producer's trace; the
// offsets stored after a batch are committed, so the group's next member
// starts after them.
func TestABacklogIsHandledInBatchesInOrderWithEachMessagesTrace(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(1, "backlog"))
	ctx, span := otel.Tracer("test").Start(context.Background(), "request")
	span.End()
	msgs := make([]kafka.Message, 300)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: "backlog", Key: []byte("k"), Value: []byte(fmt.Sprint(i))}
	}
	for i, err := range newProducer(t, brokers).PublishBatch(ctx, msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}

	log := &handledLog{}
	var wrongTrace []string
	var firstOnce sync.Once
	cfg := kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "backlog", Topics: []string{"backlog"}}
	consumeBatches(t, cfg,
		func(batchCtx context.Context, items []kafka.BatchItem) error {
			log.mu.Lock()
			defer log.mu.Unlock()
			if trace.SpanContextFromContext(batchCtx).TraceID() == span.SpanContext().TraceID() {
				wrongTrace = append(wrongTrace, "the batch's own span is in the first message's trace")
			}
			for _, item := range items {
				if got := trace.SpanContextFromContext(item.Ctx); got.TraceID() != span.SpanContext().TraceID() || got.SpanID() == span.SpanContext().SpanID() {
					wrongTrace = append(wrongTrace, string(item.Message.Value))
				}
				log.values = append(log.values, string(item.Message.Value))
			}
			log.batches = append(log.batches, len(items))
			return nil
		},
		func(_ context.Context, m kafka.Message) error {
			// Should the first message go alone, it waits a little, so that the rest queue up behind it.
			firstOnce.Do(func() { time.Sleep(200 * time.Millisecond) })
			log.mu.Lock()
			defer log.mu.Unlock()
			log.values = append(log.values, string(m.Value))
			log.alone = append(log.alone, string(m.Value))
			return nil
		})
	testenv.WaitFor(t, 30*time.Second, "300 messages", func() bool { v, _, _ := log.snapshot(); return len(v) >= 300 })

	values, batches, alone := log.snapshot()
	for i, v := range values {
		if v != fmt.Sprint(i) {
			t.Fatalf("message %s handled in place %d: %v", v, i, values)
		}
	}
	if len(values) != 300 {
		t.Fatalf("%d messages handled, want 300 (some twice?)", len(values))
	}
	if slices.Max(append(batches, 0)) < 2 || len(batches) > 150 {
		t.Fatalf("batches of %v and %d alone; want the backlog taken many at a time", batches, len(alone))
	}
	if slices.Max(batches) > 64 {
		t.Errorf("a batch of %d; batches are bounded by 64", slices.Max(batches))
	}
	if len(wrongTrace) > 0 {
		t.Errorf("not in their own span of the producer's trace: %v", wrongTrace)
	}
	t.Logf("%d batches (largest %d), %d messages alone", len(batches), slices.Max(batches), len(alone))
}

// When a batch fails, each of its messages is handled alone: the one that
// cannot be handled goes to the dead-letter topic, the others are handled
// once each, and nothing after the batch is skipped.
func TestAFailedBatchIsHandledOneMessageAtATime(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(1, "mixed", "mixed.dlt"))
	msgs := make([]kafka.Message, 100)
	for i := range msgs {
		v := fmt.Sprint(i)
		if i == 40 {
			v = "poison"
		}
		msgs[i] = kafka.Message{Topic: "mixed", Key: []byte("k"), Value: []byte(v)}
	}
	for i, err := range newProducer(t, brokers).PublishBatch(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	log := &handledLog{}
	var firstOnce sync.Once
	failedBatches := 0
	consumeBatches(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "mixed", Topics: []string{"mixed"}, MaxAttempts: 2, Backoff: fast},
		func(_ context.Context, items []kafka.BatchItem) error {
			log.mu.Lock()
			defer log.mu.Unlock()
			for _, item := range items {
				if string(item.Message.Value) == "poison" {
					failedBatches++
					return fmt.Errorf("cannot parse %q", item.Message.Value) // and nothing of the batch happened
				}
			}
			for _, item := range items {
				log.values = append(log.values, string(item.Message.Value))
			}
			log.batches = append(log.batches, len(items))
			return nil
		},
		func(_ context.Context, m kafka.Message) error {
			firstOnce.Do(func() { time.Sleep(200 * time.Millisecond) })
			if string(m.Value) == "poison" {
				return fmt.Errorf("cannot parse %q", m.Value)
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			log.values = append(log.values, string(m.Value))
			log.alone = append(log.alone, string(m.Value))
			return nil
		})
	dead := &seen{}
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "dlt-reader", Topics: []string{"mixed.dlt"}},
		func(ctx context.Context, m kafka.Message) error { dead.add(ctx, m); return nil })

	testenv.WaitFor(t, 30*time.Second, "99 messages and a dead letter", func() bool {
		v, _, _ := log.snapshot()
		return len(v) >= 99 && len(dead.values()) == 1
	})
	time.Sleep(200 * time.Millisecond)
	values, batches, alone := log.snapshot()
	var want []string
	for i := range 100 {
		if i != 40 {
			want = append(want, fmt.Sprint(i))
		}
	}
	if !slices.Equal(values, want) {
		t.Fatalf("handled %v, want every message but the poison one, once, in order", values)
	}
	if failedBatches == 0 || !slices.Contains(alone, "41") && !slices.Contains(alone, "39") {
		t.Fatalf("%d failed batches, %v alone; want the poison's batch handled again one by one", failedBatches, alone)
	}
	if got := dead.values(); !slices.Equal(got, []string{"poison"}) {
		t.Fatalf("dead letters %v, want [poison]", got)
	}
	if len(batches) == 0 {
		t.Errorf("no batch succeeded: %s", strings.Join(alone, " "))
	}
}
