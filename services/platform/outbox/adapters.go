package outbox

import (
	"context"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/kafka"
)

// KafkaPublisher publishes outbox rows to Kafka: Topic is the topic, Key the message
// key, and the event id travels in the event-id header.
func KafkaPublisher(p *kafka.Producer) Publisher { return kafkaPublisher{p} }

type kafkaPublisher struct{ producer *kafka.Producer }

func (k kafkaPublisher) PublishBatch(ctx context.Context, msgs []Message) []error {
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		headers := make(map[string]string, len(m.Headers)+1)
		for name, value := range m.Headers {
			headers[name] = value
		}
		headers[EventIDHeader] = m.EventID
		out[i] = kafka.Message{Topic: m.Topic, Key: []byte(m.Key), Value: m.Payload, Headers: headers}
	}
	return k.producer.PublishBatch(ctx, out)
}

// AMQPPublisher publishes outbox rows to RabbitMQ: Topic is the exchange, Key the
// routing key, and the event id is the message_id.
func AMQPPublisher(p *amqp.Publisher) Publisher { return amqpPublisher{p} }

type amqpPublisher struct{ publisher *amqp.Publisher }

func (a amqpPublisher) PublishBatch(ctx context.Context, msgs []Message) []error {
	out := make([]amqp.Message, len(msgs))
	for i, m := range msgs {
		out[i] = amqp.Message{
			Exchange:    m.Topic,
			RoutingKey:  m.Key,
			MessageID:   m.EventID,
			ContentType: "application/json",
			Headers:     m.Headers,
			Body:        m.Payload,
		}
	}
	return a.publisher.PublishBatch(ctx, out)
}

// EventIDHeader carries the event id on Kafka messages, the key consumers
// de-duplicate by (docs/api.md#kafka-events).
const EventIDHeader = "event-id"
