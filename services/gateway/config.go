// Package gateway is kshop's API gateway: one entrance that routes to the
// services, verifies access tokens and passes the caller's identity on, limits
// request rates across all gateway replicas, and answers in the contract's
// envelope when an upstream fails (docs/api.md#the-envelope).
package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Prefix is where the gateway's environment variables live: KSHOP_GATEWAY_*.
const Prefix = "KSHOP_GATEWAY"

// Config is the gateway's configuration (docs/gateway.md).
type Config struct {
	HTTPAddr        string           `envconfig:"HTTP_ADDR" default:":8080" desc:"Address the gateway listens on."`
	MetricsAddr     string           `envconfig:"METRICS_ADDR" default:":9080" desc:"Address /metrics is served on (the API port serves none); empty: no metrics."`
	ShutdownTimeout time.Duration    `envconfig:"SHUTDOWN_TIMEOUT" default:"15s" desc:"How long in-flight work may take to finish after SIGTERM."`
	Redis           redisx.Config    `envconfig:"REDIS"`
	Log             logx.Config      `envconfig:"LOG"`
	OTel            telemetry.Config `envconfig:"OTEL"`

	AuthURL        string        `envconfig:"AUTH_URL" required:"true" desc:"Base URL of the auth service."`
	ProductURL     string        `envconfig:"PRODUCT_URL" required:"true" desc:"Base URL of the product service."`
	OrderURL       string        `envconfig:"ORDER_URL" required:"true" desc:"Base URL of the order service."`
	AuthTimeout    time.Duration `envconfig:"AUTH_TIMEOUT" default:"5s" desc:"How long to wait for the auth service's response headers."`
	ProductTimeout time.Duration `envconfig:"PRODUCT_TIMEOUT" default:"5s" desc:"How long to wait for the product service's response headers."`
	OrderTimeout   time.Duration `envconfig:"ORDER_TIMEOUT" default:"10s" desc:"How long to wait for the order service's response headers."`

	JWKSURL       string `envconfig:"JWKS_URL" desc:"Where the access-token public keys are fetched; empty: the auth service's /.well-known/jwks.json."`
	JWKSFile      string `envconfig:"JWKS_FILE" desc:"Read the access-token public keys from this file instead of fetching them."`
	TokenIssuer   string `envconfig:"TOKEN_ISSUER" default:"kshop-auth" desc:"Issuer (iss) an access token must carry."`
	TokenAudience string `envconfig:"TOKEN_AUDIENCE" default:"kshop" desc:"Audience (aud) an access token must carry."`
	// The fetched key set (docs/gateway.md, Identity): fetched again in the
	// background once older than JWKSRefresh; JWKSMinRefresh between the end
	// of one fetch and the next (unknown kids, failures); no token trusted once
	// no fetch succeeded for JWKSMaxStale; each fetch bounded by JWKSTimeout.
	JWKSRefresh    time.Duration `envconfig:"JWKS_REFRESH" default:"1m" desc:"Age after which the fetched key set is fetched again in the background."`
	JWKSMinRefresh time.Duration `envconfig:"JWKS_MIN_REFRESH" default:"10s" desc:"Least time between two fetches (unknown key ids, failures)."`
	JWKSMaxStale   time.Duration `envconfig:"JWKS_MAX_STALE" default:"15m" desc:"No token is trusted once no fetch has succeeded for this long (longer than JWKS_REFRESH)."`
	JWKSTimeout    time.Duration `envconfig:"JWKS_TIMEOUT" default:"5s" desc:"Bound of one key-set fetch."`
	// TokenCache is how many verified tokens are remembered, so that a
	// client's later requests with the same token skip the signature check
	// (about 1 KB each; 0 verifies every request in full). A remembered token
	// is refused as soon as it expires or its key leaves the key set.
	TokenCache int `envconfig:"TOKEN_CACHE" default:"4096" desc:"Verified access tokens remembered to skip the signature check (about 1 KB each); 0: verify every request in full."`
	// Identity signs the identity the gateway passes upstream
	// (KSHOP_GATEWAY_IDENTITY_KEYS_FILE, _TTL; docs/gateway.md, Identity).
	Identity identity.IssuerConfig `envconfig:"IDENTITY"`
	// RevocationCache is how long the answer "this token's credentials are not
	// revoked" is kept per credential before Redis is asked again: the longest
	// a token outlives a password reset or an account deletion. 0: ask Redis
	// on every request.
	RevocationCache      time.Duration `envconfig:"REVOCATION_CACHE" default:"5s" desc:"How long the answer 'this credential is not revoked' is kept before Redis is asked again: the longest a token outlives a password reset or an account deletion; 0: ask on every request."`
	RevocationFailClosed bool          `envconfig:"REVOCATION_FAIL_CLOSED" desc:"Refuse tokens (503) whose revocation cannot be checked while Redis is unreachable; default: let them through and count."`

	// RateLimits per route group and client, as group=N/period (s, m or h):
	// a GCRA limit of N per period with a burst of N.
	RateLimits          string   `envconfig:"RATE_LIMITS" default:"auth=20/m,products=100/s,orders=20/s" desc:"Rate limits per route group (auth, products, orders) and client, as group=N/period (s, m or h): a GCRA limit of N per period with a burst of N; a group left out is not limited."`
	RateLimitFailClosed bool     `envconfig:"RATE_LIMIT_FAIL_CLOSED" desc:"Refuse requests (503) while Redis is unreachable; default: let them through and count."`
	TrustedProxies      []string `envconfig:"TRUSTED_PROXIES" desc:"CIDRs or addresses of the proxies in front of the gateway, whose X-Forwarded-For names the client; empty: the client address is the connection's."`
	CORSOrigins         []string `envconfig:"CORS_ORIGINS" desc:"Browser origins allowed to call the API (* for any); empty: none."`
	BodyLimit           int64    `envconfig:"BODY_LIMIT" default:"1048576" desc:"Largest request body in bytes."`

	limits map[string]redis_rate.Limit
}

