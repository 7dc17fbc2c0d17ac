package chart_test

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// dependencyObject is an object an in-chart dependency creates for a release.
type dependencyObject struct {
	kind   string
	keys   []string // a Secret's keys the chart may read
	source string   // where the dependency makes it, at the version Chart.yaml pins
}

// dependencyObjects are the objects of the in-chart dependencies that the
// chart's services are pointed at, by name for release R (%[1]s). They were
// read in the dependency charts at the pinned versions and seen in a render of
// the chart with them (release "shop" and "kshop"); the tests render with
// stubs, so this table is what they check the references against.
var dependencyObjects = map[string]dependencyObject{
	"%[1]s-authdb-pgpool":           {"Service", nil, "postgresql-ha 16.3.2 (alias authdb) templates/pgpool/service.yaml, port 5432"},
	"%[1]s-productdb-pgpool":        {"Service", nil, "postgresql-ha 16.3.2 (alias productdb) templates/pgpool/service.yaml"},
	"%[1]s-orderdb-pgpool":          {"Service", nil, "postgresql-ha 16.3.2 (alias orderdb) templates/pgpool/service.yaml"},
	"%[1]s-maildb-pgpool":           {"Service", nil, "postgresql-ha 16.3.2 (alias maildb) templates/pgpool/service.yaml"},
	"%[1]s-authdb-postgresql":       {"Secret", []string{"password", "postgres-password", "repmgr-password"}, "postgresql-ha 16.3.2 templates/postgresql/secrets.yaml (password: postgresql.username's)"},
	"%[1]s-productdb-postgresql":    {"Secret", []string{"password", "postgres-password", "repmgr-password"}, "postgresql-ha 16.3.2 templates/postgresql/secrets.yaml"},
	"%[1]s-orderdb-postgresql":      {"Secret", []string{"password", "postgres-password", "repmgr-password"}, "postgresql-ha 16.3.2 templates/postgresql/secrets.yaml"},
	"%[1]s-maildb-postgresql":       {"Secret", []string{"password", "postgres-password", "repmgr-password"}, "postgresql-ha 16.3.2 templates/postgresql/secrets.yaml"},
	"%[1]s-kafka":                   {"Service", nil, "kafka 32.4.3 templates/svc.yaml, port 9092 (tcp-client)"},
	"%[1]s-kafka-user-passwords":    {"Secret", []string{"system-user-password"}, "kafka 32.4.3 templates/secrets.yaml when a listener uses SASL (values-staging.yaml): client-passwords, system-user-password (the first of sasl.client.users), inter-broker-password, controller-password"},
	"%[1]s-redis-cluster":           {"Service", nil, "redis-cluster 10.2.5 templates/redis-svc.yaml, port 6379; the Secret of that name is this chart's (redis-password.yaml)"},
	"%[1]s-rabbitmq":                {"Service", nil, "the RabbitMQ cluster operator (rabbitmq-cluster-operator 4.3.25), for this chart's RabbitmqCluster, port 5672"},
	"%[1]s-rabbitmq-default-user":   {"Secret", []string{"username", "password"}, "the RabbitMQ cluster operator, for this chart's RabbitmqCluster"},
	"%[1]s-mailpit-smtp":            {"Service", nil, "mailpit 0.27.0 templates/smtp-service.yaml, port 25 (pods: 1025)"},
	"%[1]s-mailpit-http":            {"Service", nil, "mailpit 0.27.0 templates/http-service.yaml, port 80 (pods: 8025)"},
	"%[1]s-opentelemetry-collector": {"Service", nil, "opentelemetry-collector 0.111.0 templates/service.yaml, port 4317 (otlp)"},
	"%[1]s-jwks":                    {"Secret", []string{"jwks.json"}, "the platform controller (services/controller), which creates and rotates it"},
	"%[1]s-identity-keys":           {"Secret", []string{"jwks.json"}, "the platform controller, which creates and rotates the gateway's identity keys"},
	"%[1]s-identity-keys-public":    {"ConfigMap", nil, "the platform controller, which publishes the public half of the gateway's identity keys"},
}

