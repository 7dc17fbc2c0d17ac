package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/httpx"
)

// upstream is one service behind the gateway.
type upstream struct {
	name string
	// server names the upstream in its client spans.
	server []attribute.KeyValue
	proxy  *httputil.ReverseProxy
}

// newUpstream builds a pooled reverse proxy to target. stripPrefix is removed
// from the path (/auth/login reaches auth as /login). timeout bounds the wait
// for the response headers only, so a large response can stream for as long as
// it takes.
func newUpstream(name string, target *url.URL, stripPrefix string, timeout time.Duration, errorsTotal *prometheus.CounterVec, logger *slog.Logger) *upstream {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	u := &upstream{name: name, server: []attribute.KeyValue{semconv.ServerAddress(target.Hostname())}}
	if port, err := strconv.Atoi(target.Port()); err == nil {
		u.server = append(u.server, semconv.ServerPort(port))
	}
	u.proxy = &httputil.ReverseProxy{
		// Rewrite (not Director): the incoming X-Forwarded-* headers are dropped
		// before it runs, so a client cannot forge them.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if stripPrefix != "" {
				pr.Out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pr.In.URL.Path, stripPrefix), "/")
				pr.Out.URL.RawPath = ""
			}
			pr.SetXForwarded()
			// The client as the gateway resolved it (through the trusted
			// proxies), not the ingress controller that connected: auth counts
			// code guesses and wrong passwords per client address.
			if client := clientOf(pr.In.Context()); client != "" {
				pr.Out.Header.Set("X-Forwarded-For", client)
			}
			pr.Out.Header.Del("X-Real-Ip")
			pr.Out.Header.Set(httpx.HeaderRequestID, httpx.RequestID(pr.In.Context()))
			// The upstream's spans go under the client span serve started.
			otel.GetTextMapPropagator().Inject(pr.Out.Context(), propagation.HeaderCarrier(pr.Out.Header))
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			span := trace.SpanFromContext(resp.Request.Context())
			span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
			if resp.StatusCode >= 500 {
				span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
			}
			return normaliseResponse(resp)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, message, kind := classify(err)
			if kind == "" {
				// The client went away; nobody reads the answer, but the
				// request is counted and logged as 499, not as a success.
				w.WriteHeader(httpx.StatusClientClosedRequest)
				return
			}
			trace.SpanFromContext(r.Context()).SetStatus(codes.Error, kind)
			if errorsTotal != nil {
				errorsTotal.WithLabelValues(name, kind).Inc()
			}
			logger.WarnContext(r.Context(), "upstream request failed", "upstream", name, "kind", kind, "error", err)
			writeEnvelope(w, status, message)
		},
		ErrorLog:   slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BufferPool: copyBuffers{},
	}
	return u
}

// upstreamTracer starts the gateway's client spans.
var upstreamTracer = otel.Tracer("github.com/kshop/kshop/services/gateway")

// serve proxies r to the upstream inside a client span: in a trace it is the
// hop between the gateway's server span and the service's, and it lasts until
// the whole body has been copied. (otelhttp's transport did this before, at
// the cost of a second copy of every request and of client metrics nobody
// read: a quarter of what the gateway allocated.) client is the address gin
// resolved (X-Forwarded-For from a trusted proxy, else the connection's
// peer); the proxy, which sees only the http.Request, finds it in the context.
func (u *upstream) serve(w http.ResponseWriter, r *http.Request, client string) {
	ctx, span := upstreamTracer.Start(r.Context(), r.Method+" "+u.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(u.server...), trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method)))
	defer span.End()
	r = r.WithContext(context.WithValue(ctx, clientKey{}, client))
	if err := keepForReplay(r); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeEnvelope(w, http.StatusRequestEntityTooLarge, httpx.MsgBodyTooLarge)
		case r.Context().Err() != nil:
			w.WriteHeader(httpx.StatusClientClosedRequest)
		default:
			writeEnvelope(w, http.StatusBadRequest, "the request body could not be read")
		}
		return
	}
	u.proxy.ServeHTTP(w, r)
}

