package chart_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqp"
)

// declared is every exchange and queue a topology declares (dead-letter queues included).
func declared(t amqp.Topology) []string {
	var names []string
	for _, e := range t.Exchanges {
		names = append(names, e.Name)
	}
	for _, q := range t.Queues {
		names = append(names, q.Name)
		if q.DeadLetter {
			names = append(names, amqp.DeadLetterQueue(q.Name))
		}
	}
	for _, d := range t.Delays {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// envFromSecret is the Secret and key a container's variable is read from.
func envFromSecret(t *testing.T, d *unstructured.Unstructured, variable string) (string, string) {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		vars, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
		for _, v := range vars {
			m := v.(map[string]any)
			if m["name"] == variable {
				name, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "name")
				key, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "key")
				return name, key
			}
		}
	}
	return "", ""
}

// With rabbitmq.users (on in staging) every service that uses RabbitMQ, and
// the controller, has a RabbitMQ user of its own whose permissions match
// exactly what the service declares (services/auth, mail and order: their
// Topology, built from services/events), writes only the exchanges it
// publishes to, and nothing of another service's: a
// queue added to the contract without its route in the chart, or a route
// given to the wrong service, fails here. The services read that user's
// credentials from its Secret, and the objects pass the API server's strict
// dry run against the operator's CRDs.
func TestEachServiceHasARabbitMQUserLimitedToItsOwnExchangesAndQueues(t *testing.T) {
	want := map[string][]string{
		"auth":  declared(auth.Topology()),
		"mail":  declared(mail.Topology()),
		"order": declared(order.Topology(order.DefaultReminderDelays, order.DefaultExpiryDelay)),
	}
	var all []string
	for _, names := range want {
		all = append(all, names...)
	}
	slices.Sort(all)
	want["controller"] = slices.Compact(all)

	for name, values := range map[string][]string{
		"switch":  {"--set", "rabbitmq.users.enabled=true"},
		"staging": {"-f", "values-staging.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			objects := render(t, values...)
			if err := applyDryRun(t, objects); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, o := range objects {
				if o.GetKind() != "Permission" {
					continue
				}
				user := o.GetLabels()["app.kubernetes.io/component"]
				names, ok := want[user]
				if !ok {
					t.Errorf("a RabbitMQ user for %q, which declares nothing", user)
					continue
				}
				seen[user] = true
				secret := releaseName + "-rabbitmq-" + user
				if ref, _, _ := unstructured.NestedString(o.Object, "spec", "userReference", "name"); ref != secret {
					t.Errorf("%s: the Permission is for the user %q, want %q", user, ref, secret)
				}
				if find(objects, "User", secret) == nil || find(objects, "Secret", secret) == nil {
					t.Errorf("%s: no User or Secret %s", user, secret)
				}
				for _, perm := range []string{"configure", "write", "read"} {
					raw, _, _ := unstructured.NestedString(o.Object, "spec", "permissions", perm)
					re, err := regexp.Compile(raw)
					if err != nil {
						t.Fatalf("%s %s: %v", user, perm, err)
					}
					for _, n := range want["controller"] {
						mine := slices.Contains(names, n)
						if _, exchange := events.ExchangeKinds[n]; perm == "write" && exchange && user != "controller" {
							// An exchange is written by publishing: its producers alone.
							mine = slices.ContainsFunc(events.Producing(user, append(slices.Clone(events.MailRoutes), events.TimerRoutes...)),
								func(r events.Route) bool { return r.Exchange == n })
						}
						if re.MatchString(n) != mine {
							t.Errorf("%s may %s %q: %v, want %v (%s)", user, perm, n, !mine, mine, raw)
						}
					}
					// Queues declared with dead letters to the default exchange
					// need write on it; nothing else is granted.
					if got := re.MatchString("amq.default"); got != (perm == "write") {
						t.Errorf("%s may %s amq.default: %v", user, perm, got)
					}
					for _, other := range []string{"", "amq.topic", "anything", "verification-x", "xverification"} {
						if re.MatchString(other) {
							t.Errorf("%s may %s %q (%s)", user, perm, other, raw)
						}
					}
				}
				deployment := releaseName + "-" + user
				prefix := "KSHOP_" + map[string]string{"auth": "AUTH", "mail": "MAIL", "order": "ORDER", "controller": "CONTROLLER"}[user]
				d := find(objects, "Deployment", deployment)
				if d == nil {
					t.Fatalf("no Deployment %s", deployment)
				}
				for variable, key := range map[string]string{prefix + "_AMQP_USERNAME": "username", prefix + "_AMQP_PASSWORD": "password"} {
					if gotSecret, gotKey := envFromSecret(t, d, variable); gotSecret != secret || gotKey != key {
						t.Errorf("%s reads %s from %s/%s, want %s/%s", deployment, variable, gotSecret, gotKey, secret, key)
					}
				}
			}
			for user := range want {
				if !seen[user] {
					t.Errorf("no RabbitMQ user for %s", user)
				}
			}
		})
	}
	// Off (the default): the services share the cluster's user, as before.
	if n := count(render(t), "Permission"); n != 0 {
		t.Errorf("%d Permissions rendered with rabbitmq.users off", n)
	}
}

