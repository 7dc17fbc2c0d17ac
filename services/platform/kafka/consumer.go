package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/msgmetrics"
	"github.com/kshop/kshop/services/platform/retry"
)

// DeadLetterTopic names the topic where messages that keep failing end up.
func DeadLetterTopic(topic string) string { return topic + ".dlt" }

// Headers added to a dead-lettered message, next to its original headers.
const (
	HeaderDLTOriginalTopic     = "dlt-original-topic"
	HeaderDLTOriginalPartition = "dlt-original-partition"
	HeaderDLTOriginalOffset    = "dlt-original-offset"
	HeaderDLTReason            = "dlt-reason"
	HeaderDLTAttempts          = "dlt-attempts"
)

// Handler processes one message. A nil error lets the consumer move past it. An
// error is retried with backoff; wrap it with retry.Permanent when no retry can
// help (a malformed payload) to send the message to the dead-letter topic at once.
type Handler func(ctx context.Context, msg Message) error

// BatchHandler processes messages of one partition, in partition order, as one
// unit: a nil error moves the consumer past all of them. On an error the
// consumer handles each of them again, alone, with the consumer's Handler, its
// retries and its dead-letter topic, so a message that fails does not hold the
// others back; the batch's effects must therefore be all or nothing (one
// transaction) and the Handler's the same as the batch's for each message.
type BatchHandler func(ctx context.Context, batch []BatchItem) error

// BatchItem is one message of a batch with its own context, which carries the
// message's span in the trace its producer started: effects that belong to this
// message (an answer it causes) take their trace from it, while ctx, the
// batch's, carries a span that links to every message's.
type BatchItem struct {
	Ctx     context.Context
	Message Message
}

// ConsumerConfig configures a Consumer; zero values take the defaults.
type ConsumerConfig struct {
	Connection
	GroupID string
	Topics  []string
	// MaxAttempts bounds handler calls per message before it is dead-lettered (default 5).
	MaxAttempts int
	// Backoff paces the retries of one message.
	Backoff retry.Backoff
	// Registerer receives the consumer metrics (msgmetrics); nil: none.
	Registerer prometheus.Registerer
	// Batch, when set, is handed a partition's backlog, up to 64 messages at a
	// time: where each message costs a transaction of its own, one commit then
	// does for many under load. The consumer's Handler still handles a message
	// that finds its partition idle, without waiting for company, and each
	// message of a batch that failed.
	Batch BatchHandler
}

// Consumer runs one consumer-group member. The messages of one partition are
// handled in partition order, one at a time (or, with a batch handler, what
// has queued up at a time); the partitions assigned to the
// member are handled side by side, each by a worker of its own, so the
// partition count bounds the concurrency. An offset is stored only after its
// message was handled (or dead-lettered) and committed in the background and
// on close, so a crash or rebalance redelivers at most the messages not yet
// committed, never skips one.
type Consumer struct {
	cfg        ConsumerConfig
	handler    Handler
	logger     *slog.Logger
	consumer   *ckafka.Consumer
	deadLetter *Producer
	metrics    *msgmetrics.Metrics
	// joined is set by the member's first assignment (Joined).
	joined atomic.Bool
}

