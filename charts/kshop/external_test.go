package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kshop/kshop/services/platform/kubetest"
)

// With a dependency switched off, a connection value left empty fails the
// render, and the message names the value to set.
func TestAMissingExternalValueFailsNamingIt(t *testing.T) {
	local := []string{"-f", "values-local.yaml"}
	for value, set := range map[string][]string{
		"connections.databases.order.host":                 {"--set", "connections.databases.order.host="},
		"connections.databases.auth.passwordSecret.name":   {"--set", "connections.databases.auth.passwordSecret.name="},
		"connections.kafka.brokers":                        {"--set", "connections.kafka.brokers="},
		"connections.redis.addrs":                          {"--set", "connections.redis.addrs="},
		"connections.redis.passwordSecret.name":            {"--set", "connections.redis.passwordSecret.name="},
		"connections.amqp.host":                            {"--set", "connections.amqp.host="},
		"connections.amqp.userSecret.name":                 {"--set", "connections.amqp.userSecret.name="},
		"connections.smtp.host":                            {"--set", "connections.smtp.host="},
		"smokeTest.inboxURL":                               {"--set", "smokeTest.inboxURL="},
		"connections.kafka.sasl.username":                  {"--set", "connections.kafka.sasl.mechanism=PLAIN"},
		"connections.smtp.passwordSecret.name":             {"--set", "connections.smtp.username=kshop"},
		"rollout.terminationGracePeriodSeconds":            {"--set", "rollout.terminationGracePeriodSeconds=20"},
		"connections.kafka.brokers: \"kafka\" is not host": {"--set", "connections.kafka.brokers=kafka"},
	} {
		err := renderError(t, append(local, set...)...)
		if err == nil {
			t.Errorf("%v: rendered", set)
		} else if !strings.Contains(err.Error(), value) {
			t.Errorf("%v: the failure does not name %s:\n%v", set, value, err)
		}
	}
	// Staging without Mailpit needs the SMTP relay given.
	if err := renderError(t, "--set", "mailpit.enabled=false,smokeTest.enabled=false"); err == nil || !strings.Contains(err.Error(), "connections.smtp.host") {
		t.Errorf("mail without Mailpit and without a relay: %v", err)
	}
	// A dependency nothing enabled uses need not be named.
	if err := renderError(t, append(local, "--set", "connections.redis.addrs=,services.gateway.enabled=false,services.auth.enabled=false,services.order.enabled=false")...); err != nil {
		t.Errorf("Redis unused yet required: %v", err)
	}
}

