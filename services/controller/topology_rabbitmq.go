package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kshop/kshop/services/platform/amqp"
)

// Outcome is what one pass of making a broker match its document did.
type Outcome struct {
	// Changes are what was created, raised, updated or deleted.
	Changes []string
	// Problems are what the document asks for and the broker cannot do
	// without losing data; nothing was changed for them.
	Problems []string
}

// InvalidDocumentError is a document the controller cannot read; retrying does
// not help until someone edits the ConfigMap.
type InvalidDocumentError struct{ Err error }

func (e *InvalidDocumentError) Error() string { return "invalid topology document: " + e.Err.Error() }
func (e *InvalidDocumentError) Unwrap() error { return e.Err }

// RabbitMQBroker makes a RabbitMQ broker match a rabbitmq document.
type RabbitMQBroker struct {
	URL string
	// DialTimeout bounds the connection attempt (zero: 10 s).
	DialTimeout time.Duration
}

// Apply declares what is missing and deletes what the document marks delete.
// A declaration that differs from what exists (a queue's type, an exchange's
// kind) is a Problem: RabbitMQ cannot change it in place.
func (b RabbitMQBroker) Apply(ctx context.Context, doc string) (Outcome, error) {
	var out Outcome
	t, err := ParseRabbitMQTopology(doc)
	if err != nil {
		return out, &InvalidDocumentError{err}
	}
	timeout := b.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	conn, err := amqp091.DialConfig(b.URL, amqp091.Config{Dial: amqp091.DefaultDial(timeout)})
	if err != nil {
		return out, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()

	// Removals first, so a queue re-created with other arguments in one edit
	// (delete the old entry, add the new) ends up as asked.
	for _, bd := range t.Bindings {
		if bd.Delete {
			if err := unbind(conn, bd); err != nil {
				return out, err
			}
		}
	}
	for _, q := range t.Queues {
		if q.Delete {
			if err := deleteQueue(conn, q.Name, &out); err != nil {
				return out, err
			}
		}
	}
	for _, d := range t.DelayQueues {
		if d.Delete {
			if err := deleteQueue(conn, d.Name, &out); err != nil {
				return out, err
			}
		}
	}
	for _, e := range t.Exchanges {
		if e.Delete {
			if err := deleteExchange(conn, e.Name, &out); err != nil {
				return out, err
			}
		}
	}

	for _, e := range t.Exchanges {
		if !e.Delete {
			item := amqp.Topology{Exchanges: []amqp.Exchange{{Name: e.Name, Kind: e.Type}}}
			if err := ensure(conn, "exchange", e.Name, exchangeExists, item, &out); err != nil {
				return out, err
			}
		}
	}
	for _, q := range t.Queues {
		if !q.Delete {
			item := amqp.Topology{Queues: []amqp.Queue{{Name: q.Name, Quorum: q.Type == "quorum", DeadLetter: q.DeadLetterQueue}}}
			if err := ensure(conn, "queue", q.Name, queueExists, item, &out); err != nil {
				return out, err
			}
		}
	}
	for _, d := range t.DelayQueues {
		if !d.Delete {
			item := amqp.Topology{Delays: []amqp.DelayQueue{{Name: d.Name, Delay: d.Delay.Duration, TargetExchange: d.Exchange, TargetRoutingKey: d.RoutingKey}}}
			if err := ensure(conn, "delay queue", d.Name, queueExists, item, &out); err != nil {
				return out, err
			}
		}
	}
	for _, bd := range t.Bindings {
		if bd.Delete {
			continue
		}
		// Binding twice is harmless and RabbitMQ has no cheap way to ask
		// whether one exists, so bindings are declared on every pass.
		err := withChannel(conn, func(ch *amqp091.Channel) error {
			return ch.QueueBind(bd.Queue, bd.RoutingKey, bd.Exchange, false, nil)
		})
		if code(err) == amqp091.NotFound {
			out.Problems = append(out.Problems, fmt.Sprintf("binding %s -[%s]-> %s: the exchange or the queue does not exist", bd.Exchange, bd.RoutingKey, bd.Queue))
		} else if err != nil {
			return out, fmt.Errorf("bind %s to %s: %w", bd.Queue, bd.Exchange, err)
		}
	}
	return out, nil
}

func unbind(conn *amqp091.Connection, bd RabbitMQBinding) error {
	err := withChannel(conn, func(ch *amqp091.Channel) error {
		return ch.QueueUnbind(bd.Queue, bd.RoutingKey, bd.Exchange, nil)
	})
	switch {
	case err == nil:
		// RabbitMQ answers unbind-ok whether or not the binding existed.
		return nil
	case code(err) == amqp091.NotFound:
		return nil
	default:
		return fmt.Errorf("unbind %s from %s: %w", bd.Queue, bd.Exchange, err)
	}
}

// ensure declares item when name does not exist and checks it is equivalent
// when it does.
func ensure(conn *amqp091.Connection, kind, name string, exists func(*amqp091.Connection, string) (bool, error), item amqp.Topology, out *Outcome) error {
	found, err := exists(conn, name)
	if err != nil {
		return err
	}
	err = amqp.DeclareTopology(conn, item)
	switch {
	case code(err) == amqp091.PreconditionFailed:
		out.Problems = append(out.Problems, fmt.Sprintf("%s %s exists with other settings than the document's (%s); RabbitMQ cannot change them in place: mark it delete: true to drop it with its messages, or change the document", kind, name, reason(err)))
		return nil
	case err != nil:
		return fmt.Errorf("declare %s %s: %w", kind, name, err)
	case !found:
		out.Changes = append(out.Changes, fmt.Sprintf("created %s %s", kind, name))
	}
	return nil
}

func queueExists(conn *amqp091.Connection, name string) (bool, error) {
	return passive(conn, "queue", name, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		return err
	})
}

