package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/product"
)

// Config is what the tests that run the whole platform vary between runs.
type Config struct {
	// Reminders and Expiry are the order timers.
	Reminders []time.Duration
	Expiry    time.Duration
	// MaxPendingOrders and MaxPendingUnits are each customer's pending limits
	// in the order service; zero: the service's defaults.
	MaxPendingOrders int
	MaxPendingUnits  int64
	// JWKSFile is auth's private key set; empty: auth generates a key of its own.
	JWKSFile string
	// KafkaBrokers is a running broker; empty: an in-process kfake cluster.
	KafkaBrokers string
	// AMQPURL is a RabbitMQ virtual host; empty: one of the test's own.
	AMQPURL string
	// ConsumerAttempts and ConsumerRetry are the product and order consumers'
	// budget (a zero pace: the platform's short redelivery pace).
	ConsumerAttempts int
	ConsumerRetry    retry.Pace
	// MailAttempts, MailRetry and MailConcurrency are the mail service's.
	MailAttempts    int
	MailRetry       retry.Pace
	MailConcurrency int
	// ProductReplica makes the product service read from the test server's
	// streaming replica (hack/testenv.sh starts it), as make run and a
	// cluster do; the test then holds the replica shared until it ends.
	ProductReplica bool
	// RateLimits is the gateway's KSHOP_GATEWAY_RATE_LIMITS.
	RateLimits string
	// TrustedProxies is the gateway's KSHOP_GATEWAY_TRUSTED_PROXIES: the
	// addresses whose X-Forwarded-For names the client (an ingress in front).
	TrustedProxies []string
	// ResendCooldown and CodeGuessBackoff are auth's (zero: 1s and 1ms, so
	// tests need not wait long; the tests about them set their own).
	ResendCooldown, CodeGuessBackoff time.Duration
	// Logger receives every service's logs; nil discards them.
	Logger *slog.Logger
	// Registry makes each service's metrics registry; nil: an empty one.
	Registry func() *prometheus.Registry
}

// Platform is every service running in the test process against the real
// servers, with a client per service and the databases they own.
type Platform struct {
	Gateway, Auth, Product, Order, Mail *apitest.Client
	// Metrics are the services' metrics ports, by service name.
	Metrics map[string]*apitest.Client
	// IdentityKeys are the gateway's identity keys (private parts included),
	// the services trusting their public half.
	IdentityKeys tokens.KeySet
	SMTP         *smtptest.Server
	AMQPURL      string
	// Admin is the one address auth makes an administrator, a new one per
	// platform (none is fixed), and AdminPassword a password for it, random
	// too; nobody has registered it yet.
	Admin, AdminPassword string
	// Databases maps each service to the URL of its database.
	Databases map[string]string
	// Routes maps each service (and the gateway) to the routes its HTTP
	// handler serves, for the tests that compare them with the API's documents.
	Routes map[string]gin.RoutesInfo
}

// routesOf lists the routes of a service's handler (a gin engine).
func routesOf(t *testing.T, handler http.Handler) gin.RoutesInfo {
	t.Helper()
	engine, ok := handler.(*gin.Engine)
	if !ok {
		t.Fatalf("a service's handler is a %T, not a gin engine", handler)
	}
	return engine.Routes()
}

