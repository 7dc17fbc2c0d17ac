package outbox

import (
	"encoding/json"
	"fmt"
	"time"
)

// A KafkaTopic is a Kafka topic bound to the one payload type T its messages
// carry; services/events declares them. Carries exists for the compiler alone:
// an Event whose payload is not its topic's type does not compile.
type KafkaTopic[T any] interface {
	Name() string
	// Headers are what every message of the topic carries besides its event id
	// (which the relay adds): the event type and the payload version.
	Headers() map[string]string
	Carries(T)
}

// A WorkRoute is a RabbitMQ route (exchange and routing key) bound to the one
// payload type T its messages carry.
type WorkRoute[T any] interface {
	Address() (exchange, routingKey string)
	Carries(T)
}

// Event is a domain event for Kafka: payload as JSON on topic, keyed by key (the
// aggregate id, so one aggregate's events stay in order on one partition), with
// a new event id. A payload that cannot be encoded makes Add fail.
func Event[T any](topic KafkaTopic[T], key string, payload T) Message {
	return Message{Destination: Kafka, Topic: topic.Name(), Key: key, Headers: topic.Headers()}.
		withPayload(topic.Name(), payload)
}

// Work is a work message for RabbitMQ: payload as JSON to the route's exchange
// with its routing key.
func Work[T any](route WorkRoute[T], payload T) Message {
	exchange, routingKey := route.Address()
	return Message{Destination: AMQP, Topic: exchange, Key: routingKey}.withPayload(routingKey, payload)
}

// Delayed is a message for route that waits in delayQueue until dueAt: a
// RabbitMQ queue whose messages expire into route's exchange with its routing
// key (the timers of package amqp's DelayQueue). It is published to delayQueue
// directly, through the default exchange, with its own expiration set to what
// is left until dueAt, so a message that left the outbox late still leaves the
// queue on time; the queue's TTL is the upper bound.
func Delayed[T any](route WorkRoute[T], delayQueue string, dueAt time.Time, payload T) Message {
	_, routingKey := route.Address()
	return Message{Destination: AMQP, Topic: "", Key: delayQueue, DueAt: dueAt}.withPayload(routingKey+" after "+delayQueue, payload)
}

func (m Message) withPayload(what string, payload any) Message {
	body, err := json.Marshal(payload)
	if err != nil {
		m.encodeErr = fmt.Errorf("%w: encode %s: %v", ErrInvalidMessage, what, err)
		return m
	}
	m.Payload = body
	return m
}
