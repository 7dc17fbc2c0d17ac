package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/telemetry"
	"github.com/kshop/kshop/services/platform/testenv"
)

func logger() *slog.Logger {
	if os.Getenv("KSHOP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// spans records every span of every service in the test process.
var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	code := m.Run()
	_ = provider.Shutdown(context.Background())
	os.Exit(code)
}

func TestTheWholeJourneyThroughTheGateway(t *testing.T) {
	reminders := []time.Duration{2 * time.Second, 3 * time.Second}
	// The catalogue is read from a real streaming replica, as under make run.
	p := startPlatform(t, e2e.Config{Reminders: reminders, Expiry: 5 * time.Second, ProductReplica: true})
	smtp, authAPI, productAPI, orderAPI, mailAPI, gw := p.SMTP, p.Auth, p.Product, p.Order, p.Mail, p.Gateway

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started := time.Now()
	err := loadgen.Journey(ctx, loadgen.JourneyConfig{
		Gateway: gw.Base, Inbox: e2e.Inbox{Server: smtp}, Admin: p.Admin, AdminPassword: p.AdminPassword,
		Reminders: len(reminders), ExpiryWithin: 30 * time.Second,
		Step: func(format string, args ...any) {
			t.Logf("%6.2fs  "+format, append([]any{time.Since(started).Seconds()}, args...)...)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The journey leaves no account behind: neither its customer's nor the
	// admin's, whose password would otherwise stay usable.
	if users := queryInt(t, p.Databases["auth"], `SELECT count(*) FROM users`); users != 0 {
		t.Errorf("%d accounts left behind by the journey", users)
	}
	// Every message the platform sent went out once: no duplicates per Message-ID.
	seen := map[string]bool{}
	for _, m := range smtp.Messages() {
		id := m.Header.Get("Message-Id")
		if seen[id] {
			t.Errorf("e-mail %s (%q to %s) sent twice", id, m.Subject, m.To)
		}
		seen[id] = true
	}
	if !strings.Contains(strings.Join(subjects(smtp.Messages()), "|"), "Your kshop account is verified") {
		t.Error("no account-verified e-mail")
	}

	// Every service tells on /metrics what the journey did: on its metrics
	// port, as its API port serves none.
	for name, api := range map[string]*apitest.Client{"auth": authAPI, "product": productAPI, "order": orderAPI, "mail": mailAPI, "gateway": gw} {
		api.Send(t, "GET", "/metrics", "", nil, nil).Expect(t, http.StatusNotFound, "route not found")
		if p.Metrics[name] == nil {
			t.Fatalf("no metrics port for %s", name)
		}
	}
	authAPI, productAPI, orderAPI, mailAPI, gw = p.Metrics["auth"], p.Metrics["product"], p.Metrics["order"], p.Metrics["mail"], p.Metrics["gateway"]
	for _, c := range []struct {
		api    *apitest.Client
		series string
		want   float64
	}{
		{authAPI, "kshop_users_registered_total", 2},
		{authAPI, "kshop_users_verified_total", 2},
		{productAPI, `kshop_stock_reservations_total{outcome="reserved"}`, 2},
		{orderAPI, "kshop_orders_created_total", 2},
		{orderAPI, "kshop_orders_paid_total", 1},
		{orderAPI, `kshop_orders_cancelled_total{reason="expired"}`, 1},
		{mailAPI, `kshop_mail_sent_total{template="verification"}`, 2},
		{mailAPI, `kshop_mail_sent_total{template="order_success"}`, 1},
		{mailAPI, `kshop_mail_sent_total{template="payment_reminder"}`, float64(len(reminders))},
		{mailAPI, `kshop_mail_sent_total{template="order_cancelled"}`, 1},
		{orderAPI, `kshop_db_pool_max_connections{pool="primary"}`, 10},
		{productAPI, "outbox_unsent_rows", 0},
		{productAPI, `kshop_consumer_handle_seconds_count{outcome="handled",source="order-created",system="kafka"}`, 2},
		{mailAPI, `kshop_consumer_handle_seconds_count{outcome="handled",source="verification",system="rabbitmq"}`, 2},
	} {
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%s = %v", c.series, c.want), func() bool {
			return scrape(t, c.api, c.series) == c.want
		})
	}
	if scrape(t, gw, `http_requests_total{method="POST",route="/orders",service="gateway",status="201"}`) < 2 {
		t.Error("the gateway's RED metrics do not count the orders")
	}

	checkOneTracePerOrder(t)
	checkDashboardsAndAlertsUseExportedMetrics(t, authAPI, productAPI, orderAPI, mailAPI, gw)
}

// serviceRegistry is what a service binary registers into: its own metrics and
// the Go runtime's, as telemetry.Setup registers them.
func serviceRegistry() *prometheus.Registry {
	registry := prometheus.NewRegistry()
	telemetry.RegisterRuntime(registry)
	return registry
}

var (
	promIdentifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promSkip       = regexp.MustCompile(`\{[^}]*\}|\b(by|without|on|ignoring)\s*\([^)]*\)|\[[^\]]*\]|"[^"]*"`)
	promWords      = map[string]bool{
		"sum": true, "rate": true, "increase": true, "max": true, "min": true, "avg": true, "histogram_quantile": true,
		"deriv": true, "and": true, "or": true, "unless": true, "count": true, "irate": true, "by": true,
	}
)

// checkDashboardsAndAlertsUseExportedMetrics reads every query of the chart's
// dashboards and alerts and checks that each metric it names is one a running
// service exports.
func checkDashboardsAndAlertsUseExportedMetrics(t *testing.T, services ...*apitest.Client) {
	t.Helper()
	exported := map[string]bool{}
	for _, api := range services {
		for _, line := range strings.Split(string(api.Send(t, "GET", "/metrics", "", nil, nil).Raw), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name := line[:strings.IndexAny(line+" ", "{ ")]
			exported[name] = true
		}
	}
	var queries []string
	dashboards, _ := filepath.Glob("../../charts/kshop/files/dashboards/*.json")
	for _, f := range dashboards {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Targets []struct{ Expr string } `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			for _, target := range p.Targets {
				queries = append(queries, target.Expr)
			}
		}
	}
	rawRules, err := os.ReadFile("../../charts/kshop/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string } `json:"rules"`
		} `json:"groups"`
	}
	if err := sigsyaml.Unmarshal(rawRules, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries = append(queries, r.Expr)
		}
	}
	if len(queries) < 30 {
		t.Fatalf("only %d queries found in the dashboards and alerts", len(queries))
	}
	for _, q := range queries {
		for _, name := range promIdentifier.FindAllString(promSkip.ReplaceAllString(q, " "), -1) {
			if promWords[name] || !strings.Contains(name, "_") {
				continue
			}
			if !exported[name] {
				t.Errorf("%s is queried (%s) but no service exports it", name, q)
			}
		}
	}
}

// checkOneTracePerOrder follows the unpaid order: the mail service's reminder
// span must belong to the trace the gateway started when the order was placed,
// through the order service, its outbox, Kafka, the product service, the
// RabbitMQ timer and the mail queue, every span's parent inside that trace.
func checkOneTracePerOrder(t *testing.T) {
	t.Helper()
	var reminder *tracetest.SpanStub
	all := spans.GetSpans()
	for i := range all {
		if all[i].Name == "payment-reminder process" {
			reminder = &all[i]
			break
		}
	}
	if reminder == nil {
		t.Fatal("no span for the mail service's reminder")
	}
	traceID := reminder.SpanContext.TraceID()
	inTrace := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range all {
		if s.SpanContext.TraceID() == traceID {
			inTrace[s.SpanContext.SpanID()] = s
		}
	}
	names := map[string]bool{}
	var roots []string
	for _, s := range inTrace {
		names[s.Name] = true
		if !s.Parent.IsValid() {
			roots = append(roots, s.Name)
		} else if _, ok := inTrace[s.Parent.SpanID()]; !ok {
			t.Errorf("span %q has a parent outside the trace", s.Name)
		}
	}
	if len(roots) != 1 || roots[0] != "POST /orders/*path" && roots[0] != "POST /orders" {
		t.Errorf("roots of the order's trace: %v, want the gateway's POST /orders", roots)
	}
	for _, want := range []string{
		"order-created publish", "order-created process", // order -> Kafka -> product
		"stock-reserved publish",   // product -> Kafka, back to order
		"order-reminder process",   // the RabbitMQ timer, back in order
		"payment-reminder process", // the reminder e-mail in the mail service
	} {
		if !names[want] {
			t.Errorf("the order's trace lacks %q; it has %v", want, keys(names))
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// scrape reads one series from a service's /metrics; -1 when it is absent.
func scrape(t *testing.T, api *apitest.Client, series string) float64 {
	t.Helper()
	r := api.Send(t, "GET", "/metrics", "", nil, nil)
	for _, line := range strings.Split(string(r.Raw), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

func subjects(list []smtptest.Message) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.Subject
	}
	return out
}
