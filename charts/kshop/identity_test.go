package chart_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// metricsTargets are the pods Prometheus scrapes: each service on its metrics
// port (its API port beside it), and the controller.
var metricsTargets = []struct {
	deployment           string
	apiPort, metricsPort int32
}{
	{"gateway", 8080, 9080}, {"auth", 8081, 9081}, {"product", 8082, 9082},
	{"order", 8083, 9083}, {"mail", 8084, 9084}, {"controller", 8086, 8085},
}

func prometheusIn(ns string) peer {
	return peer{namespace: ns, labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
}

// Prometheus reaches the metrics ports and nothing else, and only from the
// monitoring namespace the values name (and the release's own when the
// bundled Prometheus runs there); a pod labelled prometheus anywhere else
// reaches nothing.
func TestPrometheusReachesOnlyTheMetricsPortsFromItsNamespace(t *testing.T) {
	for name, c := range map[string]struct {
		values  []string
		allowed []string // namespaces whose Prometheus may scrape
		refused []string
	}{
		"default":               {nil, []string{"monitoring"}, []string{namespace, "elsewhere"}},
		"another monitoring ns": {[]string{"--set", "networkPolicy.prometheus.namespace=obs"}, []string{"obs"}, []string{"monitoring", namespace}},
		"bundled Prometheus":    {[]string{"--set", "observability.enabled=true"}, []string{"monitoring", namespace}, []string{"elsewhere"}},
	} {
		t.Run(name, func(t *testing.T) {
			objects := render(t, c.values...)
			ps := policiesIn(t, objects)
			for _, target := range metricsTargets {
				pod := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-"+target.deployment)}
				for _, ns := range c.allowed {
					if !ps.allows(prometheusIn(ns), pod, target.metricsPort, corev1.ProtocolTCP) {
						t.Errorf("Prometheus in %s cannot scrape %s on its metrics port %d", ns, target.deployment, target.metricsPort)
					}
					if ps.allows(prometheusIn(ns), pod, target.apiPort, corev1.ProtocolTCP) {
						t.Errorf("Prometheus in %s reaches %s's port %d, not a metrics port", ns, target.deployment, target.apiPort)
					}
				}
				for _, ns := range c.refused {
					if ps.allows(prometheusIn(ns), pod, target.metricsPort, corev1.ProtocolTCP) {
						t.Errorf("a pod labelled prometheus in %s scrapes %s", ns, target.deployment)
					}
				}
			}
			// The services' callers do not reach the metrics ports.
			gateway := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-gateway")}
			product := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-product")}
			if !ps.allows(gateway, product, 8082, corev1.ProtocolTCP) || ps.allows(gateway, product, 9082, corev1.ProtocolTCP) {
				t.Error("the gateway must reach product's API port and not its metrics port")
			}
			// The mail service has no callers: nobody reaches its API port.
			mail := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-mail")}
			if ps.allows(gateway, mail, 8084, corev1.ProtocolTCP) || ps.allows(peer{namespace: "elsewhere", labels: map[string]string{"app": "x"}}, mail, 8084, corev1.ProtocolTCP) {
				t.Error("the mail service's API port is reachable")
			}
		})
	}
	// The rule itself names the namespace and the metrics port, for whoever reads the policy.
	objects := render(t)
	for _, p := range policiesIn(t, objects) {
		if p.Name != releaseName+"-product" {
			continue
		}
		found := false
		for _, r := range p.Spec.Ingress {
			for _, from := range r.From {
				if from.PodSelector == nil || from.PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
					continue
				}
				found = true
				if from.NamespaceSelector == nil || from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
					t.Errorf("the prometheus rule selects namespaces %v, want monitoring by name", from.NamespaceSelector)
				}
				if len(r.Ports) != 1 || r.Ports[0].Port.IntVal != 9082 {
					t.Errorf("the prometheus rule opens %v, want the metrics port 9082 only", r.Ports)
				}
			}
		}
		if !found {
			t.Error("no prometheus rule in the product service's NetworkPolicy")
		}
	}
}

