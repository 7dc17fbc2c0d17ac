package pg_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/testenv"
)

func TestQueriesAreSpansOfTheCallersTrace(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(provider)
	t.Cleanup(func() { otel.SetTracerProvider(previous) })

	db, err := pg.Open(context.Background(), pg.Config{URL: testenv.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, parent := provider.Tracer("test").Start(context.Background(), "request")
	var one int
	if err := db.Primary.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var query *tracetest.SpanStub
	spans := exporter.GetSpans()
	for i := range spans {
		for _, a := range spans[i].Attributes {
			if strings.HasPrefix(string(a.Key), "db.") && strings.Contains(a.Value.String(), "SELECT 1") {
				query = &spans[i]
			}
		}
	}
	if query == nil {
		t.Fatalf("no span carries the query text among %d spans", len(spans))
	}
	if query.Parent.SpanID() != parent.SpanContext().SpanID() || query.SpanContext.TraceID() != parent.SpanContext().TraceID() {
		t.Fatal("the query's span is not a child of the caller's span")
	}
}

func TestPoolStatisticsAreExported(t *testing.T) {
	db, err := pg.Open(context.Background(), pg.Config{URL: testenv.NewDatabase(t), MaxConns: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(pg.NewPoolCollector(db))
	if err := testutil.GatherAndCompare(registry, strings.NewReader(`
# HELP kshop_db_pool_max_connections The pool's maximum size.
# TYPE kshop_db_pool_max_connections gauge
kshop_db_pool_max_connections{pool="primary"} 7
`), "kshop_db_pool_max_connections"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(registry, "kshop_db_pool_acquires_total"); err != nil || n != 1 {
		t.Fatalf("acquires series: %d, %v", n, err)
	}
}