// configOf is what a service's pods read: its ConfigMap and its env.
func configOf(t *testing.T, objects []*unstructured.Unstructured, service string) (data map[string]string, secrets map[string]string, env map[string]string) {
	t.Helper()
	cm := find(objects, "ConfigMap", releaseName+"-"+service)
	if cm != nil {
		data, _, _ = unstructured.NestedStringMap(cm.Object, "data")
	}
	d := find(objects, "Deployment", releaseName+"-"+service)
	if d == nil {
		t.Fatalf("no Deployment %s-%s", releaseName, service)
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	secrets, env = map[string]string{}, map[string]string{}
	for _, e := range asSlice(containers[0].(map[string]any)["env"]) {
		e := e.(map[string]any)
		name := e["name"].(string)
		if ref, ok, _ := unstructured.NestedStringMap(e, "valueFrom", "secretKeyRef"); ok {
			secrets[name] = ref["name"] + "/" + ref["key"]
		} else if v, ok := e["value"].(string); ok {
			env[name] = v
		}
	}
	return data, secrets, env
}

// values-external.yaml: every setting of a managed dependency reaches the
// services under the names they read, and every password comes from a Secret.
func TestExternalModeRendersEverySetting(t *testing.T) {
	objects := render(t, valueSets["external"]...)
	if err := applyDryRun(t, objects); err != nil {
		t.Fatal(err)
	}
	data, secrets, env := configOf(t, objects, "order")
	for key, want := range map[string]string{
		"KSHOP_ORDER_DATABASE_URL":         "postgres://kshop_order@order.db.example.internal:5432/order?sslmode=verify-full",
		"KSHOP_ORDER_KAFKA_BROKERS":        "b-1.kafka.example.internal:9096,b-2.kafka.example.internal:9096,b-3.kafka.example.internal:9096",
		"KSHOP_ORDER_KAFKA_TLS":            "true",
		"KSHOP_ORDER_KAFKA_TLS_CA_FILE":    "/etc/kshop/tls-ca/ca.crt",
		"KSHOP_ORDER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
		"KSHOP_ORDER_KAFKA_SASL_USERNAME":  "kshop",
		"KSHOP_ORDER_REDIS_ADDRS":          "clustercfg.redis.example.internal:6379",
		"KSHOP_ORDER_REDIS_CLUSTER":        "true",
		"KSHOP_ORDER_REDIS_TLS":            "true",
		"KSHOP_ORDER_REDIS_USERNAME":       "kshop",
		"KSHOP_ORDER_AMQP_URL":             "amqps://rabbitmq.example.internal:5671/kshop",
	} {
		if data[key] != want {
			t.Errorf("%s=%q, want %q", key, data[key], want)
		}
	}
	for key, want := range map[string]string{
		"PGPASSWORD":                      "postgres-order/password",
		"KSHOP_ORDER_REDIS_PASSWORD":      "redis-credentials/password",
		"KSHOP_ORDER_KAFKA_SASL_PASSWORD": "kafka-credentials/password",
		"KSHOP_ORDER_AMQP_USERNAME":       "rabbitmq-credentials/username",
		"KSHOP_ORDER_AMQP_PASSWORD":       "rabbitmq-credentials/password",
	} {
		if secrets[key] != want {
			t.Errorf("%s from Secret %q, want %q", key, secrets[key], want)
		}
	}
	if env["SSL_CERT_FILE"] != "/etc/kshop/tls-ca/ca.crt" {
		t.Errorf("SSL_CERT_FILE=%q: the CA bundle is not trusted", env["SSL_CERT_FILE"])
	}
	mail, mailSecrets, _ := configOf(t, objects, "mail")
	if mail["KSHOP_MAIL_SMTP_HOST"] != "smtp.example.internal" || mail["KSHOP_MAIL_SMTP_PORT"] != "587" || mail["KSHOP_MAIL_SMTP_TLS"] != "starttls" ||
		mail["KSHOP_MAIL_SMTP_USERNAME"] != "kshop" || mailSecrets["KSHOP_MAIL_SMTP_PASSWORD"] != "smtp-relay/password" {
		t.Errorf("SMTP: %v, password %q", mail, mailSecrets["KSHOP_MAIL_SMTP_PASSWORD"])
	}
	_, ctlSecrets, ctlEnv := configOf(t, objects, "controller")
	if ctlEnv["KSHOP_CONTROLLER_KAFKA_SASL_MECHANISM"] != "SCRAM-SHA-512" || ctlSecrets["KSHOP_CONTROLLER_KAFKA_SASL_PASSWORD"] != "kafka-credentials/password" ||
		ctlEnv["KSHOP_CONTROLLER_AMQP_URL"] != "amqps://rabbitmq.example.internal:5671/kshop" || ctlSecrets["KSHOP_CONTROLLER_AMQP_PASSWORD"] != "rabbitmq-credentials/password" {
		t.Errorf("controller: env %v, secrets %v", ctlEnv, ctlSecrets)
	}
	// No password anywhere in a ConfigMap or a plain env value.
	for _, o := range objects {
		if o.GetKind() == "ConfigMap" {
			d, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for k := range d {
				if strings.Contains(k, "PASSWORD") {
					t.Errorf("ConfigMap %s carries %s", o.GetName(), k)
				}
			}
		}
	}
}

// values-local.yaml: the local test cluster's hosts, ports and Secrets.
func TestLocalValues(t *testing.T) {
	objects := render(t, "-f", "values-local.yaml")
	data, secrets, _ := configOf(t, objects, "order")
	for key, want := range map[string]string{
		"KSHOP_ORDER_DATABASE_URL":  "postgres://kshop@10.213.0.1:13432/order?sslmode=disable",
		"KSHOP_ORDER_REDIS_ADDRS":   "10.213.0.1:13379",
		"KSHOP_ORDER_REDIS_CLUSTER": "false",
		"KSHOP_ORDER_KAFKA_BROKERS": "10.213.0.1:13092",
		"KSHOP_ORDER_AMQP_URL":      "amqp://10.213.0.1:13672/",
	} {
		if data[key] != want {
			t.Errorf("%s=%q, want %q", key, data[key], want)
		}
	}
	if secrets["PGPASSWORD"] != "kshop-external-postgres/password" || secrets["KSHOP_ORDER_REDIS_PASSWORD"] != "kshop-external-redis/password" ||
		secrets["KSHOP_ORDER_AMQP_USERNAME"] != "kshop-external-rabbitmq/username" {
		t.Errorf("secrets %v", secrets)
	}
	mail, _, _ := configOf(t, objects, "mail")
	if mail["KSHOP_MAIL_SMTP_HOST"] != "10.213.0.1" || mail["KSHOP_MAIL_SMTP_PORT"] != "13025" {
		t.Errorf("SMTP %s:%s", mail["KSHOP_MAIL_SMTP_HOST"], mail["KSHOP_MAIL_SMTP_PORT"])
	}
	// Images built on the machine, never pulled.
	for _, o := range objects {
		if o.GetKind() != "Deployment" && o.GetKind() != "Pod" {
			continue
		}
		path := []string{"spec", "template", "spec", "containers"}
		if o.GetKind() == "Pod" {
			path = []string{"spec", "containers"}
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, path...)
		for _, c := range containers {
			c := c.(map[string]any)
			if !strings.HasPrefix(c["image"].(string), "kshop.local/kshop/") || c["imagePullPolicy"] != "Never" {
				t.Errorf("%s %s: image %v, pull policy %v", o.GetKind(), o.GetName(), c["image"], c["imagePullPolicy"])
			}
		}
	}
	// The gateway scales from 1 on CPU alone and comes back down soon.
	hpa := find(objects, "HorizontalPodAutoscaler", releaseName+"-gateway")
	if hpa == nil {
		t.Fatal("no HPA for the gateway")
	}
	metrics, _, _ := unstructured.NestedSlice(hpa.Object, "spec", "metrics")
	minReplicas, maxReplicas := number(hpa.Object, "spec", "minReplicas"), number(hpa.Object, "spec", "maxReplicas")
	window := number(hpa.Object, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds")
	if minReplicas != 1 || maxReplicas < 2 || len(metrics) != 1 || window < 1 || window > 60 {
		t.Errorf("gateway HPA: min %v, max %v, %d metrics, scale-down window %vs", minReplicas, maxReplicas, len(metrics), window)
	}
	if find(objects, "PodDisruptionBudget", releaseName+"-product") == nil {
		t.Error("product runs 2 replicas without a PodDisruptionBudget")
	}
	// Requests that fit a 2-CPU node beside CoreDNS and metrics-server.
	var milli int64
	for _, o := range objects {
		if o.GetKind() == "Deployment" {
			replicas := int64(number(o.Object, "spec", "replicas"))
			if _, found, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); !found {
				replicas = 3 // an HPA's maximum
			}
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				cpu, _, _ := unstructured.NestedString(c.(map[string]any), "resources", "requests", "cpu")
				milli += replicas * milliCPU(t, cpu)
			}
		}
	}
	if milli > 1000 {
		t.Errorf("the release requests %dm CPU at its largest, more than half the node", milli)
	}
}

