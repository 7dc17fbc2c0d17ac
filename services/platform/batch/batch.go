// Package batch is what a consumer that takes messages many at a time (Kafka
// partitions, RabbitMQ queues) hands its batch handler: each message decoded,
// with its event id and its own context.
package batch

import (
	"context"
	"fmt"
	"runtime/debug"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Event is one decoded message of a batch. Ctx carries the message's own span,
// in the trace its producer started: effects that answer this message take
// their trace from it, while the handler's ctx, the batch's, carries a span
// that links to every message's.
type Event[T any] struct {
	Ctx     context.Context
	ID      string
	Payload T
}

// IDs lists the batch's event ids, in order.
func IDs[T any](events []Event[T]) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// Waiting appends first, and then, up to limit in all, the items queue holds
// at this moment, to into: a batch as large as the backlog, never a wait for
// more. It stops early when queue is closed.
func Waiting[T any](into []T, first T, queue <-chan T, limit int) []T {
	into = append(into, first)
	for len(into) < limit {
		select {
		case next, open := <-queue:
			if !open {
				return into
			}
			into = append(into, next)
		default:
			return into
		}
	}
	return into
}

// Process runs handle once for a batch whose messages' spans are started: in a
// span of the batch's own, with attrs, that links to each message's span; a
// panic in handle comes back as an error. It then ends every span, each
// message's marked failed when the batch failed (its consumer hands the
// messages to their one-message handler next).
func Process(ctx context.Context, tracer trace.Tracer, name string, spans []trace.Span, attrs []attribute.KeyValue,
	handle func(ctx context.Context) error,
) (err error) {
	count := attribute.Int("messaging.batch.message_count", len(spans))
	links := make([]trace.Link, len(spans))
	for i, span := range spans {
		span.SetAttributes(count)
		links[i] = trace.Link{SpanContext: span.SpanContext()}
	}
	batchCtx, batchSpan := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(append(attrs, count)...))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("batch handler panicked: %v\n%s", p, debug.Stack())
		}
		if err != nil {
			batchSpan.RecordError(err)
			batchSpan.SetStatus(codes.Error, err.Error())
		}
		batchSpan.End()
		for _, span := range spans {
			if err != nil {
				span.SetStatus(codes.Error, "its batch failed; handled again alone")
			}
			span.End()
		}
	}()
	return handle(batchCtx)
}
