package amqp

import (
	"context"
	"fmt"

	"github.com/google/uuid"

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
		if uuid.Validate(d.MessageID) != nil {
			return retry.Permanent(fmt.Errorf("%s from %q: message id %q is not a UUID", d.RoutingKey, d.Exchange, d.MessageID))
		}
		payload, err := route.Decode(d.Body)
		if err != nil {
			return retry.Permanent(fmt.Errorf("%s from %q: %w", d.RoutingKey, d.Exchange, err))
		}
		return handle(ctx, d.MessageID, payload)
	}
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
