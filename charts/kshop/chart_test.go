// The chart's checks, run by make test: helm lint, the schema, and every
// rendered object applied with a server-side dry run and strict field
// validation to a real kube-apiserver (hack/kube-tools.sh builds it).
package chart_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kshop/kshop/services/platform/kubetest"
)

const namespace = "kshop"

// kubeVersion is what helm renders for; hack/kube-tools.sh builds the same API server.
const kubeVersion = "v1.37.2"

var apiServer *kubetest.APIServer

// chartDir is a copy of the chart whose remote dependencies are stubs: empty
// charts of the same name and version. The registries cannot be reached here,
// and the stubs let helm render everything of ours; the real dependencies are
// fetched (and Chart.lock written) where they can be.
var chartDir string

func TestMain(m *testing.M) {
	if os.Getenv("KSHOP_HELM") == "" {
		fmt.Fprintln(os.Stderr, kubetest.HowToRun)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "kshop-chart-")
	if err == nil {
		err = kubetest.CopyChartWithStubs(".", dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare the chart:", err)
		os.Exit(1)
	}
	chartDir = dir
	// The CRDs of the operators whose objects the chart declares (test fixtures).
	server, err := kubetest.Start("testdata/crds")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiServer = server
	code := m.Run()
	_ = server.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Getenv("KSHOP_HELM"), args...)
	cmd.Dir = chartDir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valueSets are the ways the chart is installed.
var valueSets = map[string][]string{
	"default": nil,
	"kind":    {"-f", "values-kind.yaml"},
	"staging": {"-f", "values-staging.yaml"},
}

func TestLintStrict(t *testing.T) {
	for name, values := range valueSets {
		if out, err := helm(t, append([]string{"lint", "--strict", "."}, values...)...); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

func render(t *testing.T, values ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "kshop", ".", "--namespace", namespace, "--kube-version", kubeVersion}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	objects, err := kubetest.Decode(manifests)
	if err != nil {
		t.Fatal(err)
	}
	return objects
}

func applyDryRun(t *testing.T, objects []*unstructured.Unstructured) error {
	t.Helper()
	return apiServer.DryRun(context.Background(), namespace, objects)
}

func count(objects []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objects {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

func TestEveryRenderedObjectIsAcceptedByTheAPIServer(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			objects := render(t, values...)
			if err := applyDryRun(t, objects); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"Deployment": 6, "Service": 5, "ServiceAccount": 6, "ConfigMap": 7, "NetworkPolicy": 7, "RabbitmqCluster": 1, "Role": 1, "RoleBinding": 1}
			if name == "staging" {
				want["HorizontalPodAutoscaler"], want["PodDisruptionBudget"], want["ServiceMonitor"] = 5, 5, 5
			} else {
				want["HorizontalPodAutoscaler"], want["PodDisruptionBudget"], want["ServiceMonitor"] = 0, 0, 0
			}
			for kind, n := range want {
				if got := count(objects, kind); got != n {
					t.Errorf("%d %s objects, want %d", got, kind, n)
				}
			}
		})
	}
}

// The dry run must be able to fail: a typo'd field in an otherwise valid
// Deployment is refused.
func TestTheDryRunRejectsUnknownFields(t *testing.T) {
	objects := render(t)
	for _, o := range objects {
		if o.GetKind() == "Deployment" {
			_ = unstructured.SetNestedField(o.Object, int64(2), "spec", "replicass")
			if err := applyDryRun(t, []*unstructured.Unstructured{o}); err == nil || !strings.Contains(err.Error(), "replicass") {
				t.Fatalf("a Deployment with spec.replicass was accepted: %v", err)
			}
			return
		}
	}
	t.Fatal("no Deployment rendered")
}

func TestTheSchemaRejectsTyposAndBadValues(t *testing.T) {
	for name, set := range map[string]string{
		"typo in a service key":  "services.gateway.replicass=2",
		"unknown top-level key":  "imagePullPolicy=Always",
		"unknown service":        "services.payments.enabled=true",
		"bad pull policy":        "image.pullPolicy=Sometimes",
		"port below 1024":        "services.auth.port=80",
		"env not KSHOP_":         "services.order.env.PATH=/tmp",
		"TLS mode that is not":   "connections.smtp.tls=ssl",
		"dependency not allowed": "services.mail.allowTo={postgresql,mongodb}",
	} {
		if _, err := helm(t, "template", "kshop", ".", "--kube-version", kubeVersion, "--set", set); err == nil {
			t.Errorf("%s: --set %s was accepted", name, set)
		} else if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
			t.Errorf("%s: failed, but not on the schema: %v", name, err)
		}
	}
}

