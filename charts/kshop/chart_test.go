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

// The release and namespace the tests install as, unless a test says otherwise.
const (
	releaseName = "kshop"
	namespace   = "kshop"
)

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

// valueSets are the ways the chart is installed (docs/kubernetes.md).
var valueSets = map[string][]string{
	"default": nil,
	"kind":    {"-f", "values-kind.yaml"},
	"staging": {"-f", "values-staging.yaml"},
	// staging with managed services: every dependency outside the cluster
	"external": {"-f", "values-staging.yaml", "-f", "values-external.yaml"},
	// the local test cluster (hack/cluster.sh): dependencies on the host
	"local": {"-f", "values-local.yaml"},
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
	return renderAs(t, releaseName, namespace, values...)
}

// renderAs renders the chart as `helm template` does for release in namespace.
func renderAs(t *testing.T, release, ns string, values ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, ".", "--namespace", ns, "--kube-version", kubeVersion}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

// renderError renders and returns the failure (nil when the render succeeds).
func renderError(t *testing.T, values ...string) error {
	t.Helper()
	_, err := helm(t, append([]string{"template", releaseName, ".", "--namespace", namespace, "--kube-version", kubeVersion}, values...)...)
	return err
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

func find(objects []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
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
	// What each value set renders of the chart's own (the dependencies are stubs).
	// Every set: 6 Deployments (5 services, the controller), their Services,
	// ServiceAccounts and ConfigMaps (the controller has no ConfigMap, and two
	// topology ConfigMaps are added), one Role and RoleBinding, the controller's
	// election Lease.
	base := map[string]int{"Deployment": 6, "Service": 6, "ServiceAccount": 6, "ConfigMap": 7, "Role": 1, "RoleBinding": 1, "Lease": 1}
	want := map[string]map[string]int{
		// default deny + 5 services + controller + the loadgen (test) pods; the
		// RabbitmqCluster; the Redis password and smoke admin Secrets; the helm
		// test Pod.
		"default": {"NetworkPolicy": 8, "RabbitmqCluster": 1, "Secret": 2, "Pod": 1},
		// and the front door: an Ingress (ingress-nginx, hack/kind.sh)
		"kind": {"NetworkPolicy": 8, "RabbitmqCluster": 1, "Secret": 2, "Pod": 1, "Ingress": 1},
		// HPAs from 2, PDBs for them and the 2 controllers; no smoke test
		// (no Mailpit), no ServiceMonitor (the API server of this test, like a
		// cluster without the Prometheus Operator, is not asked: helm template).
		// and a RabbitMQ user for each of auth, mail, order and the
		// controller: User, Permission and the Secret of its password.
		"staging":  {"NetworkPolicy": 7, "RabbitmqCluster": 1, "Secret": 5, "User": 4, "Permission": 4, "HorizontalPodAutoscaler": 5, "PodDisruptionBudget": 6},
		"external": {"NetworkPolicy": 7, "HorizontalPodAutoscaler": 5, "PodDisruptionBudget": 6},
		// the gateway's HPA from 1, a PDB for product's 2 replicas
		"local": {"NetworkPolicy": 8, "Pod": 1, "Secret": 1, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1},
	}
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			objects := render(t, values...)
			if err := applyDryRun(t, objects); err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for k, n := range base {
				kinds[k] = n
			}
			for k, n := range want[name] {
				kinds[k] = n
			}
			for _, o := range objects {
				if _, ok := kinds[o.GetKind()]; !ok {
					kinds[o.GetKind()] = 0 // an unexpected kind fails below
				}
			}
			for kind, n := range kinds {
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
		"the old kafkaBrokers":   "connections.kafkaBrokers=kafka:9092",
		"SASL mechanism unknown": "connections.kafka.sasl.mechanism=GSSAPI",
		"sslmode unknown":        "connections.databases.auth.sslmode=on",
		"preStop of minutes":     "rollout.preStopSeconds=600",
		"inbox without a scheme": "smokeTest.inboxURL=mailpit:8025",
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
	// values-local.yaml switches every dependency off and names each outside.
	// Nothing of the chart's own that stands for a dependency stays: the
	// RabbitmqCluster, the Redis Cluster's password Secret (the smoke test's
	// admin is the release's own, not a dependency's).
	objects := render(t, "-f", "values-local.yaml")
	secrets := count(objects, "Secret")
	if find(objects, "Secret", releaseName+"-smoke-admin") != nil {
		secrets--
	}
	if n, m := count(objects, "RabbitmqCluster"), secrets; n != 0 || m != 0 {
		t.Errorf("with every dependency off: %d RabbitmqClusters, %d Secrets", n, m)
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
	// A ServiceMonitor per service and one for the controller.
	if dashboards != 6 || count(objects, "PrometheusRule") != 1 || count(objects, "ServiceMonitor") != 6 {
		t.Fatalf("%d dashboards, %d PrometheusRules, %d ServiceMonitors; want 6, 1, 6",
			dashboards, count(objects, "PrometheusRule"), count(objects, "ServiceMonitor"))
	}
	// The services send their traces to the release's own collector.
	cm := find(objects, "ConfigMap", "kshop-order")
	if cm == nil {
		t.Fatal("no ConfigMap kshop-order")
	}
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "KSHOP_ORDER_OTEL_EXPORTER_OTLP_ENDPOINT"); got != "http://kshop-opentelemetry-collector:4317" {
		t.Errorf("KSHOP_ORDER_OTEL_EXPORTER_OTLP_ENDPOINT=%q, want the release's collector", got)
	}
}

// ServiceMonitors and the PrometheusRule exist only where the cluster serves
// their API (helm passes what it serves as .Capabilities; --api-versions stands
// in for it here) or where observability.enabled installs the operator's CRDs.
func TestMonitoringObjectsFollowTheCRDs(t *testing.T) {
	cases := []struct {
		name           string
		values         []string
		monitors, rule int
	}{
		{"staging, no Prometheus Operator", []string{"-f", "values-staging.yaml"}, 0, 0},
		{"staging, the operator's CRDs served", []string{"-f", "values-staging.yaml",
			"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"}, 6, 1},
		{"CRDs served but serviceMonitor off", []string{"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"}, 0, 0},
		{"observability on brings the CRDs", []string{"--set", "observability.enabled=true"}, 6, 1},
	}
	for _, c := range cases {
		objects := render(t, c.values...)
		if m, r := count(objects, "ServiceMonitor"), count(objects, "PrometheusRule"); m != c.monitors || r != c.rule {
			t.Errorf("%s: %d ServiceMonitors and %d PrometheusRules, want %d and %d", c.name, m, r, c.monitors, c.rule)
		}
	}
	// The controller's metrics are scraped through a Service of its own.
	objects := render(t, "--set", "observability.enabled=true")
	sm := find(objects, "ServiceMonitor", "kshop-controller")
	svc := find(objects, "Service", "kshop-controller")
	if sm == nil || svc == nil {
		t.Fatal("no ServiceMonitor or Service kshop-controller")
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(ports) != 1 || len(endpoints) != 1 || ports[0].(map[string]any)["name"] != endpoints[0].(map[string]any)["port"] {
		t.Errorf("the controller's ServiceMonitor endpoints %v do not name its Service's port %v", endpoints, ports)
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
