// Package order is kshop's order service: idempotent order creation, the stock
// saga with the product service, payment, and payment reminders and expiry on
// RabbitMQ timers (docs/api.md#orders, docs/api.md#the-life-of-an-order).
package order

import (
	"errors"
	"fmt"
	"time"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Prefix is where the service's environment variables live: KSHOP_ORDER_*.
const Prefix = "KSHOP_ORDER"

// Config is the service's configuration (docs/order.md).
type Config struct {
	HTTPAddr        string           `envconfig:"HTTP_ADDR" default:":8083" desc:"Address the API listens on."`
	MetricsAddr     string           `envconfig:"METRICS_ADDR" default:":9083" desc:"Address /metrics is served on (the API port serves none); empty: no metrics."`
	ShutdownTimeout time.Duration    `envconfig:"SHUTDOWN_TIMEOUT" default:"15s" desc:"How long in-flight work may take to finish after SIGTERM."`
	Database        pg.Config        `envconfig:"DATABASE"`
	Redis           redisx.Config    `envconfig:"REDIS"`
	Kafka           kafka.Connection `envconfig:"KAFKA"`
	AMQP            amqp.Config      `envconfig:"AMQP"`
	Log             logx.Config      `envconfig:"LOG"`
	OTel            telemetry.Config `envconfig:"OTEL"`
	// Identity is where the gateway's public identity keys are
	// (KSHOP_ORDER_IDENTITY_KEYS_FILE): the only proof of who calls.
	Identity identity.Config `envconfig:"IDENTITY"`

	ReminderDelays []time.Duration `envconfig:"REMINDER_DELAYS" default:"4h,12h,22h" desc:"Payment reminders, as delays after an order is placed, in increasing order and each shorter than EXPIRY_DELAY; each reminder queues the next timer."`
	ExpiryDelay    time.Duration   `envconfig:"EXPIRY_DELAY" default:"24h" desc:"When an unpaid order is cancelled and a paid one completed, after it is placed."`
	LockTTL        time.Duration   `envconfig:"LOCK_TTL" default:"10s" desc:"How long a request id stays locked if its holder dies."`
	// MaxPendingOrders and MaxPendingUnits bound what one customer holds
	// unpaid: PENDING orders, and the units in them. A pending order holds its
	// stock until ExpiryDelay, so without a bound one account could reserve the
	// whole catalogue for that long. Zero in a Config built without
	// config.Load means the default.
	MaxPendingOrders    int   `envconfig:"MAX_PENDING_ORDERS" default:"20" desc:"Unpaid (PENDING) orders one customer may hold."`
	MaxPendingUnits     int64 `envconfig:"MAX_PENDING_UNITS" default:"1000" desc:"Units one customer may hold in unpaid orders."`
	ConsumerMaxAttempts int   `envconfig:"CONSUMER_MAX_ATTEMPTS" default:"5" desc:"Tries of one event or timer before its dead-letter topic or queue."`
	// InboxRetention is how long a handled event's id is remembered against
	// its redelivery (longer than any broker redelivers); OutboxRetention how
	// long sent outbox rows are kept for auditing. Both are pruned on a schedule.
	InboxRetention  time.Duration `envconfig:"INBOX_RETENTION" default:"168h" desc:"How long a handled event's id is remembered against redelivery (pruned on a schedule)."`
	OutboxRetention time.Duration `envconfig:"OUTBOX_RETENTION" default:"24h" desc:"How long sent outbox rows are kept for auditing (pruned on a schedule)."`
	// ConsumerRetry paces those tries (KSHOP_..._CONSUMER_RETRY_INITIAL, _MAX);
	// an initial of zero keeps the platform's short redelivery pace (tests
	// that want speed).
	ConsumerRetry retry.Pace `envconfig:"CONSUMER_RETRY"`
}

// Defaults of the timers, as REMINDER_DELAYS and EXPIRY_DELAY have them: the
// RabbitMQ topology of an installation that changes neither (the chart's
// tests) is declared from these.
var (
	DefaultReminderDelays = []time.Duration{4 * time.Hour, 12 * time.Hour, 22 * time.Hour}
	DefaultExpiryDelay    = 24 * time.Hour
)

// Defaults of the pending limits, for configurations built without config.Load.
const (
	DefaultMaxPendingOrders       = 20
	DefaultMaxPendingUnits  int64 = 1000
)

// withDefaultLimits fills the pending limits a literal Config left at zero:
// zero never means "no limit".
func (c Config) withDefaultLimits() Config {
	if c.MaxPendingOrders == 0 {
		c.MaxPendingOrders = DefaultMaxPendingOrders
	}
	if c.MaxPendingUnits == 0 {
		c.MaxPendingUnits = DefaultMaxPendingUnits
	}
	return c
}

// Validate checks the rules the types cannot express.
func (c *Config) Validate() error {
	var errs []error
	if c.InboxRetention < 0 {
		errs = append(errs, fmt.Errorf("%s_INBOX_RETENTION=%v must not be negative", Prefix, c.InboxRetention))
	}
	if c.OutboxRetention < 0 {
		errs = append(errs, fmt.Errorf("%s_OUTBOX_RETENTION=%v must not be negative", Prefix, c.OutboxRetention))
	}
	if err := c.Kafka.Validate(Prefix + "_KAFKA"); err != nil {
		errs = append(errs, err)
	}
	if err := c.AMQP.Validate(Prefix + "_AMQP"); err != nil {
		errs = append(errs, err)
	}
	// The timers form a chain (timerChain), each link waiting the time since the
	// one before, in whole milliseconds: each delay must come after the last.
	var before time.Duration
	for i, d := range c.ReminderDelays {
		if d < time.Millisecond || d >= c.ExpiryDelay {
			errs = append(errs, fmt.Errorf("%s_REMINDER_DELAYS: delay %d (%v) must be at least 1ms and shorter than %s_EXPIRY_DELAY (%v)", Prefix, i+1, d, Prefix, c.ExpiryDelay))
		} else if d.Truncate(time.Millisecond) <= before.Truncate(time.Millisecond) {
			errs = append(errs, fmt.Errorf("%s_REMINDER_DELAYS: the reminders must come in order: delay %d (%v) is not at least 1ms after delay %d (%v)", Prefix, i+1, d, i, before))
		}
		before = max(before, d)
	}
	if len(c.ReminderDelays) > 0 && c.ExpiryDelay.Truncate(time.Millisecond) <= before.Truncate(time.Millisecond) {
		errs = append(errs, fmt.Errorf("%s_EXPIRY_DELAY=%v must be at least 1ms after the last reminder (%v)", Prefix, c.ExpiryDelay, before))
	}
	if c.ExpiryDelay < time.Millisecond {
		errs = append(errs, fmt.Errorf("%s_EXPIRY_DELAY=%v must be at least 1ms", Prefix, c.ExpiryDelay))
	}
	if c.LockTTL <= 0 {
		errs = append(errs, fmt.Errorf("%s_LOCK_TTL=%v must be positive", Prefix, c.LockTTL))
	}
	errs = append(errs, c.validateLimits())
	return errors.Join(errs...)
}

func (c *Config) validateLimits() error {
	var errs []error
	if c.MaxPendingOrders < 1 {
		errs = append(errs, fmt.Errorf("%s_MAX_PENDING_ORDERS=%d must be at least 1", Prefix, c.MaxPendingOrders))
	}
	if c.MaxPendingUnits < 1 {
		errs = append(errs, fmt.Errorf("%s_MAX_PENDING_UNITS=%d must be at least 1", Prefix, c.MaxPendingUnits))
	}
	return errors.Join(errs...)
}