// Staging's Kafka takes SCRAM-SHA-512 logins on the client listener (and SASL
// between brokers and controllers), its client user is the one the services
// log in as, and every Kafka client of the release reads that user's password
// from the Secret the Kafka chart generates.
func TestStagingKafkaRequiresSASLAndTheClientsLogIn(t *testing.T) {
	raw, err := os.ReadFile("values-staging.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var staging struct {
		Kafka struct {
			Listeners map[string]struct {
				Protocol string `json:"protocol"`
			} `json:"listeners"`
			SASL struct {
				EnabledMechanisms string `json:"enabledMechanisms"`
				Client            struct {
					Users []string `json:"users"`
				} `json:"client"`
			} `json:"sasl"`
		} `json:"kafka"`
		Connections struct {
			Kafka struct {
				SASL struct {
					Mechanism string `json:"mechanism"`
					Username  string `json:"username"`
				} `json:"sasl"`
			} `json:"kafka"`
		} `json:"connections"`
	}
	if err := sigsyaml.Unmarshal(raw, &staging); err != nil {
		t.Fatal(err)
	}
	for _, listener := range []string{"client", "interbroker", "controller"} {
		if p := staging.Kafka.Listeners[listener].Protocol; p != "SASL_PLAINTEXT" && p != "SASL_SSL" {
			t.Errorf("staging's Kafka %s listener is %q: no authentication", listener, p)
		}
	}
	sasl := staging.Connections.Kafka.SASL
	if sasl.Mechanism != "SCRAM-SHA-512" || !regexp.MustCompile(`(^|,)SCRAM-SHA-512(,|$)`).MatchString(staging.Kafka.SASL.EnabledMechanisms) {
		t.Errorf("clients log in with %q, the brokers take %q: want SCRAM-SHA-512 on both sides", sasl.Mechanism, staging.Kafka.SASL.EnabledMechanisms)
	}
	if len(staging.Kafka.SASL.Client.Users) == 0 || staging.Kafka.SASL.Client.Users[0] != sasl.Username {
		t.Errorf("the services log in as %q, Kafka's first client user (whose password is system-user-password) is %v", sasl.Username, staging.Kafka.SASL.Client.Users)
	}
	objects := render(t, "-f", "values-staging.yaml")
	for _, c := range []struct{ deployment, prefix string }{
		{"product", "KSHOP_PRODUCT"}, {"order", "KSHOP_ORDER"}, {"controller", "KSHOP_CONTROLLER"},
	} {
		d := find(objects, "Deployment", releaseName+"-"+c.deployment)
		if d == nil {
			t.Fatalf("no Deployment %s", c.deployment)
		}
		if name, key := envFromSecret(t, d, c.prefix+"_KAFKA_SASL_PASSWORD"); name != releaseName+"-kafka-user-passwords" || key != "system-user-password" {
			t.Errorf("%s reads its Kafka password from %s/%s, want %s-kafka-user-passwords/system-user-password", c.deployment, name, key, releaseName)
		}
	}
}
