package amqp

import (
	"fmt"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Exchange is a durable exchange; Kind is topic, direct or fanout.
type Exchange struct {
	Name string
	Kind string
}

// Queue is a durable work queue. With DeadLetter, a "<name>.dlq" queue is declared
// too and messages the broker rejects from the queue are routed there.
type Queue struct {
	Name       string
	Quorum     bool
	DeadLetter bool
}

// DeadLetterQueue names the dead-letter queue of a work queue.
func DeadLetterQueue(queue string) string { return queue + ".dlq" }

// Binding routes messages from an exchange to a queue by routing key.
type Binding struct {
	Exchange   string
	Queue      string
	RoutingKey string
}

// DelayQueue holds messages for Delay, then RabbitMQ dead-letters them to
// TargetExchange with TargetRoutingKey. Nothing consumes it. One queue per delay
// keeps every message in it on the same TTL, so none waits behind a longer one.
// Publish to it through the default exchange: Exchange "", RoutingKey = Name.
type DelayQueue struct {
	Name             string
	Delay            time.Duration
	TargetExchange   string
	TargetRoutingKey string
}

// Topology is everything a service declares on the broker.
type Topology struct {
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding
	Delays    []DelayQueue
}

// DeclareTopology declares t on conn through a channel of its own. Every
// declaration is idempotent; one that differs from what exists fails with the
// broker's 406 PRECONDITION_FAILED (an *amqp091.Error), which closes only that
// channel.
func DeclareTopology(conn *amqp091.Connection, t Topology) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel to declare topology: %w", err)
	}
	defer ch.Close()
	for _, e := range t.Exchanges {
		if err := ch.ExchangeDeclare(e.Name, e.Kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s (%s): %w", e.Name, e.Kind, err)
		}
	}
	for _, q := range t.Queues {
		args := amqp091.Table{}
		if q.Quorum {
			args["x-queue-type"] = "quorum"
		}
		if q.DeadLetter {
			dlqArgs := amqp091.Table{}
			if q.Quorum {
				dlqArgs["x-queue-type"] = "quorum"
			}
			if _, err := ch.QueueDeclare(DeadLetterQueue(q.Name), true, false, false, false, dlqArgs); err != nil {
				return fmt.Errorf("declare dead-letter queue %s: %w", DeadLetterQueue(q.Name), err)
			}
			args["x-dead-letter-exchange"] = ""
			args["x-dead-letter-routing-key"] = DeadLetterQueue(q.Name)
		}
		if _, err := ch.QueueDeclare(q.Name, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare queue %s: %w", q.Name, err)
		}
	}
	for _, d := range t.Delays {
		if d.Delay <= 0 {
			return fmt.Errorf("delay queue %s: delay must be positive, got %v", d.Name, d.Delay)
		}
		// A quorum queue with at-least-once dead-lettering keeps each message
		// until the target queue confirmed it. A classic queue dead-letters at
		// most once: messages that expire while the broker restarts are routed
		// before the target queues are back, and are lost.
		args := amqp091.Table{
			"x-queue-type":              "quorum",
			"x-message-ttl":             d.Delay.Milliseconds(),
			"x-dead-letter-exchange":    d.TargetExchange,
			"x-dead-letter-routing-key": d.TargetRoutingKey,
			"x-dead-letter-strategy":    "at-least-once",
			"x-overflow":                "reject-publish",
		}
		if _, err := ch.QueueDeclare(d.Name, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare delay queue %s (%v): %w", d.Name, d.Delay, err)
		}
	}
	for _, b := range t.Bindings {
		if err := ch.QueueBind(b.Queue, b.RoutingKey, b.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s to %s by %q: %w", b.Queue, b.Exchange, b.RoutingKey, err)
		}
	}
	return nil
}

// WorkRoute is one flow of work messages: a durable exchange of a kind, the
// routing key, and the work queue bound to it.
type WorkRoute struct {
	Exchange     string
	ExchangeKind string
	RoutingKey   string
	Queue        string
}

// WorkTopology declares each route's exchange, a quorum work queue with its
// dead-letter queue, and the binding. Producers and consumers both declare it,
// with identical arguments, so whichever starts first, no message is unroutable.
func WorkTopology(routes ...WorkRoute) Topology {
	var t Topology
	seenExchange := map[string]bool{}
	seenQueue := map[string]bool{}
	for _, r := range routes {
		if !seenExchange[r.Exchange] {
			seenExchange[r.Exchange] = true
			t.Exchanges = append(t.Exchanges, Exchange{Name: r.Exchange, Kind: r.ExchangeKind})
		}
		if !seenQueue[r.Queue] {
			seenQueue[r.Queue] = true
			t.Queues = append(t.Queues, Queue{Name: r.Queue, Quorum: true, DeadLetter: true})
		}
		t.Bindings = append(t.Bindings, Binding{Exchange: r.Exchange, Queue: r.Queue, RoutingKey: r.RoutingKey})
	}
	return t
}
