package product_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/product"
)

// The chart's external-infrastructure mode sets these variables for a managed Kafka.
func TestKafkaConnectionFromTheEnvironment(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KSHOP_PRODUCT_DATABASE_URL", "postgres://kshop@db:5432/product?sslmode=require")
	t.Setenv("KSHOP_PRODUCT_KAFKA_BROKERS", "k1:9093,k2:9093")
	t.Setenv("KSHOP_PRODUCT_KAFKA_TLS", "true")
	t.Setenv("KSHOP_PRODUCT_KAFKA_TLS_CA_FILE", caFile)
	t.Setenv("KSHOP_PRODUCT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("KSHOP_PRODUCT_KAFKA_SASL_USERNAME", "product")
	t.Setenv("KSHOP_PRODUCT_KAFKA_SASL_PASSWORD", "s3cret")
	var cfg product.Config
	if err := config.Load(product.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	want := kafka.Connection{Brokers: "k1:9093,k2:9093", TLS: true, TLSCAFile: caFile, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "product", SASLPassword: "s3cret"}
	if cfg.Kafka != want {
		t.Fatalf("Kafka = %+v\nwant %+v", cfg.Kafka, want)
	}
}

func TestKafkaMistakesNameTheVariable(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no brokers": {map[string]string{}, "config: KSHOP_PRODUCT_KAFKA_BROKERS is required but not set"},
		"unknown mechanism": {map[string]string{"KSHOP_PRODUCT_KAFKA_BROKERS": "k:9092", "KSHOP_PRODUCT_KAFKA_SASL_MECHANISM": "GSSAPI"},
			`config: KSHOP_PRODUCT_KAFKA_SASL_MECHANISM="GSSAPI" must be empty, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		"bad bool": {map[string]string{"KSHOP_PRODUCT_KAFKA_BROKERS": "k:9092", "KSHOP_PRODUCT_KAFKA_TLS": "yes please"},
			`config: KSHOP_PRODUCT_KAFKA_TLS="yes please" is not a valid bool`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KSHOP_PRODUCT_DATABASE_URL", "postgres://db/product")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var cfg product.Config
			err := config.Load(product.Prefix, &cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Load = %v\nwant prefix %q", err, tc.want)
			}
		})
	}
}

// The inbox (and outbox) retentions have defaults that outlast any redelivery,
// and a negative one is refused, naming the variable.
func TestRetentionsHaveDefaultsAndRefuseNegatives(t *testing.T) {
	t.Setenv("KSHOP_PRODUCT_DATABASE_URL", "postgres://kshop@db:5432/product")
	t.Setenv("KSHOP_PRODUCT_KAFKA_BROKERS", "k:9092")
	t.Setenv("KSHOP_PRODUCT_REDIS_ADDRS", "r:6379")
	t.Setenv("KSHOP_PRODUCT_AMQP_URL", "amqp://rabbit:5672/")
	var cfg product.Config
	if err := config.Load(product.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.InboxRetention != 7*24*time.Hour {
		t.Errorf("InboxRetention = %v, want 168h", cfg.InboxRetention)
	}
	for _, variable := range strings.Fields("INBOX_RETENTION OUTBOX_RETENTION") {
		t.Run(variable, func(t *testing.T) {
			t.Setenv("KSHOP_PRODUCT_"+variable, "-1h")
			var cfg product.Config
			if err := config.Load(product.Prefix, &cfg); err == nil || !strings.Contains(err.Error(), "KSHOP_PRODUCT_"+variable) {
				t.Fatalf("%s=-1h: %v, want an error naming it", variable, err)
			}
		})
	}
}
