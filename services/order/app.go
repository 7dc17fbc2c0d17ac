package order

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/serve"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the service's own tables; the outbox's and inbox's come with it.
var Migrations = pg.EmbeddedMigrations("order", migrationFiles, "migrations")

// App is one running order service.
type App struct {
	Handler http.Handler
	// Orders and Saga are exported for tests that drive use cases directly.
	Orders *Orders
	Saga   *Saga

	cfg      Config
	db       *pg.DB
	redis    redis.UniversalClient
	producer *kafka.Producer
	amqp     *amqp.Connection
	kafkaIn  []*kafka.Consumer
	timersIn []*amqp.Consumer
	relay    *outbox.Relay
	service  *serve.Service
	logger   *slog.Logger
}

// New wires the service without waiting for any dependency.
func New(cfg Config, logger *slog.Logger, registry *prometheus.Registry) (*App, error) {
	// Checked here too, for configurations built without config.Load.
	cfg = cfg.withDefaultLimits()
	if err := errors.Join(cfg.Kafka.Validate(Prefix+"_KAFKA"), cfg.AMQP.Validate(Prefix+"_AMQP"), cfg.validateLimits()); err != nil {
		return nil, err
	}
	amqpURL, err := cfg.AMQP.DialURL()
	if err != nil {
		return nil, err
	}
	// Only callers the gateway vouches for act as someone (docs/security.md).
	verifier, err := identity.NewVerifier(cfg.Identity, "order", Prefix+"_IDENTITY", logger)
	if err != nil {
		return nil, err
	}
	db, err := pg.Open(context.Background(), cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("%s_DATABASE_URL: %w", Prefix, err)
	}
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: cfg.Kafka, ClientID: "order"}, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	m := newMetrics(registry)
	if registry != nil {
		registry.MustRegister(pg.NewPoolCollector(db))
	}
	app := &App{cfg: cfg, db: db, redis: redisx.NewClient(cfg.Redis), producer: producer, amqp: amqp.Dial(amqpURL, logger), logger: logger}
	app.Orders = &Orders{db: db, redis: app.redis, cfg: cfg, logger: logger, metrics: m}
	app.Saga = &Saga{db: db, cfg: cfg, metrics: m}

	// Every order's answer: under load a partition's backlog of them is
	// recorded in one transaction.
	batches := map[string]kafka.BatchHandler{
		events.TopicStockReserved.Name(): kafka.HandleBatch(events.TopicStockReserved, app.Saga.StockReservedAll),
	}
	for topic, handle := range map[string]kafka.Handler{
		events.TopicProductCreated.Name(): kafka.Handle(events.TopicProductCreated, byVersion(app.Saga.ProductChanged)),
		events.TopicProductUpdated.Name(): kafka.Handle(events.TopicProductUpdated, byVersion(app.Saga.ProductChanged)),
		events.TopicProductDeleted.Name(): kafka.Handle(events.TopicProductDeleted, byVersion(app.Saga.ProductDeleted)),
		events.TopicStockReserved.Name():  kafka.Handle(events.TopicStockReserved, app.Saga.StockReserved),
		events.TopicStockRejected.Name():  kafka.Handle(events.TopicStockRejected, app.Saga.StockRejected),
	} {
		consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{
			Connection: cfg.Kafka, GroupID: events.ConsumerGroup("order", topic), Topics: []string{topic},
			MaxAttempts: cfg.ConsumerMaxAttempts, Backoff: cfg.ConsumerRetry.Backoff(), Registerer: registry,
			Batch: batches[topic],
		}, handle, logger)
		if err != nil {
			app.Close()
			return nil, err
		}
		app.kafkaIn = append(app.kafkaIn, consumer)
	}
	// Timers fall due at the rate orders were placed: those waiting are fired
	// many to a transaction, four transactions at a time.
	timerBatches := map[string]amqp.BatchHandler{
		events.QueueOrderReminder: amqp.HandleBatch(events.TimerOrderReminder, app.Saga.RemindAll),
		events.QueueOrderExpiry:   amqp.HandleBatch(events.TimerOrderExpiry, app.Saga.ExpireAll),
	}
	for queue, handle := range map[string]amqp.Handler{
		events.QueueOrderReminder: amqp.Handle(events.TimerOrderReminder, app.Saga.Remind),
		events.QueueOrderExpiry:   amqp.Handle(events.TimerOrderExpiry, app.Saga.Expire),
	} {
		app.timersIn = append(app.timersIn, amqp.NewConsumer(app.amqp, amqp.ConsumerConfig{
			Queue: queue, MaxAttempts: cfg.ConsumerMaxAttempts, Backoff: cfg.ConsumerRetry.Backoff(), Registerer: registry,
			Concurrency: 4, Prefetch: 128, Batch: timerBatches[queue],
		}, handle, logger))
	}
	app.relay = outbox.NewRelay(db.Primary, map[outbox.Destination]outbox.Publisher{
		outbox.Kafka: kafka.OutboxPublisher(producer),
		outbox.AMQP:  amqp.OutboxPublisher(amqp.NewPublisher(app.amqp)),
	}, outbox.RelayConfig{Registerer: registry, Retention: cfg.OutboxRetention}, logger)

	// Timer consumers start once their queues exist as declared (a consumer would
	// otherwise create its dead-letter queue with other arguments first) and the
	// tables exist (a handler failing on a missing table would dead-letter timers).
	declared := make(chan struct{})
	app.service = &serve.Service{
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger, Close: app.Close,
		Metrics: httpx.MetricsHandler(registry), MetricsAddr: cfg.MetricsAddr, MetricsAddrVar: Prefix + "_METRICS_ADDR",
		DB: db.Primary, Migrations: []pg.Migrations{Migrations, outbox.Migrations, inbox.Migrations},
		Background: []func(context.Context) error{func(ctx context.Context) error {
			if err := app.amqp.Declare(ctx, app.Topology()); err != nil {
				return fmt.Errorf("declare RabbitMQ topology: %w", err)
			}
			close(declared)
			return nil
		}},
		AfterMigrations: []func(context.Context) error{app.relay.Run,
			(&inbox.Pruner{Pool: db.Primary, Retention: cfg.InboxRetention, Registerer: registry, Logger: logger}).Run},
	}
	for _, c := range app.kafkaIn {
		app.service.AfterMigrations = append(app.service.AfterMigrations, c.Run)
	}
	for _, c := range app.timersIn {
		app.service.AfterMigrations = append(app.service.AfterMigrations, func(ctx context.Context) error {
			select {
			case <-declared:
				return c.Run(ctx)
			case <-ctx.Done():
				return nil
			}
		})
	}
	engine := httpx.NewEngine(httpx.Options{
		Service: "order", Logger: logger, Registerer: registry,
		Ready: map[string]func(context.Context) error{
			"postgres": db.Ready,
			"redis":    func(ctx context.Context) error { return redisx.Ready(ctx, app.redis) },
			"kafka":    producer.Ready,
			// The order service prices from its copy of the catalogue and
			// follows the saga through its consumers: until they have joined
			// their groups, a product just created cannot be ordered yet.
			"kafka-consumers": kafka.AllJoined(app.kafkaIn),
			"rabbitmq":        app.amqp.Ready,
			// Until its queues exist, the order service's timers and e-mails
			// cannot be routed: they wait in the outbox, and so should traffic.
			"rabbitmq-topology": func(context.Context) error {
				select {
				case <-declared:
					return nil
				default:
					return errors.New("the RabbitMQ queues are not declared yet")
				}
			},
			"migrations": app.service.MigrationsApplied,
		},
	})
	engine.Use(verifier.Authenticate())
	(&handlers{orders: app.Orders, logger: logger, now: time.Now}).routes(engine)
	app.Handler, app.service.Handler = engine, engine
	return app, nil
}

