package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/serve"
)

// App is one running mail service.
type App struct {
	Handler http.Handler

	cfg       Config
	db        *pg.DB
	amqp      *amqp.Connection
	consumers []*amqp.Consumer
	renderer  *renderer
	smtp      *smtpSender
	metrics   *metrics
	service   *serve.Service
	logger    *slog.Logger
	now       func() time.Time
	// unrecorded holds the message ids the SMTP server accepted whose inbox
	// row did not commit (the database went away between the two).
	unrecorded unrecordedSends
}

// unrecordedSends remembers sends the database does not know of yet, so a
// redelivery in this process records the message instead of sending it
// again. That closes the duplicate window for a database or broker outage;
// only a crash of the process between the send and the commit still
// duplicates (docs/mail.md).
type unrecordedSends struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (u *unrecordedSends) has(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ids[id]
}

func (u *unrecordedSends) add(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ids == nil {
		u.ids = map[string]bool{}
	}
	u.ids[id] = true
}

func (u *unrecordedSends) remove(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.ids, id)
}

type metrics struct {
	sent, failed, retried, deadLettered, duplicates *prometheus.CounterVec
}

func newMetrics(registry *prometheus.Registry) *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"template"})
	}
	m := &metrics{
		sent:         counter("kshop_mail_sent_total", "E-mails the SMTP server accepted."),
		failed:       counter("kshop_mail_failed_total", "Send attempts that failed."),
		retried:      counter("kshop_mail_retried_total", "Failed attempts that will be retried."),
		deadLettered: counter("kshop_mail_dead_lettered_total", "Messages sent to their dead-letter queue."),
		duplicates:   counter("kshop_mail_duplicates_total", "Redelivered messages skipped because they were already sent."),
	}
	if registry != nil {
		registry.MustRegister(m.sent, m.failed, m.retried, m.deadLettered, m.duplicates)
	}
	// Every template's series exist from the start, at zero.
	for _, k := range kinds {
		for _, c := range []*prometheus.CounterVec{m.sent, m.failed, m.retried, m.deadLettered, m.duplicates} {
			c.WithLabelValues(k.Template)
		}
	}
	return m
}

// New wires the service without waiting for any dependency.
func New(cfg Config, logger *slog.Logger, registry *prometheus.Registry) (*App, error) {
	r, err := newRenderer()
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
	if registry != nil {
		registry.MustRegister(pg.NewPoolCollector(db))
	}
	// One kept SMTP session per message that may be in flight: each kind's
	// consumer sends Concurrency at once.
	sender, err := newSMTPSender(cfg.SMTP, len(kinds)*cfg.Concurrency)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%s_SMTP_HOST: %w", Prefix, err)
	}
	app := &App{cfg: cfg, db: db, amqp: amqp.Dial(amqpURL, logger), renderer: r, smtp: sender,
		metrics: newMetrics(registry), logger: logger, now: time.Now}
	backoff := cfg.Retry.Backoff()
	for _, k := range kinds {
		app.consumers = append(app.consumers, amqp.NewConsumer(app.amqp, amqp.ConsumerConfig{
			Queue: k.Queue, MaxAttempts: cfg.MaxAttempts, Backoff: backoff, Concurrency: cfg.Concurrency, Registerer: registry,
		}, app.handler(k), logger))
	}

	// Consumers start once the queues exist as declared and the inbox table exists.
	declared := make(chan struct{})
	app.service = &serve.Service{
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger, Close: app.Close,
		Metrics: httpx.MetricsHandler(registry), MetricsAddr: cfg.MetricsAddr, MetricsAddrVar: Prefix + "_METRICS_ADDR",
		// The service's only table is the inbox: the ids of the messages it sent.
		DB: db.Primary, Migrations: []pg.Migrations{inbox.Migrations},
		Background: []func(context.Context) error{func(ctx context.Context) error {
			if err := app.amqp.Declare(ctx, Topology()); err != nil {
				return fmt.Errorf("declare RabbitMQ topology: %w", err)
			}
			close(declared)
			return nil
		}},
		AfterMigrations: []func(context.Context) error{
			(&inbox.Pruner{Pool: db.Primary, Retention: cfg.InboxRetention, Registerer: registry, Logger: logger}).Run},
	}
	for _, c := range app.consumers {
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
		Service: "mail", Logger: logger, Registerer: registry,
		Ready: map[string]func(context.Context) error{
			"postgres":   db.Ready,
			"rabbitmq":   app.amqp.Ready,
			"migrations": app.service.MigrationsApplied,
			"topology": func(context.Context) error {
				select {
				case <-declared:
					return nil
				default:
					return errors.New("mail queues not declared yet")
				}
			},
		},
	})
	app.Handler, app.service.Handler = engine, engine
	return app, nil
}