// NewConsumer creates a consumer; Run starts consuming. The brokers need not be
// reachable yet.
func NewConsumer(cfg ConsumerConfig, handler Handler, logger *slog.Logger) (*Consumer, error) {
	switch {
	case cfg.Brokers == "":
		return nil, errors.New("kafka consumer: no brokers configured")
	case cfg.GroupID == "":
		return nil, errors.New("kafka consumer: no group id configured")
	case len(cfg.Topics) == 0:
		return nil, errors.New("kafka consumer: no topics configured")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Backoff == (retry.Backoff{}) {
		cfg.Backoff = retry.Redelivery
	}
	if logger == nil {
		logger = slog.Default()
	}
	props, err := cfg.ClientConfig(ckafka.ConfigMap{
		"group.id":                 cfg.GroupID,
		"auto.offset.reset":        "earliest",
		"enable.auto.commit":       true,
		"auto.commit.interval.ms":  1000,
		"enable.auto.offset.store": false, // stored by hand, after the handler succeeded
		"session.timeout.ms":       6000,
		"heartbeat.interval.ms":    1000,
		"go.logs.channel.enable":   true,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka consumer %s: %w", cfg.GroupID, err)
	}
	c, err := ckafka.NewConsumer(props)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer %s: %w", cfg.GroupID, err)
	}
	go forwardLogs(c.Logs(), logger)
	dlt, err := NewProducer(ProducerConfig{Connection: cfg.Connection, ClientID: cfg.GroupID + "-dlt"}, logger)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Consumer{cfg: cfg, handler: handler, logger: logger.With("group", cfg.GroupID), consumer: c, deadLetter: dlt,
		metrics: msgmetrics.For(cfg.Registerer)}, nil
}

// Run consumes until ctx ends, then commits what was handled and closes. Broker
// outages are logged and ridden out; only a fatal client error ends Run early.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.deadLetter.Close()
	defer func() {
		if err := c.consumer.Close(); err != nil { // commits the stored offsets
			c.logger.Warn("close kafka consumer", "error", err)
		}
	}()
	maxBatch := 1
	if c.cfg.Batch != nil {
		maxBatch = partitionQueue
	}
	workers := newPartitionWorkers(ctx, maxBatch, c.handleAll)
	defer workers.stop() // before Close: the workers' offsets are stored when it commits
	// Before partitions are taken away, every message handed out is handled and
	// its offset stored, so the commit that comes with the revocation carries
	// them and the partitions' next owner does not handle them again.
	onRebalance := func(_ *ckafka.Consumer, ev ckafka.Event) error {
		switch ev := ev.(type) {
		case ckafka.AssignedPartitions:
			c.assign(ev.Partitions)
			c.joined.Store(true)
		case ckafka.RevokedPartitions:
			workers.drain()
			workers.forget(ev.Partitions)
		}
		return nil // after a revocation, the default unassign follows
	}
	if err := c.consumer.SubscribeTopics(c.cfg.Topics, onRebalance); err != nil {
		return fmt.Errorf("subscribe %v: %w", c.cfg.Topics, err)
	}
	for ctx.Err() == nil {
		switch ev := c.consumer.Poll(100).(type) {
		case *ckafka.Message:
			if ev.TopicPartition.Error != nil {
				c.logger.WarnContext(ctx, "consume", "error", ev.TopicPartition.Error)
				continue
			}
			if !workers.dispatch(ev) {
				return nil // shutting down: what was not handled stays uncommitted and comes back
			}
		case ckafka.Error:
			if ev.IsFatal() {
				return fmt.Errorf("kafka consumer %s: %w", c.cfg.GroupID, ev)
			}
			c.logger.WarnContext(ctx, "kafka consumer", "error", ev.Error(), "code", ev.Code().String())
		}
	}
	return nil
}

// handleAll handles messages of one partition, in order: as one batch when
// the consumer has a batch handler and there is more than one, else (and
// when the batch fails) one by one. It returns false when ctx ended first.
func (c *Consumer) handleAll(ctx context.Context, raws []*ckafka.Message) bool {
	if c.cfg.Batch != nil && len(raws) > 1 {
		if c.handleBatch(ctx, raws) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
	for _, raw := range raws {
		if !c.handle(ctx, raw) {
			return false
		}
	}
	return true
}

// startSpan starts msg's process span, a child of the span that published it.
func (c *Consumer) startSpan(ctx context.Context, msg Message) (context.Context, trace.Span) {
	msgCtx := otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(msg.Headers))
	return otel.Tracer(instrumentation).Start(msgCtx, msg.Topic+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", msg.Topic),
			attribute.String("messaging.consumer.group.name", c.cfg.GroupID),
			attribute.Int64("messaging.destination.partition.id", int64(msg.Partition)),
			attribute.Int64("messaging.kafka.offset", msg.Offset),
		))
}

