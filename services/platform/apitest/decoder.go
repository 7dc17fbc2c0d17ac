package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/httpx"
)

// Decoder runs a handler's request decoding on the service's real middleware
// (body limit, strict query strings, recovery), without the work the handler
// does afterwards, so fuzz tests can feed it anything.
type Decoder[T any] struct {
	engine  *gin.Engine
	method  string
	decoded T
	ok      bool
}

// NewDecoder mounts decode on route (a gin pattern such as "/products/:id").
// A request it accepts is answered 204.
func NewDecoder[T any](method, route string, decode func(*gin.Context) (T, bool)) *Decoder[T] {
	d := &Decoder[T]{method: method}
	d.engine = httpx.NewEngine(httpx.Options{Service: "decoder", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	d.engine.Handle(method, route, func(c *gin.Context) {
		if v, ok := decode(c); ok {
			d.decoded, d.ok = v, true
			c.Status(http.StatusNoContent)
		}
	})
	return d
}

// Decode sends target (path and query, escaped) with body as JSON and returns
// the decoded value when the decoder accepted it. When it refused, the answer
// must be the contract's: a 4xx in the envelope with a message, and a 400 for
// invalid input names at least one field (or a redirect to the canonical path).
// A 500 or a panic fails the test.
func (d *Decoder[T]) Decode(t testing.TB, target string, body []byte) (T, bool) {
	t.Helper()
	req := httptest.NewRequest(d.method, "/", nil)
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = splitTarget(target)
	req.RequestURI = ""
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
	}
	var zero T
	d.decoded, d.ok = zero, false // the middleware may answer before the decoder runs
	rec := httptest.NewRecorder()
	d.engine.ServeHTTP(rec, req)
	if d.ok {
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%s %q: accepted but answered %d: %s", d.method, target, rec.Code, rec.Body)
		}
		return d.decoded, true
	}
	if rec.Code >= 300 && rec.Code < 400 && rec.Header().Get("Location") != "" {
		// gin sends "/products/" to "/products" and "//" to "/": nothing was decoded.
		return zero, false
	}
	if rec.Code < 400 || rec.Code > 499 {
		t.Fatalf("%s %q %q: refused with %d, want a 4xx: %s", d.method, target, body, rec.Code, rec.Body)
	}
	var envelope Envelope
	if err := json.Unmarshal(rec.Body.Bytes(), &envelope); err != nil || envelope.Message == "" {
		t.Fatalf("%s %q %q: the %d is not the error envelope: %s", d.method, target, body, rec.Code, rec.Body)
	}
	if envelope.Message == httpx.MsgValidation && len(envelope.Errors) == 0 {
		t.Fatalf("%s %q %q: %q names no field: %s", d.method, target, body, envelope.Message, rec.Body)
	}
	for _, e := range envelope.Errors {
		if e.Field == "" || e.Message == "" {
			t.Fatalf("%s %q %q: an error without a field or message: %s", d.method, target, body, rec.Body)
		}
	}
	return zero, false
}

// splitTarget turns an escaped path?query into the URL's parts; a path that
// does not unescape is kept raw, as a server would receive it.
func splitTarget(target string) (path, rawPath, rawQuery string) {
	rawPath, rawQuery, _ = strings.Cut(target, "?")
	if !strings.HasPrefix(rawPath, "/") {
		rawPath = "/" + rawPath
	}
	path = rawPath
	if u, err := http.NewRequest(http.MethodGet, "http://x"+rawPath, nil); err == nil {
		path = u.URL.Path
	}
	if path == rawPath {
		rawPath = ""
	}
	return path, rawPath, rawQuery
}