func exchangeExists(conn *amqp091.Connection, name string) (bool, error) {
	return passive(conn, "exchange", name, func(ch *amqp091.Channel) error {
		// Passive: the kind and flags are not compared, only existence.
		return ch.ExchangeDeclarePassive(name, "direct", true, false, false, false, nil)
	})
}

func passive(conn *amqp091.Connection, kind, name string, check func(*amqp091.Channel) error) (bool, error) {
	err := withChannel(conn, check)
	switch {
	case err == nil:
		return true, nil
	case code(err) == amqp091.NotFound:
		return false, nil
	default:
		return false, fmt.Errorf("look up %s %s: %w", kind, name, err)
	}
}

func deleteQueue(conn *amqp091.Connection, name string, out *Outcome) error {
	found, err := queueExists(conn, name)
	if err != nil || !found {
		return err
	}
	var purged int
	err = withChannel(conn, func(ch *amqp091.Channel) error {
		purged, err = ch.QueueDelete(name, false, false, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	out.Changes = append(out.Changes, fmt.Sprintf("deleted queue %s with %d messages", name, purged))
	return nil
}

func deleteExchange(conn *amqp091.Connection, name string, out *Outcome) error {
	found, err := exchangeExists(conn, name)
	if err != nil || !found {
		return err
	}
	if err := withChannel(conn, func(ch *amqp091.Channel) error { return ch.ExchangeDelete(name, false, false) }); err != nil {
		return fmt.Errorf("delete exchange %s: %w", name, err)
	}
	out.Changes = append(out.Changes, "deleted exchange "+name)
	return nil
}

// withChannel runs fn on a channel of its own: a failed operation closes its
// channel, and must not take the next operation with it.
func withChannel(conn *amqp091.Connection, fn func(*amqp091.Channel) error) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return fn(ch)
}

// code is the AMQP reply code of err, or 0.
func code(err error) int {
	var amqpErr *amqp091.Error
	if errors.As(err, &amqpErr) {
		return amqpErr.Code
	}
	return 0
}

func reason(err error) string {
	var amqpErr *amqp091.Error
	if errors.As(err, &amqpErr) {
		return amqpErr.Reason
	}
	return err.Error()
}