// handleBatch runs the batch handler once over raws and, when it succeeded,
// stores the last one's offset. Its failure is not retried here: it reports
// false, and handleAll gives each message its own chance.
func (c *Consumer) handleBatch(ctx context.Context, raws []*ckafka.Message) bool {
	items := make([]BatchItem, len(raws))
	spans := make([]trace.Span, len(raws))
	for i, raw := range raws {
		msg := fromConfluent(raw)
		msgCtx, span := c.startSpan(ctx, msg)
		items[i], spans[i] = BatchItem{Ctx: msgCtx, Message: msg}, span
	}
	first, last := items[0].Message, items[len(items)-1].Message
	started := time.Now()
	err := batch.Process(ctx, otel.Tracer(instrumentation), first.Topic+" process", spans, []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", first.Topic),
		attribute.String("messaging.consumer.group.name", c.cfg.GroupID),
		attribute.Int64("messaging.destination.partition.id", int64(first.Partition)),
	}, func(batchCtx context.Context) error { return c.cfg.Batch(batchCtx, items) })
	if err != nil {
		c.logger.WarnContext(ctx, "batch failed; handling its messages one at a time", "topic", first.Topic,
			"partition", first.Partition, "offsets", fmt.Sprintf("%d-%d", first.Offset, last.Offset), "error", err)
		return false
	}
	took := time.Since(started)
	for range items {
		c.metrics.Observe("kafka", first.Topic, took, 1, false)
	}
	return c.store(ctx, raws[len(raws)-1]) // a partition's stored offset covers every message before it
}

