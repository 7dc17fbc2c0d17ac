// Package promtest runs a real Prometheus server (Debian's package, installed
// by hack/install-deps.sh) inside a test: it scrapes the given targets and
// answers PromQL through its HTTP API, so a test can see what a dashboard or
// an alert would show of the processes it started. Counters reads a counter
// straight from a registry, for tests of one package's own metrics.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Target is one process to scrape: Addr (host:port) serves Path (default
// /metrics), and every series scraped from it gets the label service=Service.
type Target struct {
	Service, Addr, Path string
}

// Server is a running Prometheus.
type Server struct {
	URL    string
	client *http.Client
}

// Start runs Prometheus on a free loopback port, scraping every target and
// evaluating the rule files (alerts) each interval, until the test ends. The
// binary is $KSHOP_PROMETHEUS or `prometheus` on the PATH.
func Start(t testing.TB, targets []Target, interval time.Duration, ruleFiles ...string) *Server {
	t.Helper()
	binary := os.Getenv("KSHOP_PROMETHEUS")
	if binary == "" {
		var err error
		if binary, err = exec.LookPath("prometheus"); err != nil {
			t.Fatal("no prometheus binary: install Debian's package (hack/install-deps.sh does) or set KSHOP_PROMETHEUS")
		}
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	for i, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		ruleFiles[i] = abs
	}
	if err := os.WriteFile(config, []byte(Config(targets, interval, ruleFiles...)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(binary,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		// The test's series are minutes old at most: no compaction, no WAL
		// pressure worth tuning, nothing kept after the test.
		"--storage.tsdb.retention.time=1h",
		"--log.level=warn",
	)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	s := &Server{URL: "http://" + addr, client: &http.Client{Timeout: 30 * time.Second}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("prometheus exited at start (%v):\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("prometheus not ready after 30s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Config is the Prometheus configuration scraping the targets. honor_labels
// and the service target label are what the chart's ServiceMonitors set, so
// the series carry the labels they carry in a cluster.
func Config(targets []Target, interval time.Duration, ruleFiles ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", interval, interval, interval)
	if len(ruleFiles) > 0 {
		fmt.Fprintf(&b, "rule_files:\n")
		for _, f := range ruleFiles {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(f))
		}
	}
	fmt.Fprintf(&b, "scrape_configs:\n")
	for _, target := range targets {
		path := target.Path
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&b, "  - job_name: %s\n    honor_labels: true\n    metrics_path: %s\n    static_configs:\n      - targets: [%q]\n        labels: {service: %q}\n",
			strconv.Quote(target.Service), strconv.Quote(path), target.Addr, target.Service)
	}
	return b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Series is one series of a query's answer: its labels and its samples.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Sample is a value at a time; NaN and ±Inf are kept as such.
type Sample struct {
	At    time.Time
	Value float64
}

// String names the series as PromQL prints it.
func (s Series) String() string {
	parts := make([]string, 0, len(s.Labels))
	for k, v := range s.Labels {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Query evaluates expr at one instant.
func (s *Server) Query(ctx context.Context, expr string, at time.Time) ([]Series, error) {
	return s.get(ctx, "/api/v1/query", url.Values{"query": {expr}, "time": {stamp(at)}})
}

// QueryRange evaluates expr from start to end every step, as a dashboard
// panel does over its time range.
func (s *Server) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	return s.get(ctx, "/api/v1/query_range", url.Values{"query": {expr}, "start": {stamp(start)}, "end": {stamp(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}})
}

func stamp(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}

func (s *Server) get(ctx context.Context, path string, query url.Values) ([]Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(query.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var answer struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, fmt.Errorf("prometheus %s: %d, %w", path, resp.StatusCode, err)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("prometheus %s: %s: %s", path, answer.ErrorType, answer.Error)
	}
	if answer.Data.ResultType != "vector" && answer.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("prometheus %s: a %s, not a vector or a matrix", path, answer.Data.ResultType)
	}
	out := make([]Series, 0, len(answer.Data.Result))
	for _, r := range answer.Data.Result {
		series := Series{Labels: r.Metric}
		values := r.Values
		if r.Value != nil {
			values = [][]any{r.Value}
		}
		for _, v := range values {
			sample, err := parseSample(v)
			if err != nil {
				return nil, fmt.Errorf("prometheus %s: %w", path, err)
			}
			series.Samples = append(series.Samples, sample)
		}
		out = append(out, series)
	}
	return out, nil
}

func parseSample(v []any) (Sample, error) {
	if len(v) != 2 {
		return Sample{}, fmt.Errorf("a sample of %d parts", len(v))
	}
	at, ok := v[0].(float64)
	raw, ok2 := v[1].(string)
	if !ok || !ok2 {
		return Sample{}, fmt.Errorf("a sample %v", v)
	}
	value, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return Sample{}, err
	}
	sec, frac := math.Modf(at)
	return Sample{At: time.Unix(int64(sec), int64(frac*1e9)), Value: value}, nil
}

// Up waits until every target has been scraped successfully at least once.
func (s *Server) Up(t testing.TB, targets int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		series, err := s.Query(context.Background(), "up == 1", time.Now())
		if err == nil && len(series) == targets {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %d of %d targets up after 30s (%v)", len(series), targets, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// AlertRule is an alerting rule as Prometheus evaluates it: Health is "ok"
// once an evaluation succeeded ("err" with LastError when it failed,
// "unknown" before the first), State "inactive", "pending" (its expression
// holds, for less than its `for`) or "firing".
type AlertRule struct {
	Name, Query, Health, LastError, State string
	// Active are the label sets of its pending and firing alerts.
	Active []map[string]string
}

// AlertRules lists the alerting rules of the rule files and their states.
func (s *Server) AlertRules(ctx context.Context) ([]AlertRule, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/rules?type=alert", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Query     string `json:"query"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
					Alerts    []struct {
						Labels map[string]string `json:"labels"`
					} `json:"alerts"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, fmt.Errorf("prometheus rules: %d, %w", resp.StatusCode, err)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("prometheus rules: %s", answer.Error)
	}
	var out []AlertRule
	for _, g := range answer.Data.Groups {
		for _, r := range g.Rules {
			rule := AlertRule{Name: r.Name, Query: r.Query, Health: r.Health, LastError: r.LastError, State: r.State}
			for _, a := range r.Alerts {
				rule.Active = append(rule.Active, a.Labels)
			}
			out = append(out, rule)
		}
	}
	return out, nil
}

// EvaluatedAlertRules waits until Prometheus has evaluated each of the want
// alerting rules at least once, and returns them.
func (s *Server) EvaluatedAlertRules(t testing.TB, want int) []AlertRule {
	t.Helper()
	// Two evaluation intervals at most; the rules' interval is the scrape's.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rules, err := s.AlertRules(context.Background())
		evaluated := 0
		for _, r := range rules {
			if r.Health != "unknown" {
				evaluated++
			}
		}
		if err == nil && len(rules) == want && evaluated == want {
			return rules
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %d alerting rules evaluated of %d loaded, %d wanted (%v)", evaluated, len(rules), want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Counters reads the counter name from g, without a Prometheus server: the
// value of each series, keyed by the values of labels in that order, joined by
// spaces ("GET 200" for labels "method", "status"). Series that share those
// values are added up.
func Counters(t testing.TB, g prometheus.Gatherer, name string, labels ...string) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			values := map[string]string{}
			for _, l := range m.GetLabel() {
				values[l.GetName()] = l.GetValue()
			}
			key := make([]string, len(labels))
			for i, l := range labels {
				key[i] = values[l]
			}
			counted[strings.Join(key, " ")] += m.GetCounter().GetValue()
		}
	}
	return counted
}
