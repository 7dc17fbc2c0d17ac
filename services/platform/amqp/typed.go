package amqp

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/retry"
)

// A Decoder turns a message body into the payload type T of its route;
// services/events' routes are Decoders.
type Decoder[T any] interface {
	Decode(body []byte) (T, error)
}

// Handle adapts a handler of one payload type to a Handler. A delivery without
// a valid message id (de-duplication needs one) or whose body does not decode
// goes to the dead-letter queue at once, since no retry can help it; the others
// reach handle with their message id.
func Handle[T any](route Decoder[T], handle func(ctx context.Context, messageID string, payload T) error) Handler {
	return func(ctx context.Context, d Delivery) error {
		payload, err := decode(route, d)
		if err != nil {
			return err
		}
		return handle(ctx, d.MessageID, payload)
	}
}

// HandleBatch adapts a handler of a batch of one payload type to a
// BatchHandler. A delivery Handle would dead-letter fails the batch, so that
// the consumer hands each delivery to Handle's handler alone and that one goes
// to the dead-letter queue while the others are handled.
func HandleBatch[T any](route Decoder[T], handle func(ctx context.Context, events []batch.Event[T]) error) BatchHandler {
	return func(ctx context.Context, items []BatchItem) error {
		events := make([]batch.Event[T], len(items))
		for i, item := range items {
			payload, err := decode(route, item.Delivery)
			if err != nil {
				return err
			}
			events[i] = batch.Event[T]{Ctx: item.Ctx, ID: item.Delivery.MessageID, Payload: payload}
		}
		return handle(ctx, events)
	}
}

// decode checks d's message id and decodes its body; its errors are permanent.
func decode[T any](route Decoder[T], d Delivery) (T, error) {
	var payload T
	if uuid.Validate(d.MessageID) != nil {
		return payload, retry.Permanent(fmt.Errorf("%s from %q: message id %q is not a UUID", d.RoutingKey, d.Exchange, d.MessageID))
	}
	payload, err := route.Decode(d.Body)
	if err != nil {
		return payload, retry.Permanent(fmt.Errorf("%s from %q: %w", d.RoutingKey, d.Exchange, err))
	}
	return payload, nil
}

// A Route is a flow of work messages as services/events declares it.
type Route interface {
	Address() (exchange, routingKey string)
	ExchangeKind() string
	QueueName() string
}

// WorkTopologyOf is WorkTopology for routes declared elsewhere.
func WorkTopologyOf[R Route](routes []R) Topology {
	work := make([]WorkRoute, len(routes))
	for i, r := range routes {
		exchange, routingKey := r.Address()
		work[i] = WorkRoute{Exchange: exchange, ExchangeKind: r.ExchangeKind(), RoutingKey: routingKey, Queue: r.QueueName()}
	}
	return WorkTopology(work...)
}
