package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/msgmetrics"
	"github.com/kshop/kshop/services/platform/retry"
)

// Delivery is a consumed message as a handler sees it.
type Delivery struct {
	MessageID   string
	Exchange    string
	RoutingKey  string
	Headers     map[string]string
	Body        []byte
	Redelivered bool
	// Attempt counts the handler calls for this delivery, starting at 1.
	Attempt int
}

// Handler processes one delivery. A nil error acks it. An error is retried with
// backoff; wrap it with retry.Permanent when no retry can help (a malformed body),
// which sends the message to the dead-letter queue at once.
type Handler func(ctx context.Context, d Delivery) error

// BatchHandler processes deliveries of one queue as one unit: a nil error acks
// them all. On an error the consumer hands each of them again, alone, to the
// consumer's Handler, with its retries and its dead-letter queue, so one that
// fails does not hold the others back; the batch's effects must therefore be
// all or nothing (one transaction) and the Handler's the same as the batch's
// for each delivery.
type BatchHandler func(ctx context.Context, batch []BatchItem) error

// BatchItem is one delivery of a batch with its own context, which carries the
// delivery's span in the trace its publisher started; ctx, the batch's, carries
// a span that links to every delivery's.
type BatchItem struct {
	Ctx      context.Context
	Delivery Delivery
}

// maxBatch bounds the deliveries a BatchHandler gets at once.
const maxBatch = 64

// ConsumerConfig tunes a Consumer; zero values take the defaults.
type ConsumerConfig struct {
	Queue string
	// Prefetch bounds unacknowledged messages in flight (default 20).
	Prefetch int
	// MaxAttempts bounds handler calls per message before it is dead-lettered (default 5).
	MaxAttempts int
	// Backoff paces the retries of one message.
	Backoff retry.Backoff
	// Concurrency is how many messages are handled at once (default 1).
	Concurrency int
	// Registerer receives the consumer metrics (msgmetrics); nil: none.
	Registerer prometheus.Registerer
	// Batch, when set, is handed the deliveries waiting for a handler, up to
	// 64 at a time (and at most Prefetch): where each costs a transaction of
	// its own, one commit then does for many under load. The consumer's
	// Handler still handles a delivery that finds nothing waiting behind it,
	// without waiting for company, and each delivery of a batch that failed.
	Batch BatchHandler
}

// Consumer consumes one queue, following its Connection across reconnects.
type Consumer struct {
	conn        *Connection
	cfg         ConsumerConfig
	handler     Handler
	logger      *slog.Logger
	deadLetters *Publisher
	metrics     *msgmetrics.Metrics
}

// NewConsumer returns a consumer of cfg.Queue; Run starts it.
func NewConsumer(c *Connection, cfg ConsumerConfig, h Handler, logger *slog.Logger) *Consumer {
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 20
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Backoff == (retry.Backoff{}) {
		cfg.Backoff = retry.Redelivery
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Consumer{conn: c, cfg: cfg, handler: h, logger: logger.With("queue", cfg.Queue), deadLetters: NewPublisher(c), metrics: msgmetrics.For(cfg.Registerer)}
}

// Run consumes until ctx ends, resuming after every reconnect. It returns nil when
// ctx ends; unfinished messages go back to the queue.
func (c *Consumer) Run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		err := c.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.logger.WarnContext(ctx, "consume; retrying", "error", err, "attempt", failures+1)
		}
		retry.Sleep(ctx, retry.Default.Delay(failures))
		failures++
	}
	return nil
}

// consume runs one consuming session on one channel until the channel or ctx ends.
func (c *Consumer) consume(ctx context.Context) error {
	conn, _, err := c.conn.waitConnected(ctx)
	if err != nil {
		return err
	}
	if err := ensureDeadLetterQueue(conn, c.cfg.Queue); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open consume channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Queue, err)
	}
	if c.cfg.Batch != nil {
		// The library hands deliveries over one at a time, through a channel
		// without a buffer: a handler would find none waiting behind the one
		// it took. Moved into a buffer as they arrive, the unacknowledged ones
		// (at most Prefetch) are there to be taken together.
		unbuffered, buffered := deliveries, make(chan amqp091.Delivery, c.cfg.Prefetch)
		go func() {
			defer close(buffered)
			for d := range unbuffered {
				buffered <- d
			}
		}()
		deliveries = buffered
	}
	var wg sync.WaitGroup
	for range c.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				if c.cfg.Batch == nil {
					c.handle(ctx, d)
					continue
				}
				c.handleAll(ctx, batch.Waiting(nil, d, deliveries, min(c.cfg.Prefetch, maxBatch)))
			}
		}()
	}
	wg.Wait() // deliveries closes when the channel, the connection or ctx ends
	return nil
}

// ensureDeadLetterQueue makes sure a dead-letter queue exists, so dead-lettering
// never fails for want of one. A queue declared by the topology (possibly quorum)
// is left as it is.
func ensureDeadLetterQueue(conn *amqp091.Connection, queue string) error {
	probe, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	_, err = probe.QueueDeclarePassive(DeadLetterQueue(queue), true, false, false, false, nil)
	probe.Close()
	if err == nil {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(DeadLetterQueue(queue), true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter queue %s: %w", DeadLetterQueue(queue), err)
	}
	return nil
}

// handleAll handles deliveries as one batch when there is more than one and,
// when the batch fails, one by one.
func (c *Consumer) handleAll(ctx context.Context, ds []amqp091.Delivery) {
	if len(ds) > 1 && c.handleBatch(ctx, ds) {
		return
	}
	for _, d := range ds {
		c.handle(ctx, d)
	}
}

const instrumentation = "github.com/kshop/kshop/services/platform/amqp"

// startSpan starts d's process span, a child of the span that published it.
func (c *Consumer) startSpan(ctx context.Context, d amqp091.Delivery) (context.Context, trace.Span, Delivery) {
	headers := stringHeaders(d.Headers)
	msgCtx := otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(headers))
	msgCtx, span := otel.Tracer(instrumentation).Start(msgCtx, c.cfg.Queue+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "rabbitmq"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", c.cfg.Queue),
			attribute.String("messaging.message.id", d.MessageId),
		))
	return msgCtx, span, Delivery{
		MessageID: d.MessageId, Exchange: d.Exchange, RoutingKey: d.RoutingKey,
		Headers: headers, Body: d.Body, Redelivered: d.Redelivered, Attempt: 1,
	}
}