// releaseObjects are what a reference may point at for release, by kind and
// name: the objects the render itself holds, and the dependencies'
// (dependencyObjects).
func releaseObjects(release string, objects []*unstructured.Unstructured) map[string]dependencyObject {
	names := map[string]dependencyObject{}
	for pattern, o := range dependencyObjects {
		names[o.kind+" "+fmt.Sprintf(pattern, release)] = o
	}
	for _, o := range objects {
		entry := dependencyObject{kind: o.GetKind(), source: "this chart"}
		if o.GetKind() == "Secret" {
			data, _, _ := unstructured.NestedMap(o.Object, "data")
			for k := range data {
				entry.keys = append(entry.keys, k)
			}
		}
		if o.GetKind() == "Service" || o.GetKind() == "Secret" {
			names[o.GetKind()+" "+o.GetName()] = entry
		}
	}
	return names
}

// reference is one name a rendered object points at.
type reference struct {
	kind, name, key string
	where           string
}

// references collects what the pods are pointed at: Secrets (env and volumes)
// and the hosts of every address in their configuration and arguments.
func references(objects []*unstructured.Unstructured) []reference {
	var refs []reference
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["secretKeyRef"].(map[string]any); ok {
				refs = append(refs, reference{"Secret", fmt.Sprint(ref["name"]), fmt.Sprint(ref["key"]), where})
			}
			if secret, ok := v["secret"].(map[string]any); ok && secret["secretName"] != nil {
				refs = append(refs, reference{"Secret", fmt.Sprint(secret["secretName"]), "", where})
			}
			for k, x := range v {
				walk(where+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	for _, o := range objects {
		where := o.GetKind() + " " + o.GetName()
		walk(where, o.Object["spec"])
		if o.GetKind() == "ConfigMap" && o.GetLabels()["app.kubernetes.io/part-of"] == "kshop" {
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for key, value := range data {
				for _, host := range hostsIn(key, value) {
					refs = append(refs, reference{"Service", host, "", where + " " + key})
				}
			}
		}
		if o.GetKind() == "Pod" || o.GetKind() == "Deployment" {
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "containers")
			if o.GetKind() == "Deployment" {
				containers, _, _ = unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			}
			for _, c := range containers {
				c := c.(map[string]any)
				for _, e := range asSlice(c["env"]) {
					e := e.(map[string]any)
					if value, ok := e["value"].(string); ok {
						for _, host := range hostsIn(fmt.Sprint(e["name"]), value) {
							refs = append(refs, reference{"Service", host, "", where + " " + fmt.Sprint(e["name"])})
						}
					}
				}
				for _, a := range asSlice(c["args"]) {
					if name, value, ok := strings.Cut(fmt.Sprint(a), "="); ok {
						for _, host := range hostsIn(name, value) {
							refs = append(refs, reference{"Service", host, "", where + " " + name})
						}
					}
				}
			}
		}
	}
	return refs
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// hostsIn returns the hosts named by a setting: URLs, host:port lists, and the
// SMTP host.
func hostsIn(name, value string) []string {
	var hosts []string
	switch {
	case strings.HasSuffix(name, "_URL") || strings.HasSuffix(name, "_ENDPOINT") || name == "-gateway" || name == "-inbox":
		if value == "" {
			return nil
		}
		u, err := url.Parse(value)
		if err != nil || u.Hostname() == "" {
			return []string{"unparsable " + value}
		}
		hosts = append(hosts, u.Hostname())
	case strings.HasSuffix(name, "_BROKERS") || strings.HasSuffix(name, "_ADDRS"):
		for _, hp := range strings.Split(value, ",") {
			host, _, err := net.SplitHostPort(hp)
			if err != nil {
				return []string{"unparsable " + hp}
			}
			hosts = append(hosts, host)
		}
	case strings.HasSuffix(name, "_SMTP_HOST"):
		hosts = append(hosts, value)
	}
	return hosts
}

// Every host, Secret and URL the chart hands the pods is derived from the
// release name: installed as "shop" in namespace "shop", nothing points at a
// kshop-... object, and every reference names an object of release shop, either
// rendered by the chart or created by an in-chart dependency as that
// dependency names it (dependencyObjects).
func TestEveryReferenceNamesAnObjectOfTheRelease(t *testing.T) {
	for name, values := range map[string][]string{
		"default":       nil,
		"kind":          {"-f", "values-kind.yaml"},
		"staging":       {"-f", "values-staging.yaml"},
		"observability": {"--set", "observability.enabled=true"},
	} {
		t.Run(name, func(t *testing.T) {
			objects := renderAs(t, "shop", "shop", values...)
			// Nothing anywhere names release kshop's objects; the chart's own
			// label (kshop-0.1.0) and the dashboards' uids are not objects.
			var walk func(where string, v any)
			walk = func(where string, v any) {
				switch v := v.(type) {
				case map[string]any:
					for k, x := range v {
						if k != "helm.sh/chart" {
							walk(where+"."+k, x)
						}
					}
				case []any:
					for _, x := range v {
						walk(where, x)
					}
				case string:
					if strings.Contains(v, "kshop-") {
						t.Errorf("%s: %q names an object of release kshop", where, v)
					}
				}
			}
			for _, o := range objects {
				if o.GetLabels()["grafana_dashboard"] != "1" {
					walk(o.GetKind()+" "+o.GetName(), o.Object)
				}
			}

			known := releaseObjects("shop", objects)
			refs := references(objects)
			if len(refs) < 20 {
				t.Fatalf("only %d references found: %v", len(refs), refs)
			}
			for _, ref := range refs {
				got, ok := known[ref.kind+" "+ref.name]
				switch {
				case !ok && ref.kind == "Secret" && strings.HasPrefix(ref.name, "smtp-relay"):
					// staging's SMTP relay password: a Secret the user creates
				case !ok && ref.kind == "Service" && strings.HasSuffix(ref.name, ".example.com"):
					// staging's SMTP relay
				case !ok:
					t.Errorf("%s names %s %s, which neither the chart nor a dependency creates for release shop", ref.where, ref.kind, ref.name)
				case ref.key != "" && !contains(got.keys, ref.key):
					t.Errorf("%s reads key %s of Secret %s, which has %v (%s)", ref.where, ref.key, ref.name, got.keys, got.source)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A release whose name contains a dependency's name gets that dependency's
// objects under the release name alone, as the dependency names them.
func TestDependencyNamesFollowTheDependencies(t *testing.T) {
	objects := renderAs(t, "kafka", "kafka")
	cm := find(objects, "ConfigMap", "kafka-order")
	if cm == nil {
		t.Fatal("no ConfigMap kafka-order")
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if data["KSHOP_ORDER_KAFKA_BROKERS"] != "kafka:9092" || data["KSHOP_ORDER_REDIS_ADDRS"] != "kafka-redis-cluster:6379" {
		t.Errorf("release kafka: brokers %q, redis %q; want kafka:9092 (Bitnami's fullname is the release name when it contains the chart's) and kafka-redis-cluster:6379",
			data["KSHOP_ORDER_KAFKA_BROKERS"], data["KSHOP_ORDER_REDIS_ADDRS"])
	}
	objects = renderAs(t, "shop", "shop", "--set", "kafka.fullnameOverride=events")
	cm = find(objects, "ConfigMap", "shop-order")
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "KSHOP_ORDER_KAFKA_BROKERS"); got != "events:9092" {
		t.Errorf("kafka.fullnameOverride=events: brokers %q, want events:9092", got)
	}
}