func TestConfigChangesRollThePods(t *testing.T) {
	checksum := func(values ...string) string {
		for _, o := range render(t, values...) {
			if o.GetKind() == "Deployment" && o.GetName() == "kshop-order" {
				v, _, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
				return v
			}
		}
		t.Fatal("no order Deployment")
		return ""
	}
	if checksum() == checksum("--set", "common.logLevel=debug") {
		t.Fatal("a configuration change does not change the pods' checksum annotation")
	}
}

// Every dependency can be switched off and names a version seen published.
func TestDependenciesAreOptionalAndPublished(t *testing.T) {
	deps, err := kubetest.ChartDependencies("Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	published := map[string]bool{}
	file, err := os.Open("testdata/published-versions.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && !strings.HasPrefix(fields[0], "#") {
			published[fields[0]+" "+fields[1]] = true
		}
	}
	if len(deps) != 13 {
		t.Fatalf("%d dependencies, want 4 databases, kafka, redis-cluster, the RabbitMQ operator, mailpit and 5 for observability", len(deps))
	}
	observability := map[string]bool{"kube-prometheus-stack": true, "loki": true, "alloy": true, "tempo": true, "opentelemetry-collector": true}
	for _, d := range deps {
		name := d.Name
		if d.Alias != "" {
			name = d.Alias
		}
		if observability[name] && d.Condition == "observability.enabled" {
			// switched together
		} else if d.Condition != name+".enabled" {
			t.Errorf("%s: condition %q, want %s.enabled", name, d.Condition, name)
		}
		if !published[d.Name+" "+d.Version] {
			t.Errorf("%s %s is not a version seen published (testdata/published-versions.txt)", d.Name, d.Version)
		}
	}
	if _, err := helm(t, "template", "kshop", ".", "--kube-version", kubeVersion,
		"--set", "authdb.enabled=false,productdb.enabled=false,orderdb.enabled=false,maildb.enabled=false,kafka.enabled=false,redis-cluster.enabled=false,rabbitmq-cluster-operator.enabled=false,mailpit.enabled=false,rabbitmq.enabled=false"); err != nil {
		t.Fatalf("the chart does not render with every dependency off: %v", err)
	}
}

func TestObservabilityObjects(t *testing.T) {
	objects := render(t, "--set", "observability.enabled=true")
	if err := applyDryRun(t, objects); err != nil {
		t.Fatal(err)
	}
	dashboards := 0
	for _, o := range objects {
		if o.GetKind() == "ConfigMap" && o.GetLabels()["grafana_dashboard"] == "1" {
			dashboards++
		}
	}
	if dashboards != 6 || count(objects, "PrometheusRule") != 1 || count(objects, "ServiceMonitor") != 5 {
		t.Fatalf("%d dashboards, %d PrometheusRules, %d ServiceMonitors; want 6, 1, 5",
			dashboards, count(objects, "PrometheusRule"), count(objects, "ServiceMonitor"))
	}
}

func TestDashboardsAreValidJSON(t *testing.T) {
	files, err := filepath.Glob("files/dashboards/*.json")
	if err != nil || len(files) != 6 {
		t.Fatalf("dashboards %v, %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID    string `json:"uid"`
			Title  string `json:"title"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Errorf("%s: uid %q, title %q, %d panels", f, d.UID, d.Title, len(d.Panels))
		}
		for _, p := range d.Panels {
			if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
		}
	}
}

// promtool (Debian's, unpacked by hack/tools.sh) checks the alert rules.
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := os.Getenv("KSHOP_PROMTOOL")
	if promtool == "" {
		t.Fatal("KSHOP_PROMTOOL is not set: run with `make test`, or export KSHOP_PROMTOOL=$(hack/tools.sh promtool)")
	}
	out, err := exec.Command(promtool, "check", "rules", "files/alerts.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
