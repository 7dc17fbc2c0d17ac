package events

import "strconv"

// A Topic is a Kafka topic bound to the one payload type T its messages carry:
// the outbox's Event and the consumers' Handle take it, so a message with the
// wrong payload does not compile.
type Topic[T Payload] struct{ name string }

// Name is the topic's name on the broker.
func (t Topic[T]) Name() string { return t.name }

// Headers are what each message of the topic carries besides its event id:
// its type (the topic) and the payload's version.
func (t Topic[T]) Headers() map[string]string {
	return map[string]string{HeaderEventType: t.name, HeaderEventVersion: strconv.Itoa(Version)}
}

// Carries binds T to the topic for the compiler; it does nothing.
func (Topic[T]) Carries(T) {}

// Decode reads a message value strictly (see Decode).
func (Topic[T]) Decode(value []byte) (T, error) { return Decode[T](value) }

// A Work is a RabbitMQ route bound to the one payload type T its messages
// carry.
type Work[T Payload] struct{ Route }

// Carries binds T to the route for the compiler; it does nothing.
func (Work[T]) Carries(T) {}

// Decode reads a message body strictly (see Decode).
func (Work[T]) Decode(body []byte) (T, error) { return Decode[T](body) }

// Address is where the route's messages are published: exchange and routing key.
func (r Route) Address() (exchange, routingKey string) { return r.Exchange, r.RoutingKey }

// ExchangeKind is the type of the route's exchange (topic, direct).
func (r Route) ExchangeKind() string { return ExchangeKinds[r.Exchange] }

// QueueName is the work queue the route ends in.
func (r Route) QueueName() string { return r.Queue }
