package kafka

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/platform/retry"
)

// A Decoder turns a message value into the payload type T of its topic;
// services/events' topics are Decoders.
type Decoder[T any] interface {
	Decode(value []byte) (T, error)
}

// Handle adapts a handler of one payload type to a Handler. A message without
// a valid event id (de-duplication needs one) or whose value does not decode
// goes to the dead-letter topic at once, since no retry can help it; the others
// reach handle with their event id.
func Handle[T any](topic Decoder[T], handle func(ctx context.Context, eventID string, payload T) error) Handler {
	return func(ctx context.Context, msg Message) error {
		id := msg.Headers[EventIDHeader]
		if uuid.Validate(id) != nil {
			return retry.Permanent(fmt.Errorf("%s at offset %d: %s header %q is not a UUID", msg.Topic, msg.Offset, EventIDHeader, id))
		}
		payload, err := topic.Decode(msg.Value)
		if err != nil {
			return retry.Permanent(fmt.Errorf("%s at offset %d: %w", msg.Topic, msg.Offset, err))
		}
		return handle(ctx, id, payload)
	}
}
