// Package kafka is kshop's Kafka layer on confluent-kafka-go: an idempotent
// producer that reports each message's delivery, and a consumer-group runner that
// stores an offset only after the handler succeeded, retries with backoff, and
// moves a message that keeps failing to "<topic>.dlt". W3C trace context travels
// in message headers.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const instrumentation = "github.com/kshop/kshop/services/platform/kafka"

// Message is a message to produce, or one consumed (then Partition, Offset and
// Timestamp are set).
type Message struct {
	Topic     string
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	Connection
	ClientID string
}

// Producer is an idempotent producer with acks=all: a message it reports as
// delivered is written to all in-sync replicas, exactly once, in order per partition.
type Producer struct {
	producer *ckafka.Producer
	logger   *slog.Logger
	events   chan struct{}
}

// NewProducer creates a producer. The brokers need not be reachable yet:
// librdkafka connects and reconnects in the background.
func NewProducer(cfg ProducerConfig, logger *slog.Logger) (*Producer, error) {
	if cfg.Brokers == "" {
		return nil, errors.New("kafka producer: no brokers configured")
	}
	if logger == nil {
		logger = slog.Default()
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = "kshop"
	}
	props, err := cfg.ClientConfig(ckafka.ConfigMap{
		"client.id":          clientID,
		"enable.idempotence": true,
		"acks":               "all",
		// Every caller hands over all it has at once and then waits for the
		// acknowledgements (the outbox relay a claimed batch, the dead-letter
		// path one message), so nothing more arrives while librdkafka lingers:
		// its default 5 ms only delayed each event hop (6 ms a message on
		// loopback, 0.5-1 ms without). Messages queued while requests are in
		// flight are still batched.
		"linger.ms": 0,
		// A producer otherwise connects to a broker only when it first has a
		// message for one of its partitions, so each first message to another
		// broker waited for a connection (4-10 ms on loopback, more over TLS):
		// the first events after a start were the slowest. Connecting to every
		// broker at the start costs one idle connection per broker.
		"enable.sparse.connections": false,
		// Delivery must not give up while a broker restarts; PublishBatch's ctx
		// bounds how long a caller waits.
		"message.timeout.ms":     300000,
		"go.logs.channel.enable": true,
		// confluent-kafka-go allocates both Go channels at a million
		// entries by default: 24 MB per producer that the garbage collector
		// scans on every cycle (the gateway's tail latency showed its GC
		// pauses). Delivery reports come on each call's own channel and
		// ProduceChannel is never used, so the events channel carries only
		// errors and a small buffer is plenty.
		"go.events.channel.size":  1000,
		"go.produce.channel.size": 1,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p, err := ckafka.NewProducer(props)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	producer := &Producer{producer: p, logger: logger, events: make(chan struct{})}
	go producer.logEvents()
	go forwardLogs(p.Logs(), logger)
	return producer, nil
}

// logEvents drains the producer's general event channel (errors, logs); delivery
// reports arrive on the per-call channels instead. Unread, it would fill up.
func (p *Producer) logEvents() {
	defer close(p.events)
	for ev := range p.producer.Events() {
		if err, ok := ev.(ckafka.Error); ok {
			p.logger.Warn("kafka producer", "error", err.Error(), "code", err.Code().String())
		}
	}
}

// Publish produces msg and waits for its delivery report.
func (p *Producer) Publish(ctx context.Context, msg Message) error {
	return p.PublishBatch(ctx, []Message{msg})[0]
}

// PublishBatch produces every message, then waits for the delivery reports:
// errs[i] is nil only when the brokers acknowledged msgs[i]. Messages without a
// traceparent header get the trace context of ctx.
func (p *Producer) PublishBatch(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return errs
	}
	// Buffered for the whole batch so librdkafka never blocks on a caller that
	// stopped waiting.
	reports := make(chan ckafka.Event, len(msgs))
	tracer := otel.Tracer(instrumentation)
	waiting := 0
	for i, m := range msgs {
		// A message that carries a trace context (an outbox row stores the one of
		// the request that wrote it) publishes within that trace, and the consumer
		// continues from this publish span.
		parent := ctx
		if m.Headers["traceparent"] != "" {
			parent = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m.Headers))
		}
		spanCtx, span := tracer.Start(parent, m.Topic+" publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "publish"),
				attribute.String("messaging.destination.name", m.Topic),
				attribute.String("messaging.kafka.message.key", string(m.Key)),
			))
		carrier := propagation.MapCarrier{}
		otel.GetTextMapPropagator().Inject(spanCtx, carrier)
		headers := make([]ckafka.Header, 0, len(m.Headers)+len(carrier))
		for k, v := range m.Headers {
			if _, replaced := carrier[k]; !replaced {
				headers = append(headers, ckafka.Header{Key: k, Value: []byte(v)})
			}
		}
		for k, v := range carrier {
			headers = append(headers, ckafka.Header{Key: k, Value: []byte(v)})
		}
		topic := m.Topic
		err := p.producer.Produce(&ckafka.Message{
			TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
			Key:            m.Key,
			Value:          m.Value,
			Headers:        headers,
			Opaque:         i,
		}, reports)
		span.End()
		if err != nil {
			errs[i] = fmt.Errorf("produce to %s: %w", m.Topic, err)
			continue
		}
		waiting++
	}
	pending := make(map[int]bool, waiting)
	for i := range msgs {
		if errs[i] == nil {
			pending[i] = true
		}
	}
	for len(pending) > 0 {
		select {
		case ev := <-reports:
			m, ok := ev.(*ckafka.Message)
			if !ok {
				continue
			}
			i := m.Opaque.(int)
			delete(pending, i)
			if m.TopicPartition.Error != nil {
				errs[i] = fmt.Errorf("deliver to %s: %w", msgs[i].Topic, m.TopicPartition.Error)
			}
		case <-ctx.Done():
			for i := range pending {
				errs[i] = fmt.Errorf("wait for delivery to %s: %w", msgs[i].Topic, ctx.Err())
			}
			return errs
		}
	}
	return errs
}

// Ready reports whether the cluster answers a metadata request.
func (p *Producer) Ready(ctx context.Context) error {
	return metadataReady(ctx, p.producer.GetMetadata)
}

func metadataReady(ctx context.Context, get func(*string, bool, int) (*ckafka.Metadata, error)) error {
	timeout := 2 * time.Second
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < timeout {
		timeout = time.Until(deadline)
	}
	if timeout <= 0 {
		return ctx.Err()
	}
	md, err := get(nil, false, int(timeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	if len(md.Brokers) == 0 {
		return errors.New("kafka metadata: no brokers")
	}
	return nil
}

// Close delivers what is queued (for up to 5 s) and closes the producer.
func (p *Producer) Close() {
	p.producer.Flush(5000)
	p.producer.Close()
	<-p.events
}