// Every Service publishes the metrics port, and the ServiceMonitors and the
// scrape annotations point at it.
func TestMonitoringPointsAtTheMetricsPorts(t *testing.T) {
	objects := render(t, "--set", "observability.enabled=true")
	for _, target := range metricsTargets[:5] {
		name := releaseName + "-" + target.deployment
		svc, sm, deploy := find(objects, "Service", name), find(objects, "ServiceMonitor", name), find(objects, "Deployment", name)
		if svc == nil || sm == nil || deploy == nil {
			t.Fatalf("%s: Service, ServiceMonitor or Deployment missing", name)
		}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		published := false
		for _, p := range ports {
			port := p.(map[string]any)
			if port["name"] == "metrics" && fmt.Sprint(port["port"]) == fmt.Sprint(target.metricsPort) && port["targetPort"] == "metrics" {
				published = true
			}
		}
		if !published {
			t.Errorf("%s: the Service does not publish metrics on %d: %v", name, target.metricsPort, ports)
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != "metrics" {
			t.Errorf("%s: the ServiceMonitor scrapes %v, want the metrics port", name, endpoints)
		}
		annotations, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "annotations")
		if annotations["prometheus.io/port"] != fmt.Sprint(target.metricsPort) {
			t.Errorf("%s: prometheus.io/port=%q, want %d", name, annotations["prometheus.io/port"], target.metricsPort)
		}
		cm := find(objects, "ConfigMap", name)
		prefix := "KSHOP_" + map[string]string{"gateway": "GATEWAY", "auth": "AUTH", "product": "PRODUCT", "order": "ORDER", "mail": "MAIL"}[target.deployment]
		if got, _, _ := unstructured.NestedString(cm.Object, "data", prefix+"_METRICS_ADDR"); got != fmt.Sprintf(":%d", target.metricsPort) {
			t.Errorf("%s_METRICS_ADDR=%q, want :%d", prefix, got, target.metricsPort)
		}
	}
	if err := renderError(t, "--set", "services.order.metricsPort=8083"); err == nil {
		t.Error("a metrics port equal to the API port was accepted")
	}
}

// The gateway alone mounts the private identity keys; product and order
// mount their public half; the controller keeps both, named from the release.
func TestIdentityKeysGoWhereTheyBelong(t *testing.T) {
	for name, c := range map[string]struct {
		release, secret, configMap string
		values                     []string
	}{
		"default":       {"shop", "shop-identity-keys", "shop-identity-keys-public", nil},
		"named":         {"shop", "gw-keys", "gw-keys-pub", []string{"--set", "identity.secretName=gw-keys", "--set", "identity.configMapName=gw-keys-pub"}},
		"other release": {"kshop-b", "kshop-b-identity-keys", "kshop-b-identity-keys-public", nil},
	} {
		t.Run(name, func(t *testing.T) {
			objects := renderAs(t, c.release, namespace, c.values...)
			for _, service := range []string{"gateway", "auth", "product", "order", "mail"} {
				deploy := find(objects, "Deployment", c.release+"-"+service)
				volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
				var secret, configMap string
				for _, v := range volumes {
					vol := v.(map[string]any)
					if vol["name"] != "identity-keys" {
						continue
					}
					secret, _, _ = unstructured.NestedString(vol, "secret", "secretName")
					configMap, _, _ = unstructured.NestedString(vol, "configMap", "name")
				}
				want := map[string][2]string{"gateway": {c.secret, ""}, "product": {"", c.configMap}, "order": {"", c.configMap}}[service]
				if secret != want[0] || configMap != want[1] {
					t.Errorf("%s mounts the identity keys from Secret %q, ConfigMap %q; want %q, %q", service, secret, configMap, want[0], want[1])
				}
				cm := find(objects, "ConfigMap", c.release+"-"+service)
				data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
				keysFile := ""
				for k, v := range data {
					if k == "KSHOP_"+map[string]string{"gateway": "GATEWAY", "auth": "AUTH", "product": "PRODUCT", "order": "ORDER", "mail": "MAIL"}[service]+"_IDENTITY_KEYS_FILE" {
						keysFile = v
					}
				}
				if (want != [2]string{}) != (keysFile == "/etc/kshop/identity/jwks.json") {
					t.Errorf("%s: identity keys file %q", service, keysFile)
				}
			}
			ctrl := find(objects, "Deployment", c.release+"-controller")
			containers, _, _ := unstructured.NestedSlice(ctrl.Object, "spec", "template", "spec", "containers")
			env := map[string]string{}
			for _, e := range containers[0].(map[string]any)["env"].([]any) {
				m := e.(map[string]any)
				if v, ok := m["value"].(string); ok {
					env[m["name"].(string)] = v
				}
			}
			if env["KSHOP_CONTROLLER_IDENTITY_SECRET"] != c.secret || env["KSHOP_CONTROLLER_IDENTITY_CONFIGMAP"] != c.configMap ||
				env["KSHOP_CONTROLLER_IDENTITY_TOKEN_LIFETIME"] != "1m" {
				t.Errorf("the controller keeps %q and %q (lifetime %q), want %q and %q", env["KSHOP_CONTROLLER_IDENTITY_SECRET"],
					env["KSHOP_CONTROLLER_IDENTITY_CONFIGMAP"], env["KSHOP_CONTROLLER_IDENTITY_TOKEN_LIFETIME"], c.secret, c.configMap)
			}
		})
	}
}
