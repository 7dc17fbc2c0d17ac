package batch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/batch"
)

// process runs batch.Process over three message spans and returns what was
// recorded, in the order they ended: the batch's, then the messages'.
func process(t *testing.T, handle func(context.Context) error) ([]sdktrace.ReadOnlySpan, error) {
	t.Helper()
	recorder := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)).Tracer("test")
	spans := make([]trace.Span, 3)
	for i := range spans {
		_, spans[i] = tracer.Start(context.Background(), "message process")
	}
	err := batch.Process(context.Background(), tracer, "batch process", spans, []attribute.KeyValue{attribute.String("messaging.system", "test")}, handle)
	ended := recorder.Ended()
	if len(ended) != 4 {
		t.Fatalf("%d spans ended, want the three messages' and the batch's", len(ended))
	}
	return ended, err
}

func TestProcessLinksTheBatchToEachMessage(t *testing.T) {
	var inBatch trace.SpanContext
	ended, err := process(t, func(ctx context.Context) error {
		inBatch = trace.SpanContextFromContext(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	batchSpan := ended[0]
	if batchSpan.Name() != "batch process" || !batchSpan.SpanContext().Equal(inBatch) || len(batchSpan.Links()) != 3 {
		t.Fatalf("the batch ran in %v; the batch's span %q (%v) has %d links, want it, with 3", inBatch, batchSpan.Name(), batchSpan.SpanContext(), len(batchSpan.Links()))
	}
	for i, s := range ended[1:] {
		if !batchSpan.Links()[i].SpanContext.Equal(s.SpanContext()) || s.Status().Code != codes.Unset {
			t.Errorf("message span %d: linked %v, status %v", i, batchSpan.Links()[i].SpanContext.Equal(s.SpanContext()), s.Status())
		}
	}
}

func TestAFailedOrPanickingBatchMarksEveryMessageFailed(t *testing.T) {
	for name, handle := range map[string]func(context.Context) error{
		"error": func(context.Context) error { return errors.New("database down") },
		"panic": func(context.Context) error { panic("handler bug") },
	} {
		t.Run(name, func(t *testing.T) {
			ended, err := process(t, handle)
			if err == nil || name == "panic" && !strings.Contains(err.Error(), "handler bug") {
				t.Fatalf("error %v, want the batch's failure", err)
			}
			for _, s := range ended {
				if s.Status().Code != codes.Error {
					t.Errorf("span %q ended with status %v, want an error", s.Name(), s.Status())
				}
			}
		})
	}
}

func TestWaitingTakesWhatIsQueuedUpToTheLimitAndNeverWaits(t *testing.T) {
	queue := make(chan int, 10)
	for i := 2; i <= 6; i++ {
		queue <- i
	}
	if got := batch.Waiting(nil, 1, queue, 4); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("took %v, want [1 2 3 4]: the first and what was queued, up to 4", got)
	}
	if got := batch.Waiting(nil, 0, queue, 64); fmt.Sprint(got) != "[0 5 6]" {
		t.Fatalf("took %v, want [0 5 6]: what was left, without waiting for more", got)
	}
	close(queue)
	if got := batch.Waiting([]int{9}, 7, queue, 64); fmt.Sprint(got) != "[9 7]" {
		t.Fatalf("took %v from a closed queue, want [9 7]", got)
	}
}
