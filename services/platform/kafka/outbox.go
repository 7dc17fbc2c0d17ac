package kafka

import (
	"context"

	"github.com/kshop/kshop/services/platform/outbox"
)

// EventIDHeader carries a message's event id, the key consumers de-duplicate by
// (docs/api.md#kafka-events). The outbox relay sets it from the outbox row;
// Handle reads it.
const EventIDHeader = "event-id"

// OutboxPublisher publishes outbox rows to Kafka: the row's topic is the topic,
// its key the message key, and its event id travels in the event-id header.
func OutboxPublisher(p *Producer) outbox.Publisher { return outboxPublisher{p} }

type outboxPublisher struct{ producer *Producer }

func (o outboxPublisher) PublishBatch(ctx context.Context, msgs []outbox.Message) []error {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		headers := make(map[string]string, len(m.Headers)+1)
		for name, value := range m.Headers {
			headers[name] = value
		}
		headers[EventIDHeader] = m.EventID
		out[i] = Message{Topic: m.Topic, Key: []byte(m.Key), Value: m.Payload, Headers: headers}
	}
	return o.producer.PublishBatch(ctx, out)
}
