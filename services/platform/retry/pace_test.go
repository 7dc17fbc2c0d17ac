package retry_test

import (
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/retry"
)

func TestPaceIsReadFromTheEnvironmentWithItsDefaults(t *testing.T) {
	var cfg struct {
		ConsumerRetry retry.Pace `envconfig:"CONSUMER_RETRY"`
	}
	t.Setenv("KSHOP_PACETEST_CONSUMER_RETRY_INITIAL", "250ms")
	if err := config.Load("KSHOP_PACETEST", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ConsumerRetry != (retry.Pace{Initial: 250 * time.Millisecond, Max: time.Minute}) {
		t.Fatalf("%+v", cfg.ConsumerRetry)
	}
	if b := cfg.ConsumerRetry.Backoff(); b != (retry.Backoff{Initial: 250 * time.Millisecond, Max: time.Minute, Multiplier: 2}) {
		t.Fatalf("%+v", b)
	}
	if b := (retry.Pace{}).Backoff(); b != (retry.Backoff{}) {
		t.Fatalf("a zero pace must leave the consumer's default: %+v", b)
	}
	if b := (retry.Pace{Initial: time.Second, Max: time.Millisecond}).Backoff(); b.Max != time.Second {
		t.Fatalf("max below initial: %+v", b)
	}
}
