package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/promtest"
)

// ScrapeTargets are the platform's processes as Prometheus scrapes them, each
// labelled with its short service name as the chart's ServiceMonitors label
// them. Where a service serves its metrics is decided here alone.
func ScrapeTargets(t *testing.T, p *Platform) []promtest.Target {
	t.Helper()
	var targets []promtest.Target
	// The metrics ports, as the ServiceMonitors name them: the API ports serve none.
	for _, s := range []struct {
		service, base string
	}{{"gateway", p.Metrics["gateway"].Base}, {"auth", p.Metrics["auth"].Base}, {"product", p.Metrics["product"].Base},
		{"order", p.Metrics["order"].Base}, {"mail", p.Metrics["mail"].Base}} {
		u, err := url.Parse(s.base)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, promtest.Target{Service: s.service, Addr: u.Host, Path: "/metrics"})
	}
	return targets
}

// Probe asks every service's /healthz and /readyz on its API port every
// interval until ctx ends, as the kubelet's probes do in a cluster. The
// services' request panels count them: the mail service serves nothing else,
// since Prometheus scrapes the metrics ports, which no panel counts.
func Probe(ctx context.Context, p *Platform, every time.Duration) {
	for ctx.Err() == nil {
		for _, c := range []*apitest.Client{p.Gateway, p.Auth, p.Product, p.Order, p.Mail} {
			for _, path := range []string{"/healthz", "/readyz"} {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
				if err != nil {
					return
				}
				if resp, err := c.HTTP.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// Panel is one panel of a shipped dashboard, its queries with the
// dashboard's template variables filled in.
type Panel struct {
	Dashboard, Title string
	Exprs            []string
}

// Name is how the tests name a panel: "order / Cancellations by reason".
func (p Panel) Name() string { return p.Dashboard + " / " + p.Title }

// Alert is one alerting rule the chart ships.
type Alert struct{ Name, Expr string }

// ChartDir is the chart, from a package folder of services/.
const ChartDir = "../../charts/kshop"

// Grafana's own variables, as a dashboard of a few minutes' range fills them.
var grafanaVariables = map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}

var templateVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// Panels reads every panel of every dashboard in the chart's
// files/dashboards, rows' panels included, and fills in each dashboard's
// template variables with their current (or first) value.
func Panels(chartDir string) ([]Panel, error) {
	files, err := filepath.Glob(filepath.Join(chartDir, "files", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no dashboards in %s: %v", chartDir, err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var out []Panel
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Panels     []json.RawMessage `json:"panels"`
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Type    string `json:"type"`
					Current struct {
						Value any `json:"value"`
					} `json:"current"`
					Options []struct {
						Value any `json:"value"`
					} `json:"options"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		values := map[string]string{}
		for k, v := range grafanaVariables {
			values[k] = v
		}
		for _, v := range d.Templating.List {
			value := v.Current.Value
			if value == nil && len(v.Options) > 0 {
				value = v.Options[0].Value
			}
			if list, ok := value.([]any); ok { // a multi-value variable: a regex alternative
				parts := make([]string, len(list))
				for i, item := range list {
					parts[i] = fmt.Sprint(item)
				}
				value = strings.Join(parts, "|")
			}
			if value != nil {
				values[v.Name] = fmt.Sprint(value)
			}
		}
		dashboard := strings.TrimSuffix(filepath.Base(f), ".json")
		var walk func([]json.RawMessage) error
		walk = func(raws []json.RawMessage) error {
			for _, r := range raws {
				var p panel
				if err := json.Unmarshal(r, &p); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				if err := walk(p.Panels); err != nil {
					return err
				}
				if len(p.Targets) == 0 {
					continue
				}
				out = append(out, Panel{Dashboard: dashboard, Title: p.Title})
				for _, target := range p.Targets {
					var missing []string
					expr := templateVariable.ReplaceAllStringFunc(target.Expr, func(ref string) string {
						m := templateVariable.FindStringSubmatch(ref)
						name := m[1] + m[2] + m[3]
						value, ok := values[name]
						if !ok {
							missing = append(missing, name)
						}
						return value
					})
					if len(missing) > 0 {
						return fmt.Errorf("%s, panel %q: no value for the variables %v", f, p.Title, missing)
					}
					out[len(out)-1].Exprs = append(out[len(out)-1].Exprs, expr)
				}
			}
			return nil
		}
		if err := walk(d.Panels); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AlertsFile is the chart's rule file, from a package folder of services/.
const AlertsFile = ChartDir + "/files/alerts.yaml"

// Alerts reads every alerting rule of the chart's files/alerts.yaml (which
// templates/prometheusrule.yaml ships as a PrometheusRule).
func Alerts(chartDir string) ([]Alert, error) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yaml"))
	if err != nil {
		return nil, err
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := sigsyaml.Unmarshal(raw, &rules); err != nil {
		return nil, err
	}
	var out []Alert
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, Alert{Name: r.Alert, Expr: r.Expr})
			}
		}
	}
	return out, nil
}

// PanelData is what a panel would draw over a time range: each query's
// series, and whether any sample moved off zero.
type PanelData struct {
	Series  []promtest.Series
	NonZero bool
	// Finite counts the samples a graph would draw (not NaN, not ±Inf).
	Finite int
}

// QueryPanel evaluates every query of a panel from start to end, as Grafana
// would over that range.
func QueryPanel(ctx context.Context, prom *promtest.Server, p Panel, start, end time.Time, step time.Duration) (PanelData, error) {
	var d PanelData
	for _, expr := range p.Exprs {
		series, err := prom.QueryRange(ctx, expr, start, end, step)
		if err != nil {
			return d, fmt.Errorf("%s: %q: %w", p.Name(), expr, err)
		}
		d.Series = append(d.Series, series...)
		for _, s := range series {
			for _, sample := range s.Samples {
				if math.IsNaN(sample.Value) || math.IsInf(sample.Value, 0) {
					continue
				}
				d.Finite++
				if sample.Value != 0 {
					d.NonZero = true
				}
			}
		}
	}
	return d, nil
}

// Summary is a short account of a panel's data for test logs.
func (d PanelData) Summary() string {
	names := make([]string, 0, len(d.Series))
	for _, s := range d.Series {
		last := math.NaN()
		if n := len(s.Samples); n > 0 {
			last = s.Samples[n-1].Value
		}
		names = append(names, fmt.Sprintf("%s=%.3g", s, last))
	}
	sort.Strings(names)
	if len(names) > 4 {
		names = append(names[:4], fmt.Sprintf("and %d more", len(names)-4))
	}
	return fmt.Sprintf("%d series, %d samples, moved: %v: %s", len(d.Series), d.Finite, d.NonZero, strings.Join(names, ", "))
}

// FailurePanels are the panels that show something only when something
// fails, each with the failure that makes it move. In a healthy run they
// stay at zero (their series exist from the start, so the line is flat);
// the chaos test (services/chaos) checks that the ones its faults cause
// move, see ChaosMoves.
var FailurePanels = map[string]string{
	"auth / Error ratio (5xx)":                     "auth answering 5xx (its database or Redis down)",
	"gateway / Error ratio (5xx)":                  "the gateway answering 5xx (an upstream down or slow)",
	"mail / Error ratio (5xx)":                     "the mail service answering 5xx",
	"order / Error ratio (5xx)":                    "the order service answering 5xx (its database down)",
	"product / Error ratio (5xx)":                  "the product service answering 5xx (its database down)",
	"overview / 5xx ratio by service":              "any service answering 5xx",
	"gateway / Rate-limited requests by group":     "a client beyond KSHOP_GATEWAY_RATE_LIMITS",
	"gateway / Upstream errors":                    "a service unreachable or slower than its timeout",
	"gateway / Rate limiter unavailable":           "Redis unreachable from the gateway",
	"mail / Failures, retries and dead letters":    "e-mails that could not be sent at once: the SMTP relay refusing or unreachable, the mail database down",
	"overview / Outbox rows waiting":               "a broker that does not confirm: rows pile up",
	"overview / Oldest unsent outbox row":          "a broker that does not confirm: the oldest row ages",
	"overview / Consumer retries and dead letters": "a consumer's handler failing (its database down), and dead letters when it keeps failing",
	"overview / Outbox publish failures":           "a broker that refuses a publish, or stays away longer than the relay's publish timeout (30 s)",
}

// LevelPanels are gauges whose healthy value may be 0 at every scrape of a
// short test: they must draw a line, not necessarily one that moved.
var LevelPanels = map[string]string{
	"auth / Database connections in use":    "connections held at the scrape's instant; an idle pool holds none",
	"product / Database connections in use": "connections held at the scrape's instant; an idle pool holds none",
	"order / Database connections in use":   "connections held at the scrape's instant; an idle pool holds none",
	"mail / Database connections in use":    "connections held at the scrape's instant; an idle pool holds none",
	"product / Read replica lag":            "seconds the replica is behind; a replica that keeps up reads 0 at every check",
}

// BacklogPanels are failure panels (in FailurePanels) of a backlog's size or
// age: a healthy relay publishes within its poll interval, so a scrape may
// catch a row or two waiting in a busy healthy run. There they must draw a
// line, and their alert (KshopOutboxLagGrowing) must stay silent; a broker's
// outage must move them (the chaos test).
var BacklogPanels = map[string]bool{
	"overview / Outbox rows waiting":      true,
	"overview / Oldest unsent outbox row": true,
}
