package auth

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/tokens"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the service's own tables; the outbox's come with it.
var Migrations = pg.EmbeddedMigrations("auth", migrationFiles, "migrations")

// App is one running auth service: its HTTP handler and its background work.
type App struct {
	Handler http.Handler

	cfg      Config
	db       *pg.DB
	redis    redis.UniversalClient
	amqp     *amqp.Connection
	relay    *outbox.Relay
	migrated atomic.Bool
	logger   *slog.Logger
}

// New wires the service. Nothing here waits for a dependency: the database,
// Redis and RabbitMQ may come up later, and until they do /readyz says which
// one is missing.
func New(cfg Config, logger *slog.Logger, registry *prometheus.Registry) (*App, error) {
	keys, err := loadKeys(cfg, logger)
	if err != nil {
		return nil, err
	}
	db, err := pg.Open(context.Background(), cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("%s_DATABASE_URL: %w", Prefix, err)
	}
	app := &App{cfg: cfg, db: db, redis: redisx.NewClient(cfg.Redis), amqp: amqp.Dial(cfg.AMQPURL, logger), logger: logger}
	signer := &tokens.Signer{Keys: keys, Issuer: cfg.TokenIssuer, Audience: cfg.TokenAudience, TTL: cfg.TokenTTL}
	svc, err := newService(db, app.redis, signer, cfg, logger)
	if err != nil {
		app.Close()
		return nil, err
	}
	app.relay = outbox.NewRelay(db.Primary,
		map[outbox.Destination]outbox.Publisher{outbox.AMQP: outbox.AMQPPublisher(amqp.NewPublisher(app.amqp))},
		outbox.RelayConfig{DeleteSent: true, Registerer: registry}, logger)

	engine := httpx.NewEngine(httpx.Options{
		Service:    "auth",
		Logger:     logger,
		Registerer: registry,
		Gatherer:   registry,
		Ready: map[string]func(context.Context) error{
			"postgres":   db.Ready,
			"redis":      func(ctx context.Context) error { return redisx.Ready(ctx, app.redis) },
			"rabbitmq":   app.amqp.Ready,
			"migrations": app.migrationsApplied,
		},
	})
	(&handlers{svc: svc, keys: keys, logger: logger}).routes(engine)
	app.Handler = engine
	return app, nil
}

func (a *App) migrationsApplied(context.Context) error {
	if !a.migrated.Load() {
		return errors.New("database migrations not applied yet")
	}
	return nil
}

// Topology is what auth declares on RabbitMQ: the mail work queues it feeds.
func Topology() amqp.Topology {
	var routes []amqp.WorkRoute
	for _, r := range events.Producing("auth", events.MailRoutes) {
		routes = append(routes, amqp.WorkRoute{Exchange: r.Exchange, ExchangeKind: events.ExchangeKinds[r.Exchange], RoutingKey: r.RoutingKey, Queue: r.Queue})
	}
	return amqp.WorkTopology(routes...)
}

// Run serves HTTP on cfg.HTTPAddr and runs the background work until ctx ends.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("%s_HTTP_ADDR=%s: %w", Prefix, a.cfg.HTTPAddr, err)
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests use port 0). It closes
// the app's connections when it returns.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	defer a.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpx.ServeListener(ctx, ln, a.Handler, a.cfg.ShutdownTimeout, a.logger) })
	g.Go(func() error {
		if err := pg.MigrateWithRetry(ctx, a.db.Primary, a.logger, Migrations, outbox.Migrations); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		a.migrated.Store(true)
		return a.relay.Run(ctx)
	})
	g.Go(func() error {
		// Waits for the broker as long as it takes; redeclared after every reconnect.
		if err := a.amqp.Declare(ctx, Topology()); err != nil && ctx.Err() == nil {
			return fmt.Errorf("declare RabbitMQ topology: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// Close releases the connections; Serve calls it on the way out.
func (a *App) Close() {
	_ = a.amqp.Close()
	_ = a.redis.Close()
	a.db.Close()
}
