package amqp

import (
	"context"
	"time"

	"github.com/kshop/kshop/services/platform/outbox"
)

// OutboxPublisher publishes outbox rows to RabbitMQ: the row's topic is the
// exchange, its key the routing key, and its event id the message_id consumers
// de-duplicate by.
func OutboxPublisher(p *Publisher) outbox.Publisher { return outboxPublisher{p} }

type outboxPublisher struct{ publisher *Publisher }

func (o outboxPublisher) PublishBatch(ctx context.Context, msgs []outbox.Message) []error {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{
			Exchange:    m.Topic,
			RoutingKey:  m.Key,
			MessageID:   m.EventID,
			ContentType: "application/json",
			Headers:     m.Headers,
			Body:        m.Payload,
		}
		if !m.DueAt.IsZero() {
			// Already due (the relay was late): expire at once, not never.
			out[i].ExpiresIn = max(time.Millisecond, time.Until(m.DueAt))
		}
	}
	return o.publisher.PublishBatch(ctx, out)
}
