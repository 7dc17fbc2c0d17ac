package product

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/serve"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the service's own tables; the outbox's and inbox's come with it.
var Migrations = pg.EmbeddedMigrations("product", migrationFiles, "migrations")

// App is one running product service.
type App struct {
	Handler http.Handler
	// Stock is exported for tests and benchmarks that drive reservations directly.
	Stock *Stock

	cfg       Config
	db        *pg.DB
	producer  *kafka.Producer
	consumers []*kafka.Consumer
	relay     *outbox.Relay
	service   *serve.Service
	logger    *slog.Logger
}

// New wires the service without waiting for any dependency.
func New(cfg Config, logger *slog.Logger, registry *prometheus.Registry) (*App, error) {
	// Checked here too, for configurations built without config.Load.
	if err := cfg.Kafka.Validate(Prefix + "_KAFKA"); err != nil {
		return nil, err
	}
	// Only callers the gateway vouches for act as someone (docs/security.md).
	verifier, err := identity.NewVerifier(cfg.Identity, "product", Prefix+"_IDENTITY", logger)
	if err != nil {
		return nil, err
	}
	db, err := pg.Open(context.Background(), cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("%s_DATABASE_URL: %w", Prefix, err)
	}
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: cfg.Kafka, ClientID: "product"}, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	reservations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kshop_stock_reservations_total", Help: "Orders whose stock was decided, by outcome (reserved, rejected).",
	}, []string{"outcome"})
	if registry != nil {
		registry.MustRegister(reservations, pg.NewPoolCollector(db))
	}
	reservations.WithLabelValues("reserved")
	reservations.WithLabelValues("rejected")
	app := &App{cfg: cfg, db: db, producer: producer, logger: logger,
		Stock: &Stock{db: db, decided: func(outcome string) { reservations.WithLabelValues(outcome).Inc() }}}
	// Orders arrive faster than one transaction each can decide them: a
	// partition's backlog of order-created is decided in one (ReserveAll).
	batches := map[string]kafka.BatchHandler{
		events.TopicOrderCreated.Name(): kafka.HandleBatch(events.TopicOrderCreated, app.Stock.ReserveAll),
	}
	for topic, handle := range map[string]kafka.Handler{
		events.TopicOrderCreated.Name():   kafka.Handle(events.TopicOrderCreated, app.Stock.Reserve),
		events.TopicOrderCancelled.Name(): kafka.Handle(events.TopicOrderCancelled, app.Stock.Release),
		events.TopicOrderPaid.Name():      kafka.Handle(events.TopicOrderPaid, app.Stock.Sell),
	} {
		consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{
			Connection:  cfg.Kafka,
			GroupID:     events.ConsumerGroup("product", topic),
			Topics:      []string{topic},
			MaxAttempts: cfg.ConsumerMaxAttempts,
			Backoff:     cfg.ConsumerRetry.Backoff(),
			Registerer:  registry,
			Batch:       batches[topic],
		}, handle, logger)
		if err != nil {
			app.Close()
			return nil, err
		}
		app.consumers = append(app.consumers, consumer)
	}
	app.relay = outbox.NewRelay(db.Primary,
		map[outbox.Destination]outbox.Publisher{outbox.Kafka: kafka.OutboxPublisher(producer)},
		outbox.RelayConfig{Registerer: registry, Retention: cfg.OutboxRetention}, logger)

	app.service = &serve.Service{
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger, Close: app.Close,
		Metrics: httpx.MetricsHandler(registry), MetricsAddr: cfg.MetricsAddr, MetricsAddrVar: Prefix + "_METRICS_ADDR",
		DB: db.Primary, Migrations: []pg.Migrations{Migrations, outbox.Migrations, inbox.Migrations},
		AfterMigrations: []func(context.Context) error{app.relay.Run,
			(&inbox.Pruner{Pool: db.Primary, Retention: cfg.InboxRetention, Registerer: registry, Logger: logger}).Run},
	}
	// The replica's checks run from the start: until the first one, reads go
	// to the primary.
	app.service.Background = append(app.service.Background, db.WatchReplica)
	for _, c := range app.consumers {
		app.service.AfterMigrations = append(app.service.AfterMigrations, c.Run)
	}
	engine := httpx.NewEngine(httpx.Options{
		Service:    "product",
		Logger:     logger,
		Registerer: registry,
		Ready: map[string]func(context.Context) error{
			"postgres": db.Ready,
			"kafka":    producer.Ready,
			// Reservations arrive through the consumers.
			"kafka-consumers": kafka.AllJoined(app.consumers),
			"migrations":      app.service.MigrationsApplied,
		},
	})
	engine.Use(verifier.Authenticate())
	(&handlers{catalogue: &Catalogue{db: db}, logger: logger}).routes(engine)
	app.Handler, app.service.Handler = engine, engine
	return app, nil
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
	a.producer.Close()
	a.db.Close()
}
