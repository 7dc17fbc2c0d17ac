package amqp_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/testenv"
)

// batchLog records what a batching consumer's two handlers did.
type batchLog struct {
	mu      sync.Mutex
	handled map[string]int // times each body was handled, by either handler
	batches []int          // the size of each batch that succeeded
	alone   int            // deliveries the single-delivery handler handled
	wrong   []string       // deliveries not in their own span of their publisher's trace
}

func (l *batchLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, times := range l.handled {
		n += times
	}
	return n
}

func publishBodies(t *testing.T, ctx context.Context, conn *amqp.Connection, exchange string, bodies []string) {
	t.Helper()
	msgs := make([]amqp.Message, len(bodies))
	for i, body := range bodies {
		msgs[i] = amqp.Message{Exchange: exchange, RoutingKey: "work", MessageID: fmt.Sprint("m-", i), Body: []byte(body)}
	}
	for i, err := range amqp.NewPublisher(conn).PublishBatch(ctx, msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

func queueDepth(t *testing.T, ch *amqp091.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// Deliveries waiting in a queue reach the batch handler many at a time, each
// with its own span in its publisher's trace, and are acked once it succeeded.
func TestAQueuedBacklogIsHandledInBatchesEachInItsTrace(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn := connect(t, url)
	exchange, queue := workQueue(t, conn)
	ctx, span := otel.Tracer("test").Start(context.Background(), "request")
	span.End()
	bodies := make([]string, 300)
	for i := range bodies {
		bodies[i] = fmt.Sprint(i)
	}
	publishBodies(t, ctx, conn, exchange, bodies)

	log := &batchLog{handled: map[string]int{}}
	want := span.SpanContext()
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue, Prefetch: 100, Concurrency: 2,
		Batch: func(batchCtx context.Context, items []amqp.BatchItem) error {
			log.mu.Lock()
			defer log.mu.Unlock()
			if trace.SpanContextFromContext(batchCtx).TraceID() == want.TraceID() {
				log.wrong = append(log.wrong, "the batch's own span")
			}
			for _, item := range items {
				if got := trace.SpanContextFromContext(item.Ctx); got.TraceID() != want.TraceID() || got.SpanID() == want.SpanID() {
					log.wrong = append(log.wrong, item.Delivery.MessageID)
				}
				log.handled[string(item.Delivery.Body)]++
			}
			log.batches = append(log.batches, len(items))
			return nil
		}},
		func(_ context.Context, d amqp.Delivery) error {
			log.mu.Lock()
			defer log.mu.Unlock()
			log.handled[string(d.Body)]++
			log.alone++
			return nil
		}, quiet))
	testenv.WaitFor(t, 30*time.Second, "300 deliveries", func() bool { return log.total() >= 300 })
	ch := inspect(t, url)
	testenv.WaitFor(t, 10*time.Second, "the queue to be empty, every delivery acked", func() bool { return queueDepth(t, ch, queue) == 0 })

	log.mu.Lock()
	defer log.mu.Unlock()
	for _, body := range bodies {
		if log.handled[body] != 1 {
			t.Errorf("delivery %s handled %d times, want once", body, log.handled[body])
		}
	}
	if slices.Max(append(log.batches, 0)) < 2 {
		t.Fatalf("batches of %v and %d alone; want the backlog taken many at a time", log.batches, log.alone)
	}
	if slices.Max(log.batches) > 64 {
		t.Errorf("a batch of %d; batches are bounded by 64", slices.Max(log.batches))
	}
	if len(log.wrong) > 0 {
		t.Errorf("not in their own span of the publisher's trace: %v", log.wrong)
	}
	t.Logf("%d batches (largest %d), %d deliveries alone", len(log.batches), slices.Max(log.batches), log.alone)
}

// When a batch fails, each of its deliveries is handled alone: the one that
// cannot be handled goes to the dead-letter queue, the others are handled once
// each.
func TestAFailedBatchIsHandledOneDeliveryAtATime(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn := connect(t, url)
	exchange, queue := workQueue(t, conn)
	bodies := make([]string, 100)
	for i := range bodies {
		bodies[i] = fmt.Sprint(i)
	}
	bodies[40] = "poison"
	publishBodies(t, context.Background(), conn, exchange, bodies)

	log := &batchLog{handled: map[string]int{}}
	failed := 0
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue, Prefetch: 100, MaxAttempts: 2, Backoff: fast,
		Batch: func(_ context.Context, items []amqp.BatchItem) error {
			log.mu.Lock()
			defer log.mu.Unlock()
			for _, item := range items {
				if string(item.Delivery.Body) == "poison" {
					failed++
					return fmt.Errorf("cannot process %q", item.Delivery.Body) // and nothing of the batch happened
				}
			}
			for _, item := range items {
				log.handled[string(item.Delivery.Body)]++
			}
			log.batches = append(log.batches, len(items))
			return nil
		}},
		func(_ context.Context, d amqp.Delivery) error {
			if string(d.Body) == "poison" {
				return fmt.Errorf("cannot process %q", d.Body)
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			log.handled[string(d.Body)]++
			log.alone++
			return nil
		}, quiet))
	ch := inspect(t, url)
	var dead amqp091.Delivery
	testenv.WaitFor(t, 30*time.Second, "99 deliveries and the dead letter", func() bool {
		if dead.Body == nil {
			dead, _, _ = ch.Get(amqp.DeadLetterQueue(queue), true)
		}
		return log.total() >= 99 && dead.Body != nil
	})
	testenv.WaitFor(t, 10*time.Second, "the queue to be empty", func() bool { return queueDepth(t, ch, queue) == 0 })
	time.Sleep(100 * time.Millisecond)

	log.mu.Lock()
	defer log.mu.Unlock()
	for _, body := range bodies {
		if want := 1; body != "poison" && log.handled[body] != want {
			t.Errorf("delivery %s handled %d times, want once", body, log.handled[body])
		}
	}
	if string(dead.Body) != "poison" {
		t.Errorf("dead letter %q, want poison", dead.Body)
	}
	if failed == 0 || log.alone == 0 {
		t.Errorf("%d failed batches, %d deliveries alone; want the poison's batch handled again one by one", failed, log.alone)
	}
}
