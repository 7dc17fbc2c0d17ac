package telemetry

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// restoreGlobals puts back the global providers a test replaced.
func restoreGlobals(t *testing.T) {
	tp, mp, prop := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(prop)
	})
}

func TestTracesPropagateWithoutAnExporter(t *testing.T) {
	restoreGlobals(t)
	tel, err := Setup(context.Background(), Config{ServiceName: "order", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	ctx, span := otel.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	if !span.SpanContext().IsValid() || !span.SpanContext().IsSampled() {
		t.Fatal("span has no valid sampled context")
	}
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if !strings.Contains(carrier["traceparent"], span.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent %q lacks the trace id", carrier["traceparent"])
	}
	extracted := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), carrier))
	if extracted.TraceID() != span.SpanContext().TraceID() {
		t.Fatal("extracting the carrier did not restore the trace")
	}
}

func TestMetricsReachPrometheus(t *testing.T) {
	restoreGlobals(t)
	tel, err := Setup(context.Background(), Config{ServiceName: "order", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	counter, err := otel.Meter("test").Int64Counter("orders_created")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3)

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"orders_created_total", "go_goroutines", "process_cpu_seconds_total", "go_gc_heap_live_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestUnreachableCollectorDoesNotBlock(t *testing.T) {
	restoreGlobals(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()

	tel, err := Setup(context.Background(), Config{ServiceName: "order", SampleRatio: 1, OTLPEndpoint: "http://" + closedPort})
	if err != nil {
		t.Fatalf("Setup with an unreachable collector: %v", err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "lost")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { _ = tel.Shutdown(ctx); close(done) }() // an export error is expected; hanging is not
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown ignored its one-second deadline")
	}
}

func TestBadSettingsAreRefused(t *testing.T) {
	for _, cfg := range []Config{{}, {ServiceName: "x", SampleRatio: 2}} {
		if _, err := Setup(context.Background(), cfg); err == nil {
			t.Errorf("Setup(%+v) accepted it", cfg)
		}
	}
}