// handle runs the handler with retries and, when it keeps failing, dead-letters the
// message; then it stores the offset. It returns false when ctx ended first.
func (c *Consumer) handle(ctx context.Context, raw *ckafka.Message) bool {
	msg := fromConfluent(raw)
	msgCtx, span := c.startSpan(ctx, msg)
	defer span.End()
	started := time.Now()

	var err error
	attempt := 1
	for ; ; attempt++ {
		if err = c.call(msgCtx, msg); err == nil {
			c.metrics.Observe("kafka", msg.Topic, time.Since(started), attempt, false)
			return c.store(ctx, raw)
		}
		if retry.IsPermanent(err) || attempt >= c.cfg.MaxAttempts {
			break
		}
		c.logger.WarnContext(msgCtx, "handler failed; retrying", "topic", msg.Topic, "partition", msg.Partition,
			"offset", msg.Offset, "attempt", attempt, "error", err)
		if !retry.Sleep(ctx, c.cfg.Backoff.Delay(attempt-1)) {
			return false
		}
	}
	if ctx.Err() != nil {
		return false
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	c.metrics.Observe("kafka", msg.Topic, time.Since(started), attempt, true)
	if !c.sendToDeadLetter(msgCtx, msg, attempt, err) {
		return false
	}
	return c.store(ctx, raw)
}

// sendToDeadLetter publishes msg to its dead-letter topic, retrying until the
// broker confirmed or ctx ended: moving past a message that was neither handled
// nor dead-lettered would lose it.
func (c *Consumer) sendToDeadLetter(ctx context.Context, msg Message, attempts int, cause error) bool {
	headers := make(map[string]string, len(msg.Headers)+5)
	for k, v := range msg.Headers {
		headers[k] = v
	}
	headers[HeaderDLTOriginalTopic] = msg.Topic
	headers[HeaderDLTOriginalPartition] = fmt.Sprint(msg.Partition)
	headers[HeaderDLTOriginalOffset] = fmt.Sprint(msg.Offset)
	headers[HeaderDLTReason] = cause.Error()
	headers[HeaderDLTAttempts] = fmt.Sprint(attempts)
	dead := Message{Topic: DeadLetterTopic(msg.Topic), Key: msg.Key, Value: msg.Value, Headers: headers}
	err := retry.Do(ctx, c.cfg.Backoff, 0, func(ctx context.Context) error {
		publishCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := c.deadLetter.Publish(publishCtx, dead)
		if err != nil {
			c.logger.ErrorContext(ctx, "dead-letter message; retrying", "topic", dead.Topic, "error", err)
		}
		return err
	})
	if err != nil {
		return false
	}
	c.logger.WarnContext(ctx, "message dead-lettered", "topic", msg.Topic, "partition", msg.Partition,
		"offset", msg.Offset, "attempts", attempts, "reason", cause.Error())
	return true
}

func (c *Consumer) store(ctx context.Context, raw *ckafka.Message) bool {
	if _, err := c.consumer.StoreMessage(raw); err != nil {
		// The partition was revoked meanwhile: its new owner will see the message again.
		c.logger.WarnContext(ctx, "store offset", "error", err)
	}
	return true
}

// call runs the handler, turning a panic into an error.
func (c *Consumer) call(ctx context.Context, msg Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logger.ErrorContext(ctx, "handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return c.handler(ctx, msg)
}

// Ready reports whether the cluster answers a metadata request.
func (c *Consumer) Ready(ctx context.Context) error {
	return metadataReady(ctx, c.consumer.GetMetadata)
}

// Joined reports whether the member has joined its group and been given its
// partitions (none, when the group has more members than partitions) at least
// once: until then, events sent to it wait. A service that answers from what
// its consumers bring is not ready before.
func (c *Consumer) Joined(context.Context) error {
	if !c.joined.Load() {
		return fmt.Errorf("kafka consumer %s has not joined its group yet", c.cfg.GroupID)
	}
	return nil
}

// AllJoined is a readiness check: every consumer of consumers has joined its group.
func AllJoined(consumers []*Consumer) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, c := range consumers {
			if err := c.Joined(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

func fromConfluent(m *ckafka.Message) Message {
	headers := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		headers[h.Key] = string(h.Value)
	}
	topic := ""
	if m.TopicPartition.Topic != nil {
		topic = *m.TopicPartition.Topic
	}
	return Message{
		Topic: topic, Key: m.Key, Value: m.Value, Headers: headers,
		Partition: m.TopicPartition.Partition, Offset: int64(m.TopicPartition.Offset), Timestamp: m.Timestamp,
	}
}

// assign starts the member's new partitions where the group left them, or at
// the beginning for those it never committed, as auto.offset.reset=earliest
// would. Left to itself, librdkafka finds a partition without a committed
// offset and then waits 100 ms before it asks the broker where the partition
// begins: every consumer group's first start (a fresh install, a new service)
// kept its first events back by that much. Naming the start itself avoids the
// wait. If the committed offsets cannot be read, librdkafka looks them up as
// usual.
func (c *Consumer) assign(partitions []ckafka.TopicPartition) {
	committed, err := c.consumer.Committed(partitions, committedLookupTimeoutMs)
	if err == nil {
		err = c.consumer.Assign(startPositions(committed))
	} else {
		c.logger.Warn("read the group's committed offsets; librdkafka looks them up itself", "error", err)
		err = c.consumer.Assign(partitions)
	}
	if err != nil {
		c.logger.Error("assign partitions", "partitions", len(partitions), "error", err)
	}
}

// committedLookupTimeoutMs bounds the committed-offset lookup in a rebalance.
const committedLookupTimeoutMs = 5000

// startPositions says where to start each partition: at its committed offset,
// at the beginning when the group never committed one, and at whatever
// librdkafka finds when the lookup failed for that partition.
func startPositions(committed []ckafka.TopicPartition) []ckafka.TopicPartition {
	start := slices.Clone(committed)
	for i := range start {
		switch {
		case start[i].Error != nil:
			start[i].Offset, start[i].Error = ckafka.OffsetStored, nil
		case start[i].Offset == ckafka.OffsetInvalid:
			start[i].Offset = ckafka.OffsetBeginning
		}
	}
	return start
}
