// Package telemetry sets up OpenTelemetry for a process: traces exported by OTLP
// when an endpoint is configured (and always created and propagated, so trace
// ids reach logs and messages), W3C propagation, and metrics served to Prometheus
// on /metrics together with Go runtime and process metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Config is read from a field named OTel under the service's prefix
// (KSHOP_ORDER_OTEL_EXPORTER_OTLP_ENDPOINT, KSHOP_ORDER_OTEL_TRACES_SAMPLER_RATIO).
type Config struct {
	ServiceName  string  `ignored:"true"`
	OTLPEndpoint string  `envconfig:"EXPORTER_OTLP_ENDPOINT" desc:"OTLP gRPC collector URL for traces, such as http://tempo:4317; empty: traces are not exported."`
	SampleRatio  float64 `envconfig:"TRACES_SAMPLER_RATIO" default:"1" desc:"Share of new traces sampled, 0 to 1; child spans follow their parent."`
}

// Telemetry holds the providers Setup installed.
type Telemetry struct {
	// Registry is where every metric of the process is registered and served from.
	Registry *prometheus.Registry
	tracer   *sdktrace.TracerProvider
	meter    *sdkmetric.MeterProvider
}

// Setup installs the global tracer provider, meter provider and propagator. An
// unreachable collector is not an error: the exporter retries in the background.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("telemetry: service name is empty")
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_RATIO=%v is not between 0 and 1", cfg.SampleRatio)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	traceOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}
	if cfg.OTLPEndpoint != "" {
		exporter, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint))
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP endpoint %q: %w", cfg.OTLPEndpoint, err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exporter))
	}
	tracer := sdktrace.NewTracerProvider(traceOpts...)

	registry := prometheus.NewRegistry()
	RegisterRuntime(registry)
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry prometheus exporter: %w", err)
	}
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exporter))

	otel.SetTracerProvider(tracer)
	otel.SetMeterProvider(meter)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Telemetry{Registry: registry, tracer: tracer, meter: meter}, nil
}

// MetricsHandler serves the registry in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry})
}

// Shutdown flushes pending spans and stops the providers; ctx bounds the wait.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.tracer.Shutdown(ctx), t.meter.Shutdown(ctx))
}

// RegisterRuntime adds the Go runtime's and the process's metrics to registry,
// with the live heap besides the defaults: go_gc_heap_live_bytes, what the
// last garbage collection found reachable. It follows what the service holds;
// the resident memory does not (the runtime returns freed pages slowly, and
// the binary's own pages count too), which is why no HPA scales on memory.
func RegisterRuntime(registry prometheus.Registerer) {
	registry.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: liveHeap})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}

var liveHeap = regexp.MustCompile(`^/gc/heap/live:bytes$`)
