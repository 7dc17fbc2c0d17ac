// Package order is kshop's order service: idempotent order creation, the stock
// saga with the product service, payment, and payment reminders and expiry on
// RabbitMQ timers (SPEC.md, Orders).
package order

import (
	"errors"
	"fmt"
	"time"

	"github.com/kshop/kshop/services/platform/amqp"
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
	HTTPAddr        string           `envconfig:"HTTP_ADDR" default:":8083"`
	ShutdownTimeout time.Duration    `envconfig:"SHUTDOWN_TIMEOUT" default:"15s"`
	Database        pg.Config        `envconfig:"DATABASE"`
	Redis           redisx.Config    `envconfig:"REDIS"`
	Kafka           kafka.Connection `envconfig:"KAFKA"`
	AMQP            amqp.Config      `envconfig:"AMQP"`
	Log             logx.Config      `envconfig:"LOG"`
	OTel            telemetry.Config `envconfig:"OTEL"`

	// ReminderDelays are the payment reminders after an order is placed.
	ReminderDelays []time.Duration `envconfig:"REMINDER_DELAYS" default:"4h,12h,22h"`
	// ExpiryDelay is when an unpaid order is cancelled and a paid one completed.
	ExpiryDelay time.Duration `envconfig:"EXPIRY_DELAY" default:"24h"`
	// LockTTL bounds how long a request id stays locked if its holder dies.
	LockTTL time.Duration `envconfig:"LOCK_TTL" default:"10s"`
	// ConsumerMaxAttempts bounds the tries of one event or timer before its
	// dead-letter topic or queue.
	ConsumerMaxAttempts int `envconfig:"CONSUMER_MAX_ATTEMPTS" default:"5"`
	// ConsumerRetry paces those tries (KSHOP_..._CONSUMER_RETRY_INITIAL, _MAX);
	// an initial of zero keeps the platform's short redelivery pace (tests
	// that want speed).
	ConsumerRetry retry.Pace `envconfig:"CONSUMER_RETRY"`
}

// Validate checks the rules the types cannot express.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(Prefix + "_KAFKA"); err != nil {
		errs = append(errs, err)
	}
	if err := c.AMQP.Validate(Prefix + "_AMQP"); err != nil {
		errs = append(errs, err)
	}
	for i, d := range c.ReminderDelays {
		if d < time.Millisecond || d >= c.ExpiryDelay {
			errs = append(errs, fmt.Errorf("%s_REMINDER_DELAYS: delay %d (%v) must be at least 1ms and shorter than %s_EXPIRY_DELAY (%v)", Prefix, i+1, d, Prefix, c.ExpiryDelay))
		}
	}
	if c.ExpiryDelay < time.Millisecond {
		errs = append(errs, fmt.Errorf("%s_EXPIRY_DELAY=%v must be at least 1ms", Prefix, c.ExpiryDelay))
	}
	if c.LockTTL <= 0 {
		errs = append(errs, fmt.Errorf("%s_LOCK_TTL=%v must be positive", Prefix, c.LockTTL))
	}
	return errors.Join(errs...)
}
