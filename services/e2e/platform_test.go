package e2e_test

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/product"
)

// platformConfig is what the end-to-end tests vary between runs of the platform.
type platformConfig struct {
	// Reminders and Expiry are the order timers.
	Reminders []time.Duration
	Expiry    time.Duration
	// JWKSFile is auth's private key set; empty: auth generates a key of its own.
	JWKSFile string
}

// admin is the address auth gives the admin role (AUTH_ADMIN_EMAILS).
const admin = "admin@kshop.local"

// platform is every service running in the test process against the real
// servers, with a client per service and the databases they own.
type platform struct {
	Gateway, Auth, Product, Order, Mail *apitest.Client
	SMTP                                *smtptest.Server
	// Databases maps each service to the URL of its database.
	Databases map[string]string
}

// startPlatform starts the four services and the gateway, each on its own
// database, sharing one Redis, one RabbitMQ virtual host and one Kafka cluster,
// and waits until every one is ready. Everything stops when the test ends.
func startPlatform(t *testing.T, cfg platformConfig) *platform {
	t.Helper()
	log := logger()
	redis := redisx.Config{Addrs: []string{testenv.RedisAddr(t)}}
	amqpURL := testenv.OwnAMQPURL(t)
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))
	p := &platform{SMTP: smtptest.Start(t), Databases: map[string]string{}}
	database := func(service string) pg.Config {
		p.Databases[service] = testenv.NewDatabase(t)
		return pg.Config{URL: p.Databases[service], MaxConns: 10}
	}

	authApp, err := auth.New(auth.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("auth"),
		Redis: redis, AMQPURL: amqpURL, BcryptCost: bcrypt.MinCost, AdminEmails: []string{admin},
		CodeTTL: 10 * time.Minute, CodeMaxAttempts: 5, ResendCooldown: time.Minute,
		JWKSFile: cfg.JWKSFile, JWKSReload: time.Second, JWKSAlgorithm: tokens.EdDSA,
		TokenTTL: time.Hour, TokenIssuer: "kshop-auth", TokenAudience: "kshop",
	}, log.With("service", "auth"), serviceRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.Auth = apitest.Start(t, authApp.Serve)

	productApp, err := product.New(product.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("product"),
		KafkaBrokers: brokers, ConsumerMaxAttempts: 3,
	}, log.With("service", "product"), serviceRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.Product = apitest.Start(t, productApp.Serve)

	orderApp, err := order.New(order.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("order"),
		Redis: redis, KafkaBrokers: brokers, AMQPURL: amqpURL,
		ReminderDelays: cfg.Reminders, ExpiryDelay: cfg.Expiry, LockTTL: 10 * time.Second, ConsumerMaxAttempts: 3,
	}, log.With("service", "order"), serviceRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.Order = apitest.Start(t, orderApp.Serve)

	mailApp, err := mail.New(mail.Config{
		ShutdownTimeout: 5 * time.Second, Database: database("mail"), AMQPURL: amqpURL,
		SMTP:        mail.SMTPConfig{Host: p.SMTP.Host, Port: p.SMTP.Port, TLS: mail.TLSNone, From: "kshop <no-reply@kshop.local>", Timeout: 5 * time.Second},
		MaxAttempts: 3, Retry: retry.Pace{Initial: 100 * time.Millisecond, Max: time.Second}, Concurrency: 2,
	}, log.With("service", "mail"), serviceRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.Mail = apitest.Start(t, mailApp.Serve)

	gatewayCfg := gateway.Config{
		ShutdownTimeout: 5 * time.Second, Redis: redis,
		AuthURL: p.Auth.Base, ProductURL: p.Product.Base, OrderURL: p.Order.Base,
		AuthTimeout: 5 * time.Second, ProductTimeout: 5 * time.Second, OrderTimeout: 10 * time.Second,
		TokenIssuer: "kshop-auth", TokenAudience: "kshop",
		RateLimits: "auth=1000/m,products=1000/s,orders=1000/s", BodyLimit: 1 << 20,
	}
	if err := gatewayCfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gatewayApp, err := gateway.New(gatewayCfg, log.With("service", "gateway"), serviceRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.Gateway = apitest.Start(t, gatewayApp.Serve)
	return p
}
