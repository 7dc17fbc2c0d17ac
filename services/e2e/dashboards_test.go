package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/promtest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// TestEveryDashboardPanelShowsTheJourneyAndALoad proves what Grafana would
// show of a working platform: a real Prometheus scrapes every service, with
// the labels the chart's ServiceMonitors give, through the customer journey
// and a short load; then every panel of every shipped dashboard is queried
// over that time, as Grafana queries it. Each panel must draw a line that
// moved, except the panels that show failures (e2e.FailurePanels), which
// must stay flat, and the levels that may read 0 at every scrape
// (e2e.LevelPanels), which must draw a line; every alert, evaluated by
// Prometheus from the chart's rule file, must evaluate without an error and
// be silent. The failure panels are checked to move in the chaos test.
func TestEveryDashboardPanelShowsTheJourneyAndALoad(t *testing.T) {
	panels, err := e2e.Panels(e2e.ChartDir)
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := e2e.Alerts(e2e.ChartDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) < 30 || len(alerts) < 5 {
		t.Fatalf("only %d panels and %d alerts found in the chart", len(panels), len(alerts))
	}
	known := map[string]bool{}
	for _, p := range panels {
		known[p.Name()] = true
	}
	for _, named := range []map[string]string{e2e.FailurePanels, e2e.LevelPanels} {
		for name := range named {
			if !known[name] {
				t.Errorf("%q is named in e2e, but no dashboard has it", name)
			}
		}
	}
	for name := range e2e.BacklogPanels {
		if _, ok := e2e.FailurePanels[name]; !ok {
			t.Errorf("backlog panel %q is not among the failure panels", name)
		}
	}

	reminders := []time.Duration{2 * time.Second}
	// A virtual host of its own: the timers of the load's last orders are still
	// waiting when the test ends, and would reach a later test's orders.
	// The product service reads from the test server's replica, as in a
	// cluster with read replicas, so its replica panels have something to draw.
	p := startPlatform(t, e2e.Config{Reminders: reminders, Expiry: 4 * time.Second, AMQPURL: testenv.NewAMQPVHost(t), ProductReplica: true})
	targets := e2e.ScrapeTargets(t, p)
	prom := promtest.Start(t, targets, time.Second, e2e.AlertsFile)
	prom.Up(t, len(targets))
	start := time.Now()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The kubelet's probes, as in a cluster, for as long as the panels are read.
	probing, stopProbes := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() { defer close(probed); e2e.Probe(probing, p, time.Second) }()
	defer func() { stopProbes(); <-probed }()
	if err := loadgen.Journey(ctx, loadgen.JourneyConfig{
		Gateway: p.Gateway.Base, Inbox: e2e.Inbox{Server: p.SMTP}, Admin: p.Admin, AdminPassword: p.AdminPassword,
		Reminders: len(reminders), ExpiryWithin: 30 * time.Second,
	}); err != nil {
		t.Fatalf("the journey: %v", err)
	}
	report, err := loadgen.Load(ctx, loadgen.LoadConfig{
		Gateway: p.Gateway.Base, Inbox: e2e.Inbox{Server: p.SMTP}, Admin: p.Admin, AdminPassword: p.AdminPassword,
		Rate: 25, Duration: 10 * time.Second, MaxInFlight: 32,
		Mix:   map[string]int{loadgen.OpBrowse: 40, loadgen.OpSearch: 20, loadgen.OpOrder: 25, loadgen.OpPay: 15},
		Users: 3, Products: 3,
	})
	if err != nil {
		t.Fatalf("the load: %v", err)
	}
	// A payment sent before the product service reserved the order's stock is
	// 409 "not reserved yet" (the load pays at once); nothing may be a 5xx.
	for op, stats := range report.Ops {
		for status, n := range stats.ByStatus {
			if status != http.StatusConflict {
				t.Errorf("the load: %d %s requests answered %d", n, op, status)
			}
		}
		if stats.Failures > 0 {
			t.Errorf("the load: %d %s requests without an answer", stats.Failures, op)
		}
	}
	// Two more scrapes, so the last requests are in.
	time.Sleep(2500 * time.Millisecond)
	end := time.Now()

	for _, panel := range panels {
		data, err := e2e.QueryPanel(ctx, prom, panel, start, end, time.Second)
		if err != nil {
			t.Error(err)
			continue
		}
		failure, isFailure := e2e.FailurePanels[panel.Name()]
		_, isLevel := e2e.LevelPanels[panel.Name()]
		switch {
		case e2e.BacklogPanels[panel.Name()] && data.Finite == 0:
			t.Errorf("%s draws nothing after the journey and the load: %s", panel.Name(), data.Summary())
		case e2e.BacklogPanels[panel.Name()]:
			t.Logf("%-55s %s (a backlog: may blip while healthy)", panel.Name(), data.Summary())
		case isFailure && data.NonZero:
			t.Errorf("%s moved in a healthy run, yet it shows %s: %s", panel.Name(), failure, data.Summary())
		case isLevel && data.Finite == 0:
			t.Errorf("%s draws nothing after the journey and the load: %s", panel.Name(), data.Summary())
		case !isFailure && !isLevel && !data.NonZero:
			t.Errorf("%s shows no live data after the journey and the load: %s", panel.Name(), data.Summary())
		default:
			t.Logf("%-55s %s", panel.Name(), data.Summary())
		}
	}
	// Prometheus evaluates the chart's alert rules as it would in a cluster:
	// each must evaluate without an error, and none may fire. (An expression
	// that holds for less than its rule's `for` is pending, not firing: a
	// slow minute of a test under the race detector is no alert.)
	for _, rule := range prom.EvaluatedAlertRules(t, len(alerts)) {
		switch {
		case rule.Health != "ok":
			t.Errorf("alert %s does not evaluate: %s %s", rule.Name, rule.Health, rule.LastError)
		case rule.State == "firing":
			t.Errorf("alert %s fires in a healthy run: %v", rule.Name, rule.Active)
		default:
			t.Logf("alert %-25s %s %v", rule.Name, rule.State, rule.Active)
		}
	}
}
