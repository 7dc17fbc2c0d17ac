package auth

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/serve"
	"github.com/kshop/kshop/services/platform/tokens"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the service's own tables; the outbox's come with it.
var Migrations = pg.EmbeddedMigrations("auth", migrationFiles, "migrations")

// App is one running auth service: its HTTP handler and its background work.
type App struct {
	Handler http.Handler

	cfg     Config
	db      *pg.DB
	redis   redis.UniversalClient
	amqp    *amqp.Connection
	relay   *outbox.Relay
	service *serve.Service
	logger  *slog.Logger
}

// New wires the service. Nothing here waits for a dependency: the database,
// Redis and RabbitMQ may come up later, and until they do /readyz says which
// one is missing.
func New(cfg Config, logger *slog.Logger, registry *prometheus.Registry) (*App, error) {
	keys, err := loadKeys(cfg, logger)
	if err != nil {
		return nil, err
	}
	// Checked here too, for configurations built without config.Load.
	if err := cfg.AMQP.Validate(Prefix + "_AMQP"); err != nil {
		return nil, err
	}
	amqpURL, err := cfg.AMQP.DialURL()
	if err != nil {
		return nil, err
	}
	db, err := pg.Open(context.Background(), cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("%s_DATABASE_URL: %w", Prefix, err)
	}
	app := &App{cfg: cfg, db: db, redis: redisx.NewClient(cfg.Redis), amqp: amqp.Dial(amqpURL, logger), logger: logger}
	signer := &tokens.Signer{Keys: keys, Issuer: cfg.TokenIssuer, Audience: cfg.TokenAudience, TTL: cfg.TokenTTL}
	svc, err := newService(db, app.redis, signer, cfg, logger)
	if err != nil {
		app.Close()
		return nil, err
	}
	registered := prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_users_registered_total", Help: "Accounts registered (new addresses; a registration replacing a pending one is not counted)."})
	verified := prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_users_verified_total", Help: "Accounts verified with their e-mailed code."})
	reset := prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_auth_password_resets_total", Help: "Passwords set with an e-mailed reset code (every token of the old password revoked)."})
	deleted := prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_auth_accounts_deleted_total", Help: "Accounts deleted by their owner."})
	expired := prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_auth_unverified_expired_total", Help: "Registrations deleted because they were not verified within KSHOP_AUTH_UNVERIFIED_TTL."})
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_auth_limited_total",
		Help: "Requests refused with 429, by limit (cooldown, mails_per_day, guess_backoff, guesses_per_day, client_guesses_per_day, login_failures, client_login_failures)."}, []string{"limit"})
	for _, limit := range []string{"cooldown", "mails_per_day", "guess_backoff", "guesses_per_day", "client_guesses_per_day", "login_failures", "client_login_failures"} {
		limited.WithLabelValues(limit)
	}
	svc.counters = counters{registered: registered.Inc, verified: verified.Inc, passwordsReset: reset.Inc, accountsDeleted: deleted.Inc,
		expired: func(n int64) { expired.Add(float64(n)) }}
	if registry != nil {
		registry.MustRegister(registered, verified, reset, deleted, expired, limited, pg.NewPoolCollector(db))
	}
	app.relay = outbox.NewRelay(db.Primary,
		map[outbox.Destination]outbox.Publisher{outbox.AMQP: amqp.OutboxPublisher(amqp.NewPublisher(app.amqp))},
		outbox.RelayConfig{DeleteSent: true, Registerer: registry}, logger)

	app.service = &serve.Service{
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger, Close: app.Close,
		Metrics: httpx.MetricsHandler(registry), MetricsAddr: cfg.MetricsAddr, MetricsAddrVar: Prefix + "_METRICS_ADDR",
		DB: db.Primary, Migrations: []pg.Migrations{Migrations, outbox.Migrations},
		// Waits for the broker as long as it takes; redeclared after every reconnect.
		Background:      []func(context.Context) error{func(ctx context.Context) error { return app.amqp.Declare(ctx, Topology()) }},
		AfterMigrations: []func(context.Context) error{app.relay.Run, svc.expireRegistrations},
	}
	engine := httpx.NewEngine(httpx.Options{
		Service:    "auth",
		Logger:     logger,
		Registerer: registry,
		Ready: map[string]func(context.Context) error{
			"postgres":   db.Ready,
			"redis":      func(ctx context.Context) error { return redisx.Ready(ctx, app.redis) },
			"rabbitmq":   app.amqp.Ready,
			"migrations": app.service.MigrationsApplied,
		},
	})
	(&handlers{svc: svc, keys: keys, limited: limited, logger: logger}).routes(engine)
	app.Handler, app.service.Handler = engine, engine
	return app, nil
}

// Topology is what auth declares on RabbitMQ: the mail work queues it feeds.
func Topology() amqp.Topology {
	return amqp.WorkTopologyOf(events.Producing("auth", events.MailRoutes))
}

// Run serves HTTP on cfg.HTTPAddr and runs the background work until ctx ends.
func (a *App) Run(ctx context.Context) error {
	return a.service.Run(ctx, a.cfg.HTTPAddr, Prefix+"_HTTP_ADDR")
}

// Serve is Run on a listener the caller opened (tests use port 0). It closes
// the app's connections when it returns.
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
	a.db.Close()
}
