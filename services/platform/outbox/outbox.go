// Package outbox removes dual writes: a service records the messages a state change
// must announce in the same database transaction as the change (Add), and a Relay
// publishes them to Kafka or RabbitMQ afterwards, marking a row sent only once the
// broker confirmed it. Delivery is at least once; consumers de-duplicate by event id
// (package inbox).
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/kshop/kshop/services/platform/pg"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the outbox table; services apply it with their own migrations.
var Migrations = pg.EmbeddedMigrations("outbox", migrationFiles, "migrations")

// Destination names the broker a message goes to.
type Destination string

const (
	// Kafka messages go to Message.Topic keyed by Message.Key.
	Kafka Destination = "kafka"
	// AMQP messages go to the exchange Message.Topic with routing key Message.Key;
	// the default exchange "" with a queue name as key reaches that queue directly,
	// which is how delayed messages enter their TTL queue.
	AMQP Destination = "amqp"
)

// Message is one row of the outbox.
type Message struct {
	// EventID identifies the message end to end (Kafka event-id header, AMQP
	// message_id) so consumers can de-duplicate. Add generates one when empty.
	EventID     string
	Destination Destination
	Topic       string
	Key         string
	Headers     map[string]string
	Payload     []byte
	// DueAt, for a message waiting in a RabbitMQ delay queue (Delayed), is when
	// it should leave that queue: the publisher sets the message's own
	// expiration to what is left until then, so neither the relay's lag nor a
	// chain of timers (each scheduled when the one before fired) adds up to
	// lateness. Zero for every other message.
	DueAt time.Time
	// encodeErr is set by the typed constructors (Event, Work, Delayed) when the
	// payload could not be encoded, so that building a message stays one
	// expression and Add reports the failure.
	encodeErr error
}

// In returns m traced in ctx's trace rather than in that of the context Add
// is called with: a transaction that answers many consumed messages at once
// gives each answer the trace of the message it answers.
func (m Message) In(ctx context.Context) Message {
	headers := make(map[string]string, len(m.Headers)+2)
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(headers))
	for k, v := range m.Headers {
		headers[k] = v
	}
	m.Headers = headers
	return m
}

// ErrInvalidMessage reports a message that can never be published.
var ErrInvalidMessage = errors.New("invalid outbox message")

func (m Message) validate() error {
	switch {
	case m.encodeErr != nil:
		return m.encodeErr
	case m.Destination != Kafka && m.Destination != AMQP:
		return fmt.Errorf("%w: destination %q is neither %q nor %q", ErrInvalidMessage, m.Destination, Kafka, AMQP)
	case m.Destination == Kafka && m.Topic == "":
		return fmt.Errorf("%w: a Kafka message needs a topic", ErrInvalidMessage)
	case m.Destination == Kafka && !m.DueAt.IsZero():
		return fmt.Errorf("%w: a Kafka message cannot wait for a due time", ErrInvalidMessage)
	case m.Destination == AMQP && m.Topic == "" && m.Key == "":
		return fmt.Errorf("%w: an AMQP message needs an exchange or a queue name as routing key", ErrInvalidMessage)
	case m.EventID != "" && uuid.Validate(m.EventID) != nil:
		return fmt.Errorf("%w: event id %q is not a UUID", ErrInvalidMessage, m.EventID)
	}
	return nil
}

// Add records msgs in tx, so they are published if and only if tx commits. The
// trace context of ctx is stored with each message (unless it carries its own
// traceparent) so the consumer's span joins the trace of the request that caused it.
//
// All of msgs go in one statement, which also wakes the relays: one round trip
// to the database however many messages a change announces (an order writes
// its created event and its timers together).
func Add(ctx context.Context, tx pgx.Tx, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	n := len(msgs)
	ids, destinations, topics, keys, headers := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads := make([][]byte, n)
	dueAt := make([]*time.Time, n)
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return err
		}
		if m.EventID == "" {
			m.EventID = uuid.NewString()
		}
		encoded, err := json.Marshal(m.In(ctx).Headers)
		if err != nil {
			return fmt.Errorf("encode outbox headers: %w", err)
		}
		ids[i], destinations[i], topics[i], keys[i], headers[i], payloads[i] = m.EventID, string(m.Destination), m.Topic, m.Key, string(encoded), m.Payload
		if !m.DueAt.IsZero() {
			dueAt[i] = &m.DueAt
		}
	}
	// The notification is delivered to the relays when tx commits (and
	// collapsed within one transaction), so they publish without waiting for
	// their next poll. A data-modifying WITH runs whether or not it is read.
	if _, err := tx.Exec(ctx, `WITH added AS (
			INSERT INTO outbox (event_id, destination, topic, key, headers, payload, due_at)
			SELECT m.event_id::uuid, m.destination, m.topic, m.key, m.headers::jsonb, m.payload, m.due_at
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[])
				AS m(event_id, destination, topic, key, headers, payload, due_at))
		SELECT pg_notify('`+notifyChannel+`', '')`,
		ids, destinations, topics, keys, headers, payloads, dueAt,
	); err != nil {
		return fmt.Errorf("add %d message(s) to the outbox (first %s %s): %w", n, msgs[0].Destination, ids[0], err)
	}
	return nil
}
