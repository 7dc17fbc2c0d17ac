package gateway

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/tokens"
)

// openAPI is the API's document; the collections in docs/ are generated from
// it (go generate, or go run ./hack/apidocs), and a test fails while they lag.
//
//go:generate go run ../../hack/apidocs
//go:embed openapi.json
var openAPI []byte

// App is one running gateway.
type App struct {
	Handler http.Handler
	// Metrics serves /metrics, on the metrics port only.
	Metrics http.Handler

	cfg      Config
	redis    redis.UniversalClient
	limiter  *leasedLimiter
	verifier *tokens.Verifier
	issuer   *identity.Issuer
	revoked  *revocations
	metrics  *metrics
	logger   *slog.Logger
}

type metrics struct {
	upstreamErrors   *prometheus.CounterVec
	rateLimited      *prometheus.CounterVec
	rateLeases       *prometheus.CounterVec
	limiterErrors    prometheus.Counter
	rejectedTokens   *prometheus.CounterVec
	jwksRefreshes    *prometheus.CounterVec
	revocationErrors prometheus.Counter
}

func newMetrics(registry *prometheus.Registry) *metrics {
	m := &metrics{
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_gateway_upstream_errors_total", Help: "Proxied requests that failed, by upstream and kind (unavailable, timeout)."}, []string{"upstream", "kind"}),
		rateLimited:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_gateway_rate_limited_total", Help: "Requests refused with 429, by route group."}, []string{"group"}),
		rateLeases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_gateway_rate_limit_leases_total",
			Help: "Round trips to Redis for rate-limit tokens (a lease of one or more tokens, or a refusal), by route group; the requests in between were decided locally."}, []string{"group"}),
		limiterErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_gateway_rate_limiter_errors_total", Help: "Rate-limit checks that could not reach Redis (the request went through unless failing closed)."}),
		rejectedTokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_gateway_rejected_tokens_total", Help: "Requests refused for their token, by reason (missing, malformed, expired, invalid, revoked)."}, []string{"reason"}),
		jwksRefreshes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_gateway_jwks_refreshes_total", Help: "Fetches of the auth service's public keys that ended, by outcome (ok, failed)."}, []string{"outcome"}),
		revocationErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_gateway_revocation_check_errors_total",
			Help: "Token revocation checks that could not reach Redis and had no earlier answer (the request went through unless failing closed)."}),
	}
	if registry != nil {
		registry.MustRegister(m.upstreamErrors, m.rateLimited, m.rateLeases, m.limiterErrors, m.rejectedTokens, m.jwksRefreshes, m.revocationErrors)
	}
	// The series exist from the start, at zero, so rates and alerts work at once.
	for _, group := range []string{GroupAuth, GroupProducts, GroupOrders} {
		m.rateLimited.WithLabelValues(group)
		m.rateLeases.WithLabelValues(group)
	}
	for _, upstream := range []string{"auth", "product", "order"} {
		for _, kind := range []string{"unavailable", "timeout", "body_too_large"} {
			m.upstreamErrors.WithLabelValues(upstream, kind)
		}
	}
	for _, reason := range []string{"missing", "malformed", "expired", "invalid", "revoked"} {
		m.rejectedTokens.WithLabelValues(reason)
	}
	for _, outcome := range []string{"ok", "failed"} {
		m.jwksRefreshes.WithLabelValues(outcome)
	}
	return m
}

