package kafka

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/platform/batch"
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
		id, payload, err := decode(topic, msg)
		if err != nil {
			return err
		}
		return handle(ctx, id, payload)
	}
}

// decode reads msg's event id and payload; its errors are permanent.
func decode[T any](topic Decoder[T], msg Message) (id string, payload T, err error) {
	id = msg.Headers[EventIDHeader]
	if uuid.Validate(id) != nil {
		return "", payload, retry.Permanent(fmt.Errorf("%s at offset %d: %s header %q is not a UUID", msg.Topic, msg.Offset, EventIDHeader, id))
	}
	if payload, err = topic.Decode(msg.Value); err != nil {
		return "", payload, retry.Permanent(fmt.Errorf("%s at offset %d: %w", msg.Topic, msg.Offset, err))
	}
	return id, payload, nil
}

// HandleBatch adapts a handler of a batch of one payload type to a
// BatchHandler. A message Handle would dead-letter fails the batch, so that
// the consumer hands each message to Handle's handler alone and that one goes
// to the dead-letter topic while the others are handled.
func HandleBatch[T any](topic Decoder[T], handle func(ctx context.Context, events []batch.Event[T]) error) BatchHandler {
	return func(ctx context.Context, items []BatchItem) error {
		events := make([]batch.Event[T], len(items))
		for i, item := range items {
			id, payload, err := decode(topic, item.Message)
			if err != nil {
				return err
			}
			events[i] = batch.Event[T]{Ctx: item.Ctx, ID: id, Payload: payload}
		}
		return handle(ctx, events)
	}
}