// number reads a number of a decoded manifest (JSON numbers: float64).
func number(obj map[string]any, path ...string) float64 {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	return 0
}

func milliCPU(t *testing.T, q string) int64 {
	t.Helper()
	var n int64
	if strings.HasSuffix(q, "m") {
		for _, r := range strings.TrimSuffix(q, "m") {
			n = n*10 + int64(r-'0')
		}
		return n
	}
	for _, r := range q {
		n = n*10 + int64(r-'0')
	}
	return n * 1000
}

// Rollouts: the kubelet's own preStop sleep, then the service's graceful
// shutdown, both inside the grace period.
func TestPodsStopGracefully(t *testing.T) {
	for name, values := range valueSets {
		objects := render(t, values...)
		for _, o := range objects {
			service := strings.TrimPrefix(o.GetName(), releaseName+"-")
			if o.GetKind() != "Deployment" || service == "controller" {
				continue
			}
			spec, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
			grace := number(spec, "terminationGracePeriodSeconds")
			c := spec["containers"].([]any)[0].(map[string]any)
			sleep := number(c, "lifecycle", "preStop", "sleep", "seconds")
			data, _, _ := configOf(t, objects, service)
			shutdown := data["KSHOP_"+strings.ToUpper(service)+"_SHUTDOWN_TIMEOUT"]
			if sleep < 1 || shutdown != "15s" || grace <= sleep+15 {
				t.Errorf("%s %s: preStop sleep %vs, shutdown %q, grace %vs", name, o.GetName(), sleep, shutdown, grace)
			}
			if u, found, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); !found || number(o.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable") != 0 {
				t.Errorf("%s %s: maxUnavailable %v", name, o.GetName(), u)
			}
		}
	}
}