// New wires the gateway. Upstreams and Redis may be down: requests then get
// 502 and (by default) no rate limit, never a crash.
func New(cfg Config, logger *slog.Logger, registry *prometheus.Registry) (*App, error) {
	if cfg.limits == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	app := &App{cfg: cfg, redis: redisx.NewClient(cfg.Redis), metrics: newMetrics(registry), logger: logger}
	app.limiter = newLeasedLimiter(app.redis, func(group string) { app.metrics.rateLeases.WithLabelValues(group).Inc() })

	var keys tokens.PublicKeys
	var keysReady func(context.Context) error
	switch {
	case cfg.JWKSFile != "":
		file, err := tokens.LoadKeyFile(cfg.JWKSFile, 10*time.Second, logger)
		if err != nil {
			return nil, fmt.Errorf("%s_JWKS_FILE: %w", Prefix, err)
		}
		keys, keysReady = tokens.KeySetLookup{Source: file}, func(context.Context) error { return nil }
	default:
		jwksURL := cfg.JWKSURL
		if jwksURL == "" {
			jwksURL = strings.TrimSuffix(cfg.AuthURL, "/") + "/.well-known/jwks.json"
		}
		remote := tokens.NewRemoteKeySet(jwksURL)
		for _, set := range []struct {
			setting time.Duration
			field   *time.Duration
		}{{cfg.JWKSRefresh, &remote.Refresh}, {cfg.JWKSMinRefresh, &remote.MinRefresh}, {cfg.JWKSMaxStale, &remote.MaxStale}, {cfg.JWKSTimeout, &remote.Timeout}} {
			if set.setting > 0 {
				*set.field = set.setting
			}
		}
		remote.Observe = func(err error) {
			if err != nil {
				app.metrics.jwksRefreshes.WithLabelValues("failed").Inc()
				logger.Warn("fetch the auth service's public keys", "url", jwksURL, "error", err)
				return
			}
			app.metrics.jwksRefreshes.WithLabelValues("ok").Inc()
		}
		if registry != nil {
			registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kshop_gateway_jwks_age_seconds",
				Help: "Seconds since the auth service's public keys were last fetched (+Inf before the first fetch); no token is trusted beyond KSHOP_GATEWAY_JWKS_MAX_STALE."},
				func() float64 {
					fetched := remote.FetchedAt()
					if fetched.IsZero() {
						return math.Inf(1)
					}
					return time.Since(fetched).Seconds()
				}))
		}
		keys, keysReady = remote, remote.Ready
	}
	app.verifier = &tokens.Verifier{Keys: keys, Issuer: cfg.TokenIssuer, Audience: cfg.TokenAudience, Leeway: 30 * time.Second,
		Cache: tokens.NewVerifiedCache(cfg.TokenCache)}
	app.revoked = newRevocations(app.redis, cfg.RevocationCache)
	issuer, err := cfg.Identity.NewIssuer(Prefix+"_IDENTITY", logger)
	if err != nil {
		return nil, err
	}
	app.issuer = issuer

	upstreams := map[string]*upstream{}
	for _, u := range []struct {
		name, raw, strip string
		timeout          time.Duration
	}{
		{"auth", cfg.AuthURL, "/auth", cfg.AuthTimeout},
		{"product", cfg.ProductURL, "", cfg.ProductTimeout},
		{"order", cfg.OrderURL, "", cfg.OrderTimeout},
	} {
		target, err := url.Parse(u.raw)
		if err != nil {
			return nil, fmt.Errorf("%s upstream %q: %w", u.name, u.raw, err)
		}
		upstreams[u.name] = newUpstream(u.name, target, u.strip, u.timeout, app.metrics.upstreamErrors, logger)
	}

	engine := httpx.NewEngine(httpx.Options{
		Service: "gateway", Logger: logger, Registerer: registry, BodyLimit: cfg.BodyLimit,
		Ready: map[string]func(context.Context) error{"jwks": keysReady},
	})
	if err := engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("%s_TRUSTED_PROXIES: %w", Prefix, err)
	}
	if len(cfg.CORSOrigins) > 0 {
		engine.Use(cors(cfg.CORSOrigins))
	}
	engine.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", openAPI) })

	public, user, admin := app.authenticate(false), app.authenticate(true), app.authenticate(true, identity.RoleAdmin)
	forward := func(u *upstream) gin.HandlerFunc {
		return func(c *gin.Context) {
			if !app.vouch(c, u.name) {
				return
			}
			u.serve(c.Writer, c.Request, c.ClientIP())
		}
	}
	auth, products, orders := upstreams["auth"], upstreams["product"], upstreams["order"]
	// Only auth's public routes: its /healthz, /readyz and /metrics (and any
	// route it grows later) stay inside the cluster until they are listed here.
	for _, r := range authRoutes {
		engine.Handle(r.method, "/auth"+r.path, public, app.rateLimit(GroupAuth), forward(auth))
	}
	engine.GET("/products", public, app.rateLimit(GroupProducts), forward(products))
	engine.GET("/products/:id", public, app.rateLimit(GroupProducts), forward(products))
	engine.POST("/products", admin, app.rateLimit(GroupProducts), forward(products))
	engine.PUT("/products/:id", admin, app.rateLimit(GroupProducts), forward(products))
	engine.DELETE("/products/:id", admin, app.rateLimit(GroupProducts), forward(products))
	engine.GET("/products/:id/history", admin, app.rateLimit(GroupProducts), forward(products))
	engine.Any("/orders", user, app.rateLimit(GroupOrders), forward(orders))
	engine.Any("/orders/*path", user, app.rateLimit(GroupOrders), forward(orders))
	app.Handler, app.Metrics = engine, httpx.MetricsHandler(registry)
	return app, nil
}

