package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Message is one message to publish. MessageID identifies it to consumers (for
// de-duplication); Publish generates one when empty.
type Message struct {
	Exchange    string
	RoutingKey  string
	MessageID   string
	ContentType string
	Headers     map[string]string
	Body        []byte
	// ExpiresIn, when positive, is the message's own time to live (AMQP
	// expiration, whole milliseconds, at least one): in a delay queue it
	// leaves, dead-lettered, when this or the queue's TTL ends, whichever is first.
	ExpiresIn time.Duration
}

// ErrUnroutable means no queue was bound for the message's exchange and routing
// key: the broker returned it instead of storing it.
var ErrUnroutable = errors.New("message is unroutable")

// ErrNacked means the broker refused to take responsibility for a message.
var ErrNacked = errors.New("broker nacked the message")

// Publisher publishes persistent messages and waits for the broker's confirms. It
// is safe for concurrent use; batches are serialised on one confirm channel.
type Publisher struct {
	conn *Connection

	mu         sync.Mutex
	ch         *amqp091.Channel
	generation uint64
	returns    chan amqp091.Return
	closed     chan *amqp091.Error
}

// NewPublisher returns a publisher on c.
func NewPublisher(c *Connection) *Publisher { return &Publisher{conn: c} }

// Publish publishes m and returns once the broker confirmed it.
func (p *Publisher) Publish(ctx context.Context, m Message) error {
	return p.PublishBatch(ctx, []Message{m})[0]
}

// PublishBatch publishes every message, then waits for the confirms: errs[i] is
// nil only when the broker confirmed ms[i] (acked, not nacked, not returned as
// unroutable). Messages are persistent and mandatory.
func (p *Publisher) PublishBatch(ctx context.Context, ms []Message) []error {
	errs := make([]error, len(ms))
	if len(ms) == 0 {
		return errs
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, err := p.channel(ctx)
	if err != nil {
		return fill(errs, err)
	}

	tracer := otel.Tracer("github.com/kshop/kshop/services/platform/amqp")
	pending := make([]*amqp091.DeferredConfirmation, len(ms))
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.MessageID
		if ids[i] == "" {
			ids[i] = uuid.NewString()
		}
		// A message that carries a trace context (an outbox row stores the one of
		// the request that wrote it) publishes within that trace.
		parent := ctx
		if m.Headers["traceparent"] != "" {
			parent = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m.Headers))
		}
		spanCtx, span := tracer.Start(parent, destination(m)+" publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "rabbitmq"),
				attribute.String("messaging.operation.type", "publish"),
				attribute.String("messaging.destination.name", destination(m)),
				attribute.String("messaging.rabbitmq.destination.routing_key", m.RoutingKey),
				attribute.String("messaging.message.id", ids[i]),
			))
		headers := amqp091.Table{}
		for k, v := range m.Headers {
			headers[k] = v
		}
		carrier := propagation.MapCarrier{}
		otel.GetTextMapPropagator().Inject(spanCtx, carrier)
		for k, v := range carrier {
			headers[k] = v
		}
		contentType := m.ContentType
		if contentType == "" {
			contentType = "application/json"
		}
		pending[i], err = ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.RoutingKey, true, false, amqp091.Publishing{
			MessageId:    ids[i],
			ContentType:  contentType,
			DeliveryMode: amqp091.Persistent,
			Headers:      headers,
			Body:         m.Body,
			Expiration:   expiration(m.ExpiresIn),
		})
		span.End()
		if err != nil {
			// The channel is unusable now; the rest of the batch fails with it.
			p.drop()
			for j := i; j < len(ms); j++ {
				errs[j] = fmt.Errorf("publish to %s: %w", destination(ms[j]), err)
			}
			break
		}
	}

	returned := map[string]string{}
	for i, confirm := range pending {
		if confirm == nil {
			continue
		}
		errs[i] = p.await(ctx, confirm, returned)
	}
	p.collectReturns(returned)
	for i, id := range ids {
		if reason, ok := returned[id]; ok && errs[i] == nil {
			errs[i] = fmt.Errorf("%w: %s by %q: %s", ErrUnroutable, destination(ms[i]), ms[i].RoutingKey, reason)
		}
	}
	return errs
}

// await waits for one confirm while draining returned messages, which the broker
// sends before the confirm of the same message.
func (p *Publisher) await(ctx context.Context, confirm *amqp091.DeferredConfirmation, returned map[string]string) error {
	for {
		select {
		case <-confirm.Done():
			if confirm.Acked() {
				return nil
			}
			select {
			case reason := <-p.closed:
				p.drop()
				if reason != nil {
					return fmt.Errorf("%w: channel closed: %s", ErrNacked, reason.Reason)
				}
			default:
			}
			return ErrNacked
		case r, ok := <-p.returns:
			if !ok {
				p.returns = nil // closed with the channel; a nil channel is never ready
				continue
			}
			returned[r.MessageId] = r.ReplyText
		case <-ctx.Done():
			// The confirm may still come, but we cannot tell the caller: the
			// message counts as unconfirmed and will be published again.
			p.drop()
			return fmt.Errorf("wait for confirm: %w", ctx.Err())
		}
	}
}

func (p *Publisher) collectReturns(returned map[string]string) {
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				p.returns = nil
				return
			}
			returned[r.MessageId] = r.ReplyText
		default:
			return
		}
	}
}

// channel returns the confirm channel of the current connection, opening one
// when the connection changed or the old channel closed.
func (p *Publisher) channel(ctx context.Context) (*amqp091.Channel, error) {
	conn, generation, err := p.conn.waitConnected(ctx)
	if err != nil {
		return nil, err
	}
	if p.ch != nil && !p.ch.IsClosed() && p.generation == generation {
		return p.ch, nil
	}
	p.drop()
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publish channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	// Returned messages must always be read or the channel stalls; the buffer is
	// drained while waiting for confirms.
	p.returns = ch.NotifyReturn(make(chan amqp091.Return, 4096))
	p.closed = ch.NotifyClose(make(chan *amqp091.Error, 1))
	p.ch, p.generation = ch, generation
	return ch, nil
}

func (p *Publisher) drop() {
	if p.ch != nil {
		_ = p.ch.Close()
		p.ch = nil
	}
}

func destination(m Message) string {
	if m.Exchange == "" {
		return "(default)" + "/" + m.RoutingKey
	}
	return m.Exchange
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// expiration is AMQP's per-message TTL for d: "" (none) for zero or less, else
// whole milliseconds, at least 1.
func expiration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(max(1, d.Milliseconds()), 10)
}
