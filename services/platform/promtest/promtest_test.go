package promtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/promtest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// TestScrapesTheTargetsAndAnswersQueries serves a counter that grows, lets a
// real Prometheus scrape it, and reads it back: the service label is the
// target's, a label the target sets itself wins (honor_labels), a rate is
// positive, and a bad query is an error rather than an empty answer.
func TestScrapesTheTargetsAndAnswersQueries(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/custom-metrics" {
			http.NotFound(w, r)
			return
		}
		n := hits.Add(10)
		fmt.Fprintf(w, "# TYPE demo_total counter\ndemo_total %d\n# TYPE demo_labelled gauge\ndemo_labelled{service=\"own\"} 1\n", n)
	}))
	defer target.Close()
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: demo
    rules:
      - alert: DemoCounts
        expr: demo_total > 0
      - alert: DemoCountsForLong
        expr: demo_total > 0
        for: 1h
      - alert: DemoNever
        expr: demo_total < 0
`), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, []promtest.Target{{Service: "demo", Addr: strings.TrimPrefix(target.URL, "http://"), Path: "/custom-metrics"}}, 200*time.Millisecond, rules)
	prom.Up(t, 1)

	ctx := context.Background()
	testenv.WaitFor(t, 20*time.Second, "a positive rate of demo_total", func() bool {
		series, err := prom.Query(ctx, `rate(demo_total{service="demo"}[5s])`, time.Now())
		return err == nil && len(series) == 1 && series[0].Samples[0].Value > 0
	})
	own, err := prom.Query(ctx, `demo_labelled`, time.Now())
	if err != nil || len(own) != 1 || own[0].Labels["service"] != "own" {
		t.Errorf("a label of the target's own: %v %v", own, err)
	}
	time.Sleep(time.Second)
	ranged, err := prom.QueryRange(ctx, `demo_total`, time.Now().Add(-time.Second), time.Now(), 200*time.Millisecond)
	if err != nil || len(ranged) != 1 || len(ranged[0].Samples) < 4 || ranged[0].Samples[len(ranged[0].Samples)-1].Value <= ranged[0].Samples[0].Value {
		t.Errorf("a range query: %v %v", ranged, err)
	}
	if _, err := prom.Query(ctx, `sum(rate(demo_total[5s]`, time.Now()); err == nil {
		t.Error("a malformed query was no error")
	}

	states := map[string]string{}
	for _, r := range prom.EvaluatedAlertRules(t, 3) {
		if r.Health != "ok" {
			t.Errorf("alert %s: health %s %s", r.Name, r.Health, r.LastError)
		}
		states[r.Name] = r.State
	}
	if states["DemoCounts"] != "firing" || states["DemoCountsForLong"] != "pending" || states["DemoNever"] != "inactive" {
		t.Errorf("alert states %v, want firing, pending (its for: not over), inactive", states)
	}
}