// Topology is what the mail service declares: every mail queue, bound as the
// contract lists them (docs/api.md#mail-work).
func Topology() amqp.Topology {
	return amqp.WorkTopologyOf(events.Consuming("mail", events.MailRoutes))
}

// handler sends one kind of mail. A malformed message, a template failure or a
// 5xx answer dead-letters at once; other failures are retried with backoff by
// the consumer until MaxAttempts, then dead-lettered with the reason.
func (a *App) handler(k kind) amqp.Handler {
	handle := k.consume(func(ctx context.Context, messageID string, v view) error { return a.send(ctx, k, messageID, v) })
	return func(ctx context.Context, d amqp.Delivery) error {
		err := handle(ctx, d)
		switch {
		case err == nil:
			return nil
		case retry.IsPermanent(err):
			a.metrics.deadLettered.WithLabelValues(k.Template).Inc()
			return err
		case d.Attempt >= a.cfg.MaxAttempts:
			a.metrics.deadLettered.WithLabelValues(k.Template).Inc()
		default:
			a.metrics.retried.WithLabelValues(k.Template).Inc()
		}
		a.logger.WarnContext(ctx, "send e-mail", "template", k.Template, "attempt", d.Attempt, "error", err)
		return err
	}
}

// send renders and sends one mail unless its message id was sent before.
func (a *App) send(ctx context.Context, k kind, messageID string, v view) error {
	consumer := "mail." + k.Queue
	msg, err := a.renderer.render(k.Template, v)
	if err != nil {
		return retry.Permanent(err)
	}
	duplicate := false
	sentBefore := a.unrecorded.has(messageID)
	// The inbox row and the send share a transaction: a send that fails
	// releases the id for the retry; one that succeeds is remembered.
	err = pg.InTx(ctx, a.db.Primary, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, consumer, messageID)
		if err != nil || !first {
			duplicate = !first
			return err
		}
		if sentBefore {
			return nil // accepted by the SMTP server on an earlier try: record it only
		}
		if err := a.smtp.send(ctx, msg, messageID, a.now()); err != nil {
			return err
		}
		a.unrecorded.add(messageID) // until the commit below succeeds
		return nil
	})
	if err == nil {
		a.unrecorded.remove(messageID)
	}
	switch {
	case err == nil && duplicate:
		a.metrics.duplicates.WithLabelValues(k.Template).Inc()
		return nil
	case err == nil:
		a.metrics.sent.WithLabelValues(k.Template).Inc()
		return nil
	}
	a.metrics.failed.WithLabelValues(k.Template).Inc()
	if errors.Is(err, errPermanent) {
		return retry.Permanent(err)
	}
	return err
}

// Run serves HTTP on cfg.HTTPAddr and consumes until ctx ends.
func (a *App) Run(ctx context.Context) error {
	return a.service.Run(ctx, a.cfg.HTTPAddr, Prefix+"_HTTP_ADDR")
}

// Serve is Run on a listener the caller opened.
func (a *App) Serve(ctx context.Context, ln net.Listener) error { return a.service.Serve(ctx, ln) }

// ServeMetrics serves the metrics port (/metrics only) on a listener the
// caller opened; Run opens cfg.MetricsAddr itself.
func (a *App) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return a.service.ServeMetrics(ctx, ln)
}

// Close releases the connections; Serve calls it on the way out.
func (a *App) Close() {
	_ = a.amqp.Close()
	a.smtp.close()
	a.db.Close()
}
