// Package product is kshop's catalogue and stock: products with exact prices,
// search, and reservations of stock for orders that never oversell
// (docs/api.md#products, docs/api.md#kafka-events).
package product

import (
	"errors"
	"fmt"
	"time"

	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Prefix is where the service's environment variables live: KSHOP_PRODUCT_*.
const Prefix = "KSHOP_PRODUCT"

// Config is the service's configuration (docs/product.md).
type Config struct {
	HTTPAddr        string           `envconfig:"HTTP_ADDR" default:":8082" desc:"Address the API listens on."`
	MetricsAddr     string           `envconfig:"METRICS_ADDR" default:":9082" desc:"Address /metrics is served on (the API port serves none); empty: no metrics."`
	ShutdownTimeout time.Duration    `envconfig:"SHUTDOWN_TIMEOUT" default:"15s" desc:"How long in-flight work may take to finish after SIGTERM."`
	Database        pg.Config        `envconfig:"DATABASE"`
	Kafka           kafka.Connection `envconfig:"KAFKA"`
	Log             logx.Config      `envconfig:"LOG"`
	OTel            telemetry.Config `envconfig:"OTEL"`
	// Identity is where the gateway's public identity keys are
	// (KSHOP_PRODUCT_IDENTITY_KEYS_FILE): the only proof of who calls.
	Identity            identity.Config `envconfig:"IDENTITY"`
	ConsumerMaxAttempts int             `envconfig:"CONSUMER_MAX_ATTEMPTS" default:"5" desc:"Tries of one event before it goes to its dead-letter topic."`
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

// Validate checks the rules the types cannot express.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(Prefix + "_KAFKA"); err != nil {
		errs = append(errs, err)
	}
	if c.InboxRetention < 0 {
		errs = append(errs, fmt.Errorf("%s_INBOX_RETENTION=%v must not be negative", Prefix, c.InboxRetention))
	}
	if c.OutboxRetention < 0 {
		errs = append(errs, fmt.Errorf("%s_OUTBOX_RETENTION=%v must not be negative", Prefix, c.OutboxRetention))
	}
	return errors.Join(errs...)
}