// handleBatch runs the batch handler once over ds and acks them when it
// succeeded. Its failure is not retried here: it reports false, and handleAll
// gives each delivery its own chance.
func (c *Consumer) handleBatch(ctx context.Context, ds []amqp091.Delivery) bool {
	items := make([]BatchItem, len(ds))
	spans := make([]trace.Span, len(ds))
	for i, d := range ds {
		msgCtx, span, delivery := c.startSpan(ctx, d)
		items[i], spans[i] = BatchItem{Ctx: msgCtx, Delivery: delivery}, span
	}
	started := time.Now()
	err := batch.Process(ctx, otel.Tracer(instrumentation), c.cfg.Queue+" process", spans, []attribute.KeyValue{
		attribute.String("messaging.system", "rabbitmq"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", c.cfg.Queue),
	}, func(batchCtx context.Context) error { return c.cfg.Batch(batchCtx, items) })
	if err != nil {
		c.logger.WarnContext(ctx, "batch failed; handling its deliveries one at a time", "deliveries", len(ds), "error", err)
		return false
	}
	took := time.Since(started)
	for _, d := range ds {
		c.metrics.Observe("rabbitmq", c.cfg.Queue, took, 1, false)
		if ackErr := d.Ack(false); ackErr != nil {
			// The channel is gone; the broker redelivers, the consumer's inbox absorbs it.
			c.logger.WarnContext(ctx, "ack", "message_id", d.MessageId, "error", ackErr)
		}
	}
	return true
}

func (c *Consumer) handle(ctx context.Context, d amqp091.Delivery) {
	msgCtx, span, delivery := c.startSpan(ctx, d)
	defer span.End()
	started := time.Now()

	var err error
	for attempt := 1; ; attempt++ {
		delivery.Attempt = attempt
		err = c.call(msgCtx, delivery)
		if err == nil {
			c.metrics.Observe("rabbitmq", c.cfg.Queue, time.Since(started), attempt, false)
			if ackErr := d.Ack(false); ackErr != nil {
				// The channel is gone; the broker redelivers, the consumer's inbox absorbs it.
				c.logger.WarnContext(msgCtx, "ack", "message_id", d.MessageId, "error", ackErr)
			}
			return
		}
		if retry.IsPermanent(err) || attempt >= c.cfg.MaxAttempts {
			break
		}
		c.logger.WarnContext(msgCtx, "handler failed; retrying", "message_id", d.MessageId, "attempt", attempt, "error", err)
		if !retry.Sleep(ctx, c.cfg.Backoff.Delay(attempt-1)) {
			_ = d.Nack(false, true) // shutting down: back to the queue, untouched
			return
		}
	}
	if ctx.Err() != nil {
		_ = d.Nack(false, true) // the failure may be our own shutdown: not the message's fault
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	c.metrics.Observe("rabbitmq", c.cfg.Queue, time.Since(started), delivery.Attempt, true)
	c.deadLetter(msgCtx, d, delivery, err)
}

// call runs the handler, turning a panic into an error so one bad message cannot
// take the consumer down.
func (c *Consumer) call(ctx context.Context, d Delivery) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logger.ErrorContext(ctx, "handler panicked", "message_id", d.MessageID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return c.handler(ctx, d)
}

// deadLetter moves a message that failed for good to the queue's dead-letter
// queue with the reason, then acks it. If that publish fails the message goes
// back to the queue: losing it would be worse than seeing it again.
func (c *Consumer) deadLetter(ctx context.Context, raw amqp091.Delivery, d Delivery, cause error) {
	headers := make(map[string]string, len(d.Headers)+4)
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers["x-death-reason"] = cause.Error()
	headers["x-original-exchange"] = d.Exchange
	headers["x-original-routing-key"] = d.RoutingKey
	headers["x-attempts"] = fmt.Sprint(d.Attempt)
	publishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := c.deadLetters.Publish(publishCtx, Message{
		RoutingKey: DeadLetterQueue(c.cfg.Queue), MessageID: d.MessageID,
		ContentType: raw.ContentType, Headers: headers, Body: d.Body,
	})
	if err != nil {
		c.logger.ErrorContext(ctx, "dead-letter message; returning it to the queue", "message_id", d.MessageID, "error", err)
		_ = raw.Nack(false, true)
		return
	}
	c.logger.WarnContext(ctx, "message dead-lettered", "message_id", d.MessageID, "attempts", d.Attempt, "reason", cause.Error())
	if err := raw.Ack(false); err != nil {
		c.logger.WarnContext(ctx, "ack dead-lettered message", "message_id", d.MessageID, "error", err)
	}
}

func stringHeaders(t amqp091.Table) map[string]string {
	out := make(map[string]string, len(t))
	for k, v := range t {
		switch v := v.(type) {
		case string:
			out[k] = v
		case []byte:
			out[k] = string(v)
		case nil:
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
