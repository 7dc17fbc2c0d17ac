package order

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
)

// eventMessage is a domain event for the outbox, keyed by the order id.
func eventMessage(topic string, id int64, payload any) (outbox.Message, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encode %s: %w", topic, err)
	}
	eventID := uuid.NewString()
	return outbox.Message{
		EventID: eventID, Destination: outbox.Kafka, Topic: topic, Key: events.Key(id),
		Headers: events.Headers(topic, eventID), Payload: body,
	}, nil
}

// mailMessage is an e-mail for the mail service, on the exchange its route names.
func mailMessage(routingKey string, payload any) (outbox.Message, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encode %s: %w", routingKey, err)
	}
	exchange := ""
	for _, r := range events.MailRoutes {
		if r.RoutingKey == routingKey {
			exchange = r.Exchange
		}
	}
	return outbox.Message{Destination: outbox.AMQP, Topic: exchange, Key: routingKey, Payload: body}, nil
}

// mail queues an e-mail for the mail service.
func mail(ctx context.Context, tx pgx.Tx, routingKey string, payload any) error {
	msg, err := mailMessage(routingKey, payload)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, msg)
}

// timerMessage is a message for the order service itself, delivered after
// delay: it waits in the delay's TTL queue (orders.delay.4h), which
// dead-letters it into the orders exchange with the routing key declared for
// that delay (Topology pairs them, one kind of timer per delay).
func timerMessage(delay time.Duration, payload any) (outbox.Message, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encode the %s timer: %w", delay, err)
	}
	return outbox.Message{Destination: outbox.AMQP, Topic: "", Key: events.DelayQueueName(delay), Payload: body}, nil
}

func mailItems(items []Item) []events.MailItem {
	out := make([]events.MailItem, len(items))
	for i, it := range items {
		out[i] = events.MailItem{ProductID: it.ProductID, Name: it.name, Quantity: it.Quantity, Price: it.Price}
	}
	return out
}