// byVersion adapts a handler of the catalogue copy, which orders a product's
// events by their version rather than remembering event ids.
func byVersion[T any](handle func(context.Context, T) error) func(context.Context, string, T) error {
	return func(ctx context.Context, _ string, payload T) error { return handle(ctx, payload) }
}

// Topology is what the order service declares on RabbitMQ: the mail queues it
// feeds, its own timer queues, and one TTL queue per timer delay.
func (a *App) Topology() amqp.Topology {
	return Topology(a.cfg.ReminderDelays, a.cfg.ExpiryDelay)
}

// Run serves HTTP on cfg.HTTPAddr and runs the background work until ctx ends.
func (a *App) Run(ctx context.Context) error {
	return a.service.Run(ctx, a.cfg.HTTPAddr, Prefix+"_HTTP_ADDR")
}

// Serve is Run on a listener the caller opened. It closes the app's
// connections when it returns.
func (a *App) Serve(ctx context.Context, ln net.Listener) error { return a.service.Serve(ctx, ln) }

// ServeMetrics serves the metrics port (/metrics only) on a listener the
// caller opened; Run opens cfg.MetricsAddr itself.
func (a *App) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return a.service.ServeMetrics(ctx, ln)
}

// Close releases the connections; Serve calls it on the way out.
func (a *App) Close() {
	_ = a.amqp.Close()
	_ = a.redis.Close()
	a.producer.Close()
	a.db.Close()
}
