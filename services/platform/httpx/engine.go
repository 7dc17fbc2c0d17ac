package httpx

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-ID"

// Options configure an engine.
type Options struct {
	// Service names the process in metrics and logs.
	Service string
	Logger  *slog.Logger
	// Registerer receives the HTTP metrics (nil: a private registry). The
	// engine does not serve them: MetricsHandler does, on a port of its own.
	Registerer prometheus.Registerer
	// BodyLimit caps request bodies in bytes (default 1 MiB).
	BodyLimit int64
	// Ready are the dependency checks of /readyz, by name.
	Ready map[string]func(context.Context) error
}

// NewEngine returns a gin engine with kshop's middleware and health routes.
// Services add their routes to it.
func NewEngine(opts Options) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = 1 << 20
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	metrics := newHTTPMetrics(opts.Registerer, opts.Service)

	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done/c.Value follow the request context
	e.Use(requestID(), tracing(opts.Service), observe(opts.Logger, metrics), recovery(opts.Logger), limitBody(opts.BodyLimit), strictQuery())
	e.NoRoute(func(c *gin.Context) { Fail(c, http.StatusNotFound, MsgRouteNotFound) })
	e.NoMethod(func(c *gin.Context) { Fail(c, http.StatusMethodNotAllowed, MsgMethodNotAllow) })

	e.GET("/healthz", func(c *gin.Context) { Message(c, http.StatusOK, "ok") })
	e.GET("/health", func(c *gin.Context) { Message(c, http.StatusOK, "status UP") })
	e.GET("/readyz", readiness(opts.Ready))
	return e
}

// MetricsHandler serves gatherer on GET /metrics and answers 404 (the
// envelope) to anything else. It is the whole of a service's metrics port:
// the API port does not serve metrics, so the NetworkPolicy can let
// Prometheus reach the metrics port and nothing else, and what the metrics
// tell stays off the public routes.
// A nil registry serves an empty page.
func MetricsHandler(registry *prometheus.Registry) http.Handler {
	if registry == nil {
		registry = prometheus.NewRegistry()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"` + MsgRouteNotFound + `"}`))
	})
	return mux
}

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID keeps a sane client-sent id (so a trace through the gateway keeps one
// id) and generates one otherwise.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(HeaderRequestID)
		if !saneRequestID(id) {
			id = uuid.NewString()
		}
		c.Request.Header.Set(HeaderRequestID, id)
		c.Header(HeaderRequestID, id)
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey{}, id))
		c.Next()
	}
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// tracing starts a server span per request, continuing the caller's trace.
func tracing(service string) gin.HandlerFunc {
	tracer := otel.Tracer("github.com/kshop/kshop/services/platform/httpx")
	return func(c *gin.Context) {
		ctx := otel.GetTextMapPropagator().Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
		route := c.FullPath()
		name := c.Request.Method + " " + route
		if route == "" {
			name = c.Request.Method
		}
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(c.Request.Method),
			semconv.URLPath(c.Request.URL.Path),
			semconv.HTTPRoute(route),
			semconv.ServiceName(service),
			attribute.String("http.request_id", RequestID(c.Request.Context())),
		))
		defer span.End()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
		status := c.Writer.Status()
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer, service string) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by route template and status.",
			ConstLabels: prometheus.Labels{"service": service},
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request latency by route template.",
			ConstLabels: prometheus.Labels{"service": service},
			Buckets:     []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// observe counts, times and logs every request. Unmatched paths share one route
// label so scanners cannot blow up the metrics' cardinality.
func observe(logger *slog.Logger, m *httpMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		elapsed := time.Since(start)
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		m.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(c.Request.Method, route).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		logger.Log(c.Request.Context(), level, "request",
			"request_id", RequestID(c.Request.Context()), "method", c.Request.Method, "route", route,
			"status", status, "duration_ms", float64(elapsed.Microseconds())/1000)
	}
}

// recovery turns a panic into a 500 envelope; the panic and stack go to the log,
// never to the client.
func recovery(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // the client went away; net/http handles this one
				}
				logger.ErrorContext(c.Request.Context(), "handler panicked",
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()), "request_id", RequestID(c.Request.Context()))
				if !c.Writer.Written() {
					Fail(c, http.StatusInternalServerError, MsgInternal)
				} else {
					c.Abort()
				}
			}
		}()
		c.Next()
	}
}

// limitBody caps how much of a body a handler can read; BindJSON reports the
// overflow as 413. A declared length over the limit is refused before reading.
func limitBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			Fail(c, http.StatusRequestEntityTooLarge, MsgBodyTooLarge)
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		c.Next()
	}
}

// readiness runs every check with a short timeout; 503 names those that failed.
func readiness(checks map[string]func(context.Context) error) gin.HandlerFunc {
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	sort.Strings(names)
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		var failed []FieldError
		for _, name := range names {
			if err := checks[name](ctx); err != nil {
				failed = append(failed, FieldError{Field: name, Message: err.Error()})
			}
		}
		if len(failed) > 0 {
			c.PureJSON(http.StatusServiceUnavailable, Response{Message: "not ready", Errors: failed})
			return
		}
		Message(c, http.StatusOK, "ready")
	}
}