// authRoutes are the auth service's public routes, the only ones the gateway
// forwards to it (under /auth). Everything else auth serves is for the cluster:
// probes, metrics.
var authRoutes = []route{
	{http.MethodPost, "/register"},
	{http.MethodPost, "/verify"},
	{http.MethodPost, "/resend-verification"},
	{http.MethodPost, "/login"},
	{http.MethodPost, "/request-password-reset"},
	{http.MethodPost, "/reset-password"},
	{http.MethodPost, "/delete-account"},
	{http.MethodGet, "/.well-known/jwks.json"},
}

// route is a method and a path.
type route struct{ method, path string }

const userKey = "gateway.user"

// authenticate ALWAYS removes the identity headers (and identity token) the client sent, then
// verifies the bearer token when there is one (a present but bad token is 401
// even on a public route) and passes the verified identity upstream. required
// makes a token mandatory; roles, when given, must include one the user holds.
func (a *App) authenticate(required bool, roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, h := range identity.Headers {
			c.Request.Header.Del(h)
		}
		raw := c.GetHeader("Authorization")
		if raw == "" {
			if required {
				a.refuse(c, "missing")
				return
			}
			c.Next()
			return
		}
		token, ok := strings.CutPrefix(raw, "Bearer ")
		if !ok || strings.TrimSpace(token) == "" {
			a.refuse(c, "malformed")
			return
		}
		claims, err := a.verifier.Verify(c.Request.Context(), strings.TrimSpace(token))
		if err != nil {
			reason := "invalid"
			if errors.Is(err, tokens.ErrExpired) {
				reason = "expired"
			}
			a.logger.DebugContext(c.Request.Context(), "token refused", "reason", reason, "error", err)
			a.refuse(c, reason)
			return
		}
		id, err := strconv.ParseInt(claims.Subject, 10, 64)
		if err != nil || id <= 0 {
			a.refuse(c, "invalid")
			return
		}
		revoked, err := a.revoked.revoked(c.Request.Context(), claims.CredentialID)
		if err != nil {
			a.metrics.revocationErrors.Inc()
			a.logger.WarnContext(c.Request.Context(), "token revocation unknown: Redis unavailable", "fail_closed", a.cfg.RevocationFailClosed, "error", err)
			if a.cfg.RevocationFailClosed {
				httpx.Fail(c, http.StatusServiceUnavailable, errRevocationUnknown.Error())
				return
			}
		}
		if revoked {
			a.refuse(c, "revoked")
			return
		}
		u := identity.User{ID: id, Email: claims.Email, Roles: claims.Roles}
		if len(roles) > 0 && !slices.ContainsFunc(roles, u.HasRole) {
			httpx.Fail(c, http.StatusForbidden, httpx.MsgForbidden)
			return
		}
		u.Header(c.Request.Header)
		c.Set(userKey, u)
		c.Next()
	}
}

