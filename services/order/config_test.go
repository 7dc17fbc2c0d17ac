package order_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/kafka"
)

// The chart's external-infrastructure mode sets these variables for managed
// Kafka, Redis and RabbitMQ, the credentials apart from the URLs.
func TestConnectionsFromTheEnvironment(t *testing.T) {
	t.Setenv("KSHOP_ORDER_DATABASE_URL", "postgres://kshop@db:5432/order?sslmode=verify-full")
	t.Setenv("KSHOP_ORDER_KAFKA_BROKERS", "k:9092")
	t.Setenv("KSHOP_ORDER_KAFKA_SASL_MECHANISM", "PLAIN")
	t.Setenv("KSHOP_ORDER_KAFKA_SASL_USERNAME", "order")
	t.Setenv("KSHOP_ORDER_KAFKA_SASL_PASSWORD", "k-secret")
	t.Setenv("KSHOP_ORDER_REDIS_ADDRS", "redis.example.com:6380")
	t.Setenv("KSHOP_ORDER_REDIS_CLUSTER", "false")
	t.Setenv("KSHOP_ORDER_REDIS_TLS", "true")
	t.Setenv("KSHOP_ORDER_REDIS_USERNAME", "order")
	t.Setenv("KSHOP_ORDER_REDIS_PASSWORD", "r-secret")
	t.Setenv("KSHOP_ORDER_AMQP_URL", "amqps://rabbit.example.com:5671/shop")
	t.Setenv("KSHOP_ORDER_AMQP_USERNAME", "order")
	t.Setenv("KSHOP_ORDER_AMQP_PASSWORD", "a@/:%secret")
	var cfg order.Config
	if err := config.Load(order.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := (kafka.Connection{Brokers: "k:9092", SASLMechanism: "PLAIN", SASLUsername: "order", SASLPassword: "k-secret"}); cfg.Kafka != want {
		t.Errorf("Kafka = %+v", cfg.Kafka)
	}
	if r := cfg.Redis; !slices.Equal(r.Addrs, []string{"redis.example.com:6380"}) || r.Cluster || !r.TLS || r.Username != "order" || r.Password != "r-secret" {
		t.Errorf("Redis = %+v", r)
	}
	if want := (amqp.Config{URL: "amqps://rabbit.example.com:5671/shop", Username: "order", Password: "a@/:%secret"}); cfg.AMQP != want {
		t.Errorf("AMQP = %+v", cfg.AMQP)
	}
}

func TestConnectionMistakesNameTheVariable(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"nothing set": {map[string]string{},
			[]string{"KSHOP_ORDER_KAFKA_BROKERS is required but not set", "KSHOP_ORDER_AMQP_URL is required but not set"}},
		"credentials twice": {map[string]string{"KSHOP_ORDER_KAFKA_BROKERS": "k:9092", "KSHOP_ORDER_AMQP_URL": "amqp://guest:guest@rabbit/", "KSHOP_ORDER_AMQP_USERNAME": "order", "KSHOP_ORDER_AMQP_PASSWORD": "x"},
			[]string{"KSHOP_ORDER_AMQP_URL carries a user and KSHOP_ORDER_AMQP_USERNAME or KSHOP_ORDER_AMQP_PASSWORD is set too"}},
		"SASL without password": {map[string]string{"KSHOP_ORDER_KAFKA_BROKERS": "k:9092", "KSHOP_ORDER_AMQP_URL": "amqp://rabbit/", "KSHOP_ORDER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KSHOP_ORDER_KAFKA_SASL_USERNAME": "order"},
			[]string{"KSHOP_ORDER_KAFKA_SASL_PASSWORD is required with KSHOP_ORDER_KAFKA_SASL_MECHANISM=SCRAM-SHA-256"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KSHOP_ORDER_DATABASE_URL", "postgres://db/order")
			t.Setenv("KSHOP_ORDER_REDIS_ADDRS", "r:6379")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var cfg order.Config
			err := config.Load(order.Prefix, &cfg)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load = %v\nwant a line %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "guest") {
				t.Errorf("the error quotes the URL's password: %v", err)
			}
		})
	}
}

// setRequired sets the variables the order service cannot start without, to
// values that pass their checks.
func setRequired(t *testing.T) {
	t.Helper()
	t.Setenv("KSHOP_ORDER_DATABASE_URL", "postgres://db/order")
	t.Setenv("KSHOP_ORDER_REDIS_ADDRS", "r:6379")
	t.Setenv("KSHOP_ORDER_KAFKA_BROKERS", "k:9092")
	t.Setenv("KSHOP_ORDER_AMQP_URL", "amqp://rabbit/")
}