// Start runs the four services and the gateway, each on its own database,
// sharing one Redis, one RabbitMQ virtual host and one Kafka cluster, and
// waits until every one is ready. Everything stops when the test ends.
func Start(t *testing.T, cfg Config) *Platform {
	t.Helper()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	registry := cfg.Registry
	if registry == nil {
		registry = prometheus.NewRegistry
	}
	if cfg.KafkaBrokers == "" {
		cfg.KafkaBrokers = kafkatest.NewCluster(t, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))
	}
	if cfg.AMQPURL == "" {
		cfg.AMQPURL = testenv.OwnAMQPURL(t)
	}
	redis := redisx.Config{Addrs: []string{testenv.RedisAddr(t)}}
	kafkaConn, rabbitmq := kafka.Connection{Brokers: cfg.KafkaBrokers}, amqp.Config{URL: cfg.AMQPURL}
	if cfg.ResendCooldown == 0 {
		cfg.ResendCooldown = time.Second
	}
	if cfg.CodeGuessBackoff == 0 {
		cfg.CodeGuessBackoff = time.Millisecond
	}
	adminPassword, err := loadgen.RandomPassword()
	if err != nil {
		t.Fatal(err)
	}
	identityKeys, err := identity.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	trusted := identity.Config{Keys: tokens.Static(identityKeys.Public()), Leeway: 5 * time.Second, Cache: 4096}
	p := &Platform{SMTP: smtptest.Start(t), AMQPURL: cfg.AMQPURL, Databases: map[string]string{}, Routes: map[string]gin.RoutesInfo{},
		Metrics: map[string]*apitest.Client{}, IdentityKeys: identityKeys,
		Admin: "admin-" + testenv.RandomSuffix() + "@example.com", AdminPassword: adminPassword}
	database := func(service string) pg.Config {
		p.Databases[service] = testenv.NewDatabase(t)
		return pg.Config{URL: p.Databases[service], MaxConns: 10}
	}

	authApp, err := auth.New(auth.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("auth"),
		Redis: redis, AMQP: rabbitmq, BcryptCost: bcrypt.MinCost, AdminEmails: []string{p.Admin},
		CodeTTL: 10 * time.Minute, CodeMaxAttempts: 5, ResendCooldown: cfg.ResendCooldown,
		// Every test's addresses are its own, but its client address
		// (127.0.0.1) is every test's, on a Redis shared by the runs of a day.
		CodeGuessesPerDay: 10, CodeGuessesPerClientPerDay: 1_000_000, CodeGuessBackoff: cfg.CodeGuessBackoff,
		LoginFailuresPerAddress: 10, LoginFailuresPerClient: 1_000_000,
		MailsPerDay: 10, UnverifiedTTL: 24 * time.Hour, CleanupInterval: time.Hour,
		JWKSFile: cfg.JWKSFile, JWKSReload: time.Second, JWKSAlgorithm: tokens.EdDSA,
		TokenTTL: time.Hour, TokenIssuer: "kshop-auth", TokenAudience: "kshop",
	}, log.With("service", "auth"), registry())
	if err != nil {
		t.Fatal(err)
	}
	p.Auth = apitest.Start(t, authApp.Serve)
	p.Routes["auth"] = routesOf(t, authApp.Handler)
	p.Metrics["auth"] = apitest.Run(t, authApp.ServeMetrics)

	productDB := database("product")
	if cfg.ProductReplica {
		productDB.ReplicaURL = testenv.ReplicaURL(t, productDB.URL)
	}
	productApp, err := product.New(product.Config{
		ShutdownTimeout: 5 * time.Second, Database: productDB,
		Kafka: kafkaConn, ConsumerMaxAttempts: cfg.ConsumerAttempts, ConsumerRetry: cfg.ConsumerRetry,
		Identity: trusted,
	}, log.With("service", "product"), registry())
	if err != nil {
		t.Fatal(err)
	}
	p.Product = apitest.Start(t, productApp.Serve)
	p.Routes["product"] = routesOf(t, productApp.Handler)
	p.Metrics["product"] = apitest.Run(t, productApp.ServeMetrics)

	orderApp, err := order.New(order.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("order"),
		Redis: redis, Kafka: kafkaConn, AMQP: rabbitmq,
		ReminderDelays: cfg.Reminders, ExpiryDelay: cfg.Expiry, LockTTL: 10 * time.Second,
		MaxPendingOrders: cfg.MaxPendingOrders, MaxPendingUnits: cfg.MaxPendingUnits,
		ConsumerMaxAttempts: cfg.ConsumerAttempts, ConsumerRetry: cfg.ConsumerRetry,
		Identity: trusted,
	}, log.With("service", "order"), registry())
	if err != nil {
		t.Fatal(err)
	}
	p.Order = apitest.Start(t, orderApp.Serve)
	p.Routes["order"] = routesOf(t, orderApp.Handler)
	p.Metrics["order"] = apitest.Run(t, orderApp.ServeMetrics)

	mailApp, err := mail.New(mail.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("mail"), AMQP: rabbitmq,
		SMTP:        mail.SMTPConfig{Host: p.SMTP.Host, Port: p.SMTP.Port, TLS: mail.TLSNone, From: "kshop <no-reply@kshop.local>", Timeout: 5 * time.Second},
		MaxAttempts: cfg.MailAttempts, Retry: cfg.MailRetry, Concurrency: cfg.MailConcurrency,
	}, log.With("service", "mail"), registry())
	if err != nil {
		t.Fatal(err)
	}
	p.Mail = apitest.Start(t, mailApp.Serve)
	p.Routes["mail"] = routesOf(t, mailApp.Handler)
	p.Metrics["mail"] = apitest.Run(t, mailApp.ServeMetrics)

	gatewayCfg := gateway.Config{
		ShutdownTimeout: 5 * time.Second, Redis: redis,
		AuthURL: p.Auth.Base, ProductURL: p.Product.Base, OrderURL: p.Order.Base,
		AuthTimeout: 5 * time.Second, ProductTimeout: 5 * time.Second, OrderTimeout: 10 * time.Second,
		TokenIssuer: "kshop-auth", TokenAudience: "kshop",
		Identity:   identity.IssuerConfig{Keys: tokens.Static(identityKeys), TTL: time.Minute, Reuse: 4096},
		RateLimits: cfg.RateLimits, BodyLimit: 1 << 20, TrustedProxies: cfg.TrustedProxies,
	}
	if err := gatewayCfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gatewayApp, err := gateway.New(gatewayCfg, log.With("service", "gateway"), registry())
	if err != nil {
		t.Fatal(err)
	}
	p.Gateway = apitest.Start(t, gatewayApp.Serve)
	p.Routes["gateway"] = routesOf(t, gatewayApp.Handler)
	p.Metrics["gateway"] = apitest.Run(t, gatewayApp.ServeMetrics)
	return p
}

// Inbox lets the load generator and the journey read what reached the test's
// SMTP server, as they read Mailpit under `make run`.
type Inbox struct{ Server *smtptest.Server }

// Messages lists the e-mails to the address, newest first (as Mailpit does).
func (i Inbox) Messages(_ context.Context, to string) ([]loadgen.Mail, error) {
	var out []loadgen.Mail
	for _, m := range slices.Backward(i.Server.To(to)) {
		out = append(out, loadgen.Mail{To: m.To, Subject: m.Subject})
	}
	return out, nil
}
