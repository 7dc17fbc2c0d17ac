// Package batch is what a consumer that takes messages many at a time (Kafka
// partitions, RabbitMQ queues) hands its batch handler: each message decoded,
// with its event id and its own context.
package batch

import "context"

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