// The timers' defaults in the settings and the ones the chart's tests declare
// the topology from are the same.
func TestTimerDefaultsMatchTheSettings(t *testing.T) {
	setRequired(t)
	var cfg order.Config
	if err := config.Load(order.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.ReminderDelays, order.DefaultReminderDelays) || cfg.ExpiryDelay != order.DefaultExpiryDelay {
		t.Errorf("settings default to reminders %v, expiry %v; DefaultReminderDelays %v, DefaultExpiryDelay %v",
			cfg.ReminderDelays, cfg.ExpiryDelay, order.DefaultReminderDelays, order.DefaultExpiryDelay)
	}
}

// The timers form a chain, each link waiting the time since the one before: a
// reminder that does not come after the one before (in whole milliseconds), or
// an expiry not after the last reminder, is refused with the variable's name.
func TestTimersMustComeInOrder(t *testing.T) {
	for _, tc := range []struct{ reminders, expiry, want string }{
		{"4h,2h", "24h", "KSHOP_ORDER_REMINDER_DELAYS: the reminders must come in order: delay 2 (2h0m0s)"},
		{"4h,4h", "24h", "KSHOP_ORDER_REMINDER_DELAYS: the reminders must come in order: delay 2 (4h0m0s)"},
		{"1500us,1800us", "1h", "KSHOP_ORDER_REMINDER_DELAYS: the reminders must come in order: delay 2 (1.8ms)"},
		{"1h,24h", "24h", "KSHOP_ORDER_REMINDER_DELAYS: delay 2 (24h0m0s) must be at least 1ms and shorter than KSHOP_ORDER_EXPIRY_DELAY"},
		{"1h", "1h500us", "KSHOP_ORDER_EXPIRY_DELAY=1h0m0.0005s must be at least 1ms after the last reminder (1h0m0s)"},
	} {
		t.Run(tc.reminders+"/"+tc.expiry, func(t *testing.T) {
			setRequired(t)
			t.Setenv("KSHOP_ORDER_REMINDER_DELAYS", tc.reminders)
			t.Setenv("KSHOP_ORDER_EXPIRY_DELAY", tc.expiry)
			var cfg order.Config
			if err := config.Load(order.Prefix, &cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want a line %q", err, tc.want)
			}
		})
	}
}

func TestPendingLimitsHaveSafeDefaultsAndRefuseZero(t *testing.T) {
	setRequired(t)
	var cfg order.Config
	if err := config.Load(order.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxPendingOrders != order.DefaultMaxPendingOrders || cfg.MaxPendingUnits != order.DefaultMaxPendingUnits {
		t.Errorf("limits %d orders, %d units; want the defaults %d, %d",
			cfg.MaxPendingOrders, cfg.MaxPendingUnits, order.DefaultMaxPendingOrders, order.DefaultMaxPendingUnits)
	}
	t.Setenv("KSHOP_ORDER_MAX_PENDING_ORDERS", "0")
	t.Setenv("KSHOP_ORDER_MAX_PENDING_UNITS", "-5")
	err := config.Load(order.Prefix, &cfg)
	for _, want := range []string{"KSHOP_ORDER_MAX_PENDING_ORDERS=0 must be at least 1", "KSHOP_ORDER_MAX_PENDING_UNITS=-5 must be at least 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load = %v, want a line %q", err, want)
		}
	}
}

// The inbox (and outbox) retentions have defaults that outlast any redelivery,
// and a negative one is refused, naming the variable.
func TestRetentionsHaveDefaultsAndRefuseNegatives(t *testing.T) {
	t.Setenv("KSHOP_ORDER_DATABASE_URL", "postgres://kshop@db:5432/order")
	t.Setenv("KSHOP_ORDER_KAFKA_BROKERS", "k:9092")
	t.Setenv("KSHOP_ORDER_REDIS_ADDRS", "r:6379")
	t.Setenv("KSHOP_ORDER_AMQP_URL", "amqp://rabbit:5672/")
	var cfg order.Config
	if err := config.Load(order.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.InboxRetention != 7*24*time.Hour {
		t.Errorf("InboxRetention = %v, want 168h", cfg.InboxRetention)
	}
	for _, variable := range strings.Fields("INBOX_RETENTION OUTBOX_RETENTION") {
		t.Run(variable, func(t *testing.T) {
			t.Setenv("KSHOP_ORDER_"+variable, "-1h")
			var cfg order.Config
			if err := config.Load(order.Prefix, &cfg); err == nil || !strings.Contains(err.Error(), "KSHOP_ORDER_"+variable) {
				t.Fatalf("%s=-1h: %v, want an error naming it", variable, err)
			}
		})
	}
}