// Route groups, the unit of rate limiting.
const (
	GroupAuth     = "auth"
	GroupProducts = "products"
	GroupOrders   = "orders"
)

// Validate checks the URLs and parses the rate limits.
func (c *Config) Validate() error {
	var errs []error
	for name, raw := range map[string]string{"AUTH_URL": c.AuthURL, "PRODUCT_URL": c.ProductURL, "ORDER_URL": c.OrderURL, "JWKS_URL": c.JWKSURL} {
		if raw == "" && name == "JWKS_URL" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s_%s=%q must be an http(s) URL", Prefix, name, raw))
		}
	}
	// Zero durations of the key set take the defaults (configurations built
	// without config.Load); negative ones are mistakes.
	for name, d := range map[string]time.Duration{"JWKS_REFRESH": c.JWKSRefresh, "JWKS_MIN_REFRESH": c.JWKSMinRefresh,
		"JWKS_MAX_STALE": c.JWKSMaxStale, "JWKS_TIMEOUT": c.JWKSTimeout, "REVOCATION_CACHE": c.RevocationCache} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s_%s=%v must not be negative", Prefix, name, d))
		}
	}
	if c.TokenCache < 0 {
		errs = append(errs, fmt.Errorf("%s_TOKEN_CACHE=%d must not be negative (0 turns the cache off)", Prefix, c.TokenCache))
	}
	if c.JWKSMaxStale > 0 && c.JWKSMaxStale <= c.JWKSRefresh {
		errs = append(errs, fmt.Errorf("%s_JWKS_MAX_STALE=%v must be longer than %s_JWKS_REFRESH=%v, or every refresh would leave the gateway without trusted keys",
			Prefix, c.JWKSMaxStale, Prefix, c.JWKSRefresh))
	}
	limits, err := ParseRateLimits(c.RateLimits)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s_RATE_LIMITS: %w", Prefix, err))
	}
	c.limits = limits
	return errors.Join(errs...)
}

// ParseRateLimits reads "auth=20/m,products=100/s,orders=20/s". A group left
// out is not limited.
func ParseRateLimits(spec string) (map[string]redis_rate.Limit, error) {
	limits := map[string]redis_rate.Limit{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		group, rule, ok := strings.Cut(part, "=")
		count, period, ok2 := strings.Cut(rule, "/")
		n, err := strconv.Atoi(count)
		if !ok || !ok2 || err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not group=N/period", part)
		}
		switch group {
		case GroupAuth, GroupProducts, GroupOrders:
		default:
			return nil, fmt.Errorf("%q: unknown group %q (auth, products, orders)", part, group)
		}
		var d time.Duration
		switch period {
		case "s":
			d = time.Second
		case "m":
			d = time.Minute
		case "h":
			d = time.Hour
		default:
			return nil, fmt.Errorf("%q: period must be s, m or h", part)
		}
		limits[group] = redis_rate.Limit{Rate: n, Burst: n, Period: d}
	}
	return limits, nil
}
