// Package logx builds the JSON logger every kshop process writes to stdout. Lines
// logged with a context that carries an OpenTelemetry span get trace_id and
// span_id, so Grafana can jump from a log line to its trace.
package logx

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Config selects the level; services hold it in a field named Log (KSHOP_<SERVICE>_LOG_LEVEL).
type Config struct {
	Level string `envconfig:"LEVEL" default:"info" desc:"Log level: debug, info, warn or error."`
}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not one of debug, info, warn, error", s)
}

// New returns a JSON logger writing to w whose lines all carry service.
func New(w io.Writer, service string, level slog.Level) *slog.Logger {
	json := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(traceHandler{base: json}).With("service", service)
}

// traceHandler adds the ids of the span in the record's context. The ids must stay
// top-level even under WithGroup, where a record's own attributes would land in
// the group; so the handler keeps the ungrouped base and replays the chain of
// groups and attributes itself, adding the ids before the first group.
type traceHandler struct {
	base  slog.Handler
	steps []step // WithAttrs and WithGroup calls since base, in order
}

type step struct {
	group string
	attrs []slog.Attr
}

func (h traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	handler := h.base
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		handler = handler.WithAttrs([]slog.Attr{
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
		})
	}
	for _, s := range h.steps {
		if s.group != "" {
			handler = handler.WithGroup(s.group)
		} else {
			handler = handler.WithAttrs(s.attrs)
		}
	}
	return handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{base: h.base, steps: append(h.steps[:len(h.steps):len(h.steps)], step{attrs: attrs})}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return traceHandler{base: h.base, steps: append(h.steps[:len(h.steps):len(h.steps)], step{group: name})}
}