// keepForReplay reads the body of a request its client marked idempotent
// (Idempotency-Key, as a POST /orders with its request_id may be) into memory,
// so that the upstream hop can send it again. net/http's transport retries a
// replayable request when the pooled connection it went out on turns out to
// be closed: an upstream pod stopping for a rollout closes its idle
// connections, and a request that picked one at that moment was answered
// 502 where its client's own hop would have retried it. Other bodies stream
// through unread, and so do bodies over replayableBodyLimit.
func keepForReplay(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.ContentLength > replayableBodyLimit || !markedIdempotent(r.Header) {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, replayableBodyLimit+1))
	if err != nil {
		return err
	}
	if len(body) > replayableBodyLimit {
		// A body of undeclared length that turned out larger: what was read
		// goes first, the rest streams.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil
	}
	_ = r.Body.Close()
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Body, _ = r.GetBody()
	return nil
}

// replayableBodyLimit is the largest body keepForReplay holds in memory. An
// order is a few hundred bytes; without a bound, clients that mark large
// bodies idempotent would make the gateway hold up to its body limit for each
// request in flight instead of streaming it.
const replayableBodyLimit = 64 << 10

// markedIdempotent reports whether the client said a repeat of the request
// is harmless, with either header net/http's transport honours.
func markedIdempotent(h http.Header) bool {
	_, key := h["Idempotency-Key"]
	_, xKey := h["X-Idempotency-Key"]
	return key || xKey
}

// copyBufferSize is the size of the buffer a response body is copied
// through, the one httputil.ReverseProxy allocates when it has no pool.
const copyBufferSize = 32 << 10

// copyBufferPool holds the buffers between responses. Without it each
// proxied response allocated (and zeroed) 32 KiB: at 2 600 requests/s that
// was 7 % of the gateway's CPU and most of what its garbage collector
// worked on, and collections make the slowest requests.
var copyBufferPool = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

// copyBuffers lends the pool's buffers to the reverse proxy. They travel as
// array pointers, so neither lending nor returning one allocates.
type copyBuffers struct{}

func (copyBuffers) Get() []byte { return copyBufferPool.Get().(*[copyBufferSize]byte)[:] }

func (copyBuffers) Put(b []byte) {
	if len(b) == copyBufferSize {
		copyBufferPool.Put((*[copyBufferSize]byte)(b))
	}
}

type clientKey struct{}

func clientOf(ctx context.Context) string {
	client, _ := ctx.Value(clientKey{}).(string)
	return client
}

// classify turns a proxy error into the answer: 504 when the upstream was too
// slow, 413 when the body was too large, 502 when it could not be reached.
func classify(err error) (status int, message, kind string) {
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return 0, "", ""
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, httpx.MsgBodyTooLarge, "body_too_large"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusGatewayTimeout, "upstream timed out", "timeout"
	default:
		return http.StatusBadGateway, "upstream unavailable", "unavailable"
	}
}

// normaliseResponse keeps internal details out of responses and makes every
// error answer the contract's envelope, whatever produced it upstream.
func normaliseResponse(resp *http.Response) error {
	resp.Header.Del("Server")
	resp.Header.Del("X-Powered-By")
	// The gateway already set X-Request-ID on its answer (the same id).
	resp.Header.Del(httpx.HeaderRequestID)
	if resp.StatusCode < 400 || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return nil
	}
	_ = resp.Body.Close()
	body, _ := json.Marshal(httpx.Response{Message: strings.ToLower(http.StatusText(resp.StatusCode))})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp.Header.Del("Content-Encoding")
	return nil
}

func writeEnvelope(w http.ResponseWriter, status int, message string) {
	body, _ := json.Marshal(httpx.Response{Message: message})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
