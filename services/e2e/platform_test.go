package e2e_test

import (
	"testing"
	"time"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/platform/retry"
)

// startPlatform is e2e.Start with the end-to-end tests' settings: few, quick
// retries, generous rate limits, and each service's metrics beside the Go
// runtime's (the dashboards query both).
func startPlatform(t *testing.T, cfg e2e.Config) *e2e.Platform {
	t.Helper()
	cfg.ConsumerAttempts, cfg.MailAttempts, cfg.MailConcurrency = 3, 3, 2
	cfg.MailRetry = retry.Pace{Initial: 100 * time.Millisecond, Max: time.Second}
	if cfg.RateLimits == "" { // the tests about the limits set their own
		cfg.RateLimits = "auth=1000/m,products=1000/s,orders=1000/s"
	}
	cfg.Logger, cfg.Registry = logger(), serviceRegistry
	return e2e.Start(t, cfg)
}
