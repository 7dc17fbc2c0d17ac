package logx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLinesCarryServiceAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	logger := New(&buf, "order", slog.LevelInfo)
	ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "request")
	defer span.End()

	logger.InfoContext(ctx, "order created", "order_id", 7)
	logger.With("component", "relay").WithGroup("batch").InfoContext(ctx, "published", "rows", 3)
	logger.Info("no span here")
	logger.Debug("filtered out")

	got := lines(t, &buf)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3 (debug filtered)", len(got))
	}
	for i, line := range got {
		if line["service"] != "order" || line["time"] == nil || line["level"] == nil || line["msg"] == nil {
			t.Errorf("line %d misses service/time/level/msg: %v", i, line)
		}
	}
	for _, line := range got[:2] {
		if line["trace_id"] != span.SpanContext().TraceID().String() || line["span_id"] != span.SpanContext().SpanID().String() {
			t.Errorf("line %v lacks the span's ids", line)
		}
	}
	if got[1]["component"] != "relay" {
		t.Errorf("With attributes lost: %v", got[1])
	}
	if _, ok := got[2]["trace_id"]; ok {
		t.Errorf("a line without a span has a trace_id: %v", got[2])
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("ParseLevel accepted loud")
	}
}