// values reads a value set as helm merges it (maps merge, the rest replaces).
func values(t *testing.T, files ...string) map[string]any {
	t.Helper()
	merged := map[string]any{}
	for _, f := range append([]string{"values.yaml"}, files...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := sigsyaml.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		merge(merged, v)
	}
	return merged
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func lookup(v map[string]any, path ...string) any {
	var cur any = v
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// The Kafka chart renders its server.properties from these values (the stubs
// cannot): the internal topics' replication fits the brokers, or a one-broker
// Kafka never creates __consumer_offsets and no consumer gets partitions.
func TestKafkaReplicationFitsTheBrokers(t *testing.T) {
	for name, files := range map[string][]string{"default": nil, "kind": {"values-kind.yaml"}, "staging": {"values-staging.yaml"}} {
		v := values(t, files...)
		brokers, _ := lookup(v, "kafka", "controller", "replicaCount").(float64)
		cfg, _ := lookup(v, "kafka", "overrideConfiguration").(map[string]any)
		num := func(key string) float64 {
			n, ok := cfg[key].(float64)
			if !ok {
				t.Errorf("%s: kafka.overrideConfiguration has no %s", name, key)
			}
			return n
		}
		want := min(brokers, 3)
		for _, key := range []string{"offsets.topic.replication.factor", "transaction.state.log.replication.factor", "default.replication.factor"} {
			if got := num(key); got != want {
				t.Errorf("%s: %s=%v with %v brokers, want %v", name, key, got, brokers, want)
			}
		}
		if isr := num("transaction.state.log.min.isr"); isr < 1 || isr > want || (want == 3 && isr != 2) {
			t.Errorf("%s: transaction.state.log.min.isr=%v with %v brokers", name, isr, brokers)
		}
	}
}

// Every Bitnami image of the dependencies, including those off by default,
// comes from bitnamilegacy (the bitnami/ repositories were withdrawn). The
// paths are every image of each chart's values.yaml at the pinned version.
func TestBitnamiImagesComeFromBitnamiLegacy(t *testing.T) {
	v := values(t)
	paths := [][]string{
		{"kafka", "image"}, {"kafka", "defaultInitContainers", "volumePermissions", "image"},
		{"kafka", "defaultInitContainers", "autoDiscovery", "image"}, {"kafka", "metrics", "jmx", "image"},
		{"redis-cluster", "image"}, {"redis-cluster", "volumePermissions", "image"},
		{"redis-cluster", "metrics", "image"}, {"redis-cluster", "sysctlImage"},
		{"rabbitmq-cluster-operator", "clusterOperator", "image"}, {"rabbitmq-cluster-operator", "msgTopologyOperator", "image"},
		{"rabbitmq-cluster-operator", "credentialUpdaterImage"}, {"rabbitmq-cluster-operator", "rabbitmqImage"},
	}
	for _, db := range []string{"authdb", "productdb", "orderdb", "maildb"} {
		paths = append(paths, []string{db, "postgresql", "image"}, []string{db, "pgpool", "image"},
			[]string{db, "metrics", "image"}, []string{db, "volumePermissions", "image"})
	}
	for _, p := range paths {
		repo, _ := lookup(v, append(p, "repository")...).(string)
		if !strings.HasPrefix(repo, "bitnamilegacy/") {
			t.Errorf("%s.repository = %q", strings.Join(p, "."), repo)
		}
	}
}

// Observability fits one kind node and draws the service graph.
func TestObservabilityValues(t *testing.T) {
	v := values(t)
	for path, want := range map[string]any{
		"loki.chunksCache.enabled":  false, // ~9.6 GiB of memcached by default
		"loki.resultsCache.enabled": false,
		"loki.lokiCanary.enabled":   false,
		"loki.test.enabled":         false,
		"alloy.controller.type":     "deployment",
		"kube-prometheus-stack.prometheus.prometheusSpec.enableRemoteWriteReceiver": true,
		"kube-prometheus-stack.grafana.testFramework.enabled":                       false,
	} {
		if got := lookup(v, strings.Split(path, ".")...); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	tempo, _ := lookup(v, "tempo", "config").(string)
	for _, want := range []string{"service-graphs", "remote_write", `include "kshop.prometheusURL" .Release.Name`} {
		if !strings.Contains(tempo, want) {
			t.Errorf("tempo.config lacks %q", want)
		}
	}
	alloy, _ := lookup(v, "alloy", "alloy", "configMap", "content").(string)
	if !strings.Contains(alloy, "clustering { enabled = true }") {
		t.Error("alloy's loki.source.kubernetes does not share its targets when clustered")
	}
}

// The chart's helpers name the dependencies' objects as the dependencies do
// (the observability values call them inside the dependencies' own tpl, which
// the stubs do not run): a template added to a copy of the chart prints them.
func TestNameHelpers(t *testing.T) {
	dir := t.TempDir()
	if err := kubetest.CopyChartWithStubs(chartDir, dir); err != nil {
		t.Fatal(err)
	}
	probe := `{{- range list "kshop" "shop" "my-kube-prometheus-stack" "loki-logs" "a-release-name-of-fifty-characters-or-thereabouts" }}
{{ . }}: {{ include "kshop.prometheusURL" . }} {{ include "kshop.dependencyFullname" (dict "release" . "chart" "loki") }}
{{- end }}
`
	if err := os.WriteFile(filepath.Join(dir, "templates", "names-probe.txt"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(os.Getenv("KSHOP_HELM"), "template", "kshop", dir, "--show-only", "templates/names-probe.txt").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// kube-prometheus-stack cuts its fullname to 26 characters; loki, like the
	// Bitnami charts, uses the release name alone when it contains "loki".
	for _, want := range []string{
		"kshop: http://kshop-kube-prometheus-stac-prometheus:9090 kshop-loki",
		"shop: http://shop-kube-prometheus-stack-prometheus:9090 shop-loki",
		"my-kube-prometheus-stack: http://my-kube-prometheus-stack-prometheus:9090 my-kube-prometheus-stack-loki",
		"loki-logs: http://loki-logs-kube-prometheus-prometheus:9090 loki-logs",
		"a-release-name-of-fifty-characters-or-thereabouts: http://a-release-name-of-fifty-ch-prometheus:9090 a-release-name-of-fifty-characters-or-thereabouts-loki",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("want %q in\n%s", want, out)
		}
	}
}
