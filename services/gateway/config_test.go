package gateway_test

import (
	"testing"
	"time"

	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/platform/config"
)

// The chart's external-infrastructure mode sets these variables for a managed Redis.
func TestRedisConnectionFromTheEnvironment(t *testing.T) {
	for k, v := range map[string]string{
		"KSHOP_GATEWAY_AUTH_URL": "http://auth:8081", "KSHOP_GATEWAY_PRODUCT_URL": "http://product:8082", "KSHOP_GATEWAY_ORDER_URL": "http://order:8083",
		"KSHOP_GATEWAY_REDIS_ADDRS": "n1:6379,n2:6379", "KSHOP_GATEWAY_REDIS_CLUSTER": "true", "KSHOP_GATEWAY_REDIS_TLS": "true",
		"KSHOP_GATEWAY_REDIS_USERNAME": "gateway", "KSHOP_GATEWAY_REDIS_PASSWORD": "r-secret",
	} {
		t.Setenv(k, v)
	}
	var cfg gateway.Config
	if err := config.Load(gateway.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Redis; len(r.Addrs) != 2 || !r.Cluster || !r.TLS || r.Username != "gateway" || r.Password != "r-secret" {
		t.Fatalf("Redis = %+v", r)
	}
	if cfg.JWKSRefresh != time.Minute || cfg.JWKSMinRefresh != 10*time.Second || cfg.JWKSMaxStale != 15*time.Minute ||
		cfg.JWKSTimeout != 5*time.Second || cfg.RevocationCache != 5*time.Second || cfg.RevocationFailClosed {
		t.Fatalf("key set and revocation defaults %+v", cfg)
	}
}