// vouch adds the token that proves the verified identity to upstream: signed
// with the gateway's key, for that service only, valid for the identity TTL.
// The services refuse X-User-* headers without it.
func (a *App) vouch(c *gin.Context, upstream string) bool {
	v, ok := c.Get(userKey)
	if !ok {
		return true
	}
	token, err := a.issuer.Token(v.(identity.User), upstream)
	if err != nil {
		a.logger.ErrorContext(c.Request.Context(), "identity not signed", "upstream", upstream, "error", err)
		httpx.Fail(c, http.StatusServiceUnavailable, "identity signing unavailable")
		return false
	}
	c.Request.Header.Set(identity.HeaderToken, token)
	return true
}

func (a *App) refuse(c *gin.Context, reason string) {
	a.metrics.rejectedTokens.WithLabelValues(reason).Inc()
	c.Header("WWW-Authenticate", `Bearer realm="kshop"`)
	httpx.Fail(c, http.StatusUnauthorized, httpx.MsgUnauthorized)
}

// rateLimitPrefix starts the Redis key of every rate limit counter:
// ratelimit:<group>:<client>.
const rateLimitPrefix = "ratelimit:"

// rateLimit applies the group's limit per client: the user when authenticated,
// otherwise the client address. The buckets live in Redis (GCRA), so every
// gateway replica enforces one shared limit; each replica leases several
// tokens of a busy client's bucket at once and admits from them locally
// (ratelease.go), so only one request in a lease pays the round trip.
func (a *App) rateLimit(group string) gin.HandlerFunc {
	limit, limited := a.cfg.limits[group]
	return func(c *gin.Context) {
		if !limited {
			c.Next()
			return
		}
		client := "ip:" + c.ClientIP()
		if u, ok := c.Get(userKey); ok {
			client = "user:" + strconv.FormatInt(u.(identity.User).ID, 10)
		}
		res, err := a.limiter.allow(c.Request.Context(), group, group+":"+client, limit)
		if err != nil {
			a.metrics.limiterErrors.Inc()
			a.logger.WarnContext(c.Request.Context(), "rate limiter unavailable", "fail_closed", a.cfg.RateLimitFailClosed, "error", err)
			if a.cfg.RateLimitFailClosed {
				httpx.Fail(c, http.StatusServiceUnavailable, "rate limiter unavailable")
				return
			}
			c.Next()
			return
		}
		c.Header("RateLimit-Limit", strconv.Itoa(limit.Rate))
		c.Header("RateLimit-Remaining", strconv.Itoa(res.remaining))
		c.Header("RateLimit-Reset", strconv.Itoa(int(math.Ceil(res.resetAfter.Seconds()))))
		if !res.allowed {
			a.metrics.rateLimited.WithLabelValues(group).Inc()
			c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(res.retryAfter.Seconds())))))
			httpx.Fail(c, http.StatusTooManyRequests, "too many requests")
			return
		}
		c.Next()
	}
}

// cors answers browsers from the allowed origins, preflights included.
func cors(origins []string) gin.HandlerFunc {
	anyOrigin := slices.Contains(origins, "*")
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" || (!anyOrigin && !slices.Contains(origins, origin)) {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}

// Run serves the API on cfg.HTTPAddr and the metrics on cfg.MetricsAddr
// (when set) until ctx ends.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("%s_HTTP_ADDR=%s: %w", Prefix, a.cfg.HTTPAddr, err)
	}
	if a.cfg.MetricsAddr == "" {
		return a.Serve(ctx, ln)
	}
	metrics, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("%s_METRICS_ADDR=%s: %w", Prefix, a.cfg.MetricsAddr, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ServeMetrics(ctx, metrics) })
	g.Go(func() error { return a.Serve(ctx, ln) })
	return g.Wait()
}

// ServeMetrics serves the metrics port on a listener the caller opened.
func (a *App) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return httpx.ServeListener(ctx, ln, a.Metrics, a.cfg.ShutdownTimeout, a.logger)
}

// Serve is Run on a listener the caller opened.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	defer a.redis.Close()
	return httpx.ServeListener(ctx, ln, a.Handler, a.cfg.ShutdownTimeout, a.logger)
}
