package chart_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/order"
)

// TestTheTopologyConfigMapsDeclareWhatTheServicesUse renders the topology
// documents the controller applies and checks them against the contract the
// services are built from (services/events): every topic with its dead-letter
// topic, every mail and timer queue bound as docs/api.md lists them, and one
// delay queue per configured order timer, named as the order service names it.
func TestTheTopologyConfigMapsDeclareWhatTheServicesUse(t *testing.T) {
	cases := map[string]struct {
		values    []string
		reminders []time.Duration
		expiry    time.Duration
	}{
		"default": {nil, order.DefaultReminderDelays, order.DefaultExpiryDelay},
		"kind":    {[]string{"-f", "values-kind.yaml"}, []time.Duration{30 * time.Second, time.Minute, 90 * time.Second}, 2 * time.Minute},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			docs := map[string]string{}
			for _, o := range render(t, c.values...) {
				if kind := o.GetLabels()[controller.TopologyLabel]; o.GetKind() == "ConfigMap" && kind != "" {
					data, _, _ := unstructured.NestedString(o.Object, "data", controller.TopologyKey)
					docs[kind] = data
				}
			}

			kafka, err := controller.ParseKafkaTopology(docs[controller.TopologyKafka])
			if err != nil {
				t.Fatalf("kafka document: %v\n%s", err, docs[controller.TopologyKafka])
			}
			var topics []string
			for _, topic := range kafka.Topics {
				topics = append(topics, topic.Name)
				// The same partition counts as the development broker seeds.
				want := events.DefaultPartitions
				if strings.HasSuffix(topic.Name, ".dlt") {
					want = events.DeadLetterPartitions
				}
				if int(topic.Partitions) != want {
					t.Errorf("topic %s: %d partitions, want %d", topic.Name, topic.Partitions, want)
				}
			}
			var want []string
			for _, topic := range events.Topics {
				want = append(want, topic, events.DeadLetterTopic(topic))
			}
			slices.Sort(topics)
			slices.Sort(want)
			if !slices.Equal(topics, want) {
				t.Errorf("kafka topics %v, want %v", topics, want)
			}

			rabbit, err := controller.ParseRabbitMQTopology(docs[controller.TopologyRabbitMQ])
			if err != nil {
				t.Fatalf("rabbitmq document: %v\n%s", err, docs[controller.TopologyRabbitMQ])
			}
			for _, r := range append(slices.Clone(events.MailRoutes), events.TimerRoutes...) {
				if !slices.Contains(rabbit.Bindings, controller.RabbitMQBinding{Exchange: r.Exchange, Queue: r.Queue, RoutingKey: r.RoutingKey}) {
					t.Errorf("no binding %s -[%s]-> %s", r.Exchange, r.RoutingKey, r.Queue)
				}
				if !slices.Contains(rabbit.Queues, controller.RabbitMQQueue{Name: r.Queue, Type: "quorum", DeadLetterQueue: true}) {
					t.Errorf("queue %s is not a quorum queue with a dead-letter queue, as the services declare it", r.Queue)
				}
				if !slices.Contains(rabbit.Exchanges, controller.RabbitMQExchange{Name: r.Exchange, Type: events.ExchangeKinds[r.Exchange]}) {
					t.Errorf("exchange %s is not declared as a %s exchange", r.Exchange, events.ExchangeKinds[r.Exchange])
				}
			}
			var delays []controller.RabbitMQDelayQueue
			for _, d := range order.Topology(c.reminders, c.expiry).Delays {
				delays = append(delays, controller.RabbitMQDelayQueue{Name: d.Name, Delay: controller.Duration{Duration: d.Delay}, Exchange: d.TargetExchange, RoutingKey: d.TargetRoutingKey})
			}
			if !slices.Equal(rabbit.DelayQueues, delays) {
				t.Errorf("delay queues\n%+v\nwant\n%+v", rabbit.DelayQueues, delays)
			}
		})
	}
}

func TestStagingReplicatesEveryTopicThreeTimes(t *testing.T) {
	for _, o := range render(t, "-f", "values-staging.yaml") {
		if o.GetLabels()[controller.TopologyLabel] != controller.TopologyKafka {
			continue
		}
		doc, _, _ := unstructured.NestedString(o.Object, "data", controller.TopologyKey)
		kafka, err := controller.ParseKafkaTopology(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range kafka.Topics {
			if topic.ReplicationFactor != 3 || topic.Config["min.insync.replicas"] != "2" || topic.Config["retention.ms"] == "" {
				t.Errorf("topic %s: replication %d, config %v", topic.Name, topic.ReplicationFactor, topic.Config)
			}
		}
		return
	}
	t.Fatal("no kafka topology rendered for staging")
}

// rabbitMQTopology is the rendered RabbitMQ topology document.
func rabbitMQTopology(t *testing.T, values ...string) controller.RabbitMQTopology {
	t.Helper()
	for _, o := range render(t, values...) {
		if o.GetKind() == "ConfigMap" && o.GetLabels()[controller.TopologyLabel] == controller.TopologyRabbitMQ {
			doc, _, _ := unstructured.NestedString(o.Object, "data", controller.TopologyKey)
			topology, err := controller.ParseRabbitMQTopology(doc)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			return topology
		}
	}
	t.Fatal("no RabbitMQ topology document rendered")
	return controller.RabbitMQTopology{}
}

// The chart works out the timer chain's delay queues itself (a template cannot
// call the order service), by the rule files/topology.yaml carries: for every
// way of writing a delay the order service reads, the rendered delay queues are
// the ones the order service declares for the same settings (order.Topology):
// the same names (the timer's queue and the wait since the link before, in the
// largest unit dividing it, truncated to milliseconds, so links waiting 60s and
// 1m share a queue), waits, exchange and routing keys, in the same order.
// Delays the chart cannot name, or that do not come in order, stop the render
// with a message naming the delay.
func TestTheChartNamesDelayQueuesAsTheOrderServiceDoes(t *testing.T) {
	for _, c := range []struct{ reminders, expiry string }{
		{"1ms,1500ms,30s,90s,90m,4h,24h,36h", "48h"},
		{"60s,2m,3m,3601s,2h60m,86400000ms,86401001ms", "36h"},
		{"1500us,2000µs,123456789ns,1h0m0s,7200000000000ns", "25h"},
		{" 10s, 20s ,30s", "45s"},
		{"1h,2h", "3h"},
	} {
		t.Run(c.reminders, func(t *testing.T) {
			var reminders []time.Duration
			for _, s := range strings.Split(c.reminders, ",") {
				d, err := time.ParseDuration(strings.TrimSpace(s))
				if err != nil {
					t.Fatal(err)
				}
				reminders = append(reminders, d)
			}
			expiry, err := time.ParseDuration(c.expiry)
			if err != nil {
				t.Fatal(err)
			}
			var want []controller.RabbitMQDelayQueue
			for _, d := range order.Topology(reminders, expiry).Delays {
				want = append(want, controller.RabbitMQDelayQueue{Name: d.Name, Delay: controller.Duration{Duration: d.Delay}, Exchange: d.TargetExchange, RoutingKey: d.TargetRoutingKey})
			}
			got := rabbitMQTopology(t,
				"--set-string", "services.order.env.KSHOP_ORDER_REMINDER_DELAYS="+strings.ReplaceAll(c.reminders, ",", `\,`),
				"--set-string", "services.order.env.KSHOP_ORDER_EXPIRY_DELAY="+c.expiry).DelayQueues
			if !slices.Equal(got, want) {
				t.Errorf("delay queues\n%+v\nthe order service's\n%+v", got, want)
			}
		})
	}

	for reminders, expiry := range map[string]string{"4h,2h": "24h", "4h,4h": "24h", "1h,60m": "2h", "1500us,1800us": "1h", "4h,24h": "24h", "25h": "24h"} {
		err := renderError(t,
			"--set-string", "services.order.env.KSHOP_ORDER_REMINDER_DELAYS="+strings.ReplaceAll(reminders, ",", `\,`),
			"--set-string", "services.order.env.KSHOP_ORDER_EXPIRY_DELAY="+expiry)
		if err == nil || !strings.Contains(err.Error(), "must come in order") {
			t.Errorf("reminders %s, expiry %s: %v, want an error saying they must come in order", reminders, expiry, err)
		}
	}

	for delay, message := range map[string]string{
		"1.5h":                  "write whole numbers with units",
		"-4h":                   "write whole numbers with units",
		"4":                     "write whole numbers with units",
		"soon":                  "write whole numbers with units",
		"999us":                 "at least 1ms",
		"0s":                    "at least 1ms",
		"99999999999999999999h": "longer than a Go duration can be",
		"2562048h":              "longer than a Go duration can be",
	} {
		err := renderError(t, "--set-string", "services.order.env.KSHOP_ORDER_EXPIRY_DELAY="+delay)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("order timer delay %q", delay)) || !strings.Contains(err.Error(), message) {
			t.Errorf("expiry delay %q: %v, want an error saying %q", delay, err, message)
		}
	}
}

// The names left the values for files/topology.yaml: values of an older chart
// that still set them are refused, naming the key, instead of being ignored.
func TestTheRemovedTopologyNameValuesAreRefused(t *testing.T) {
	for key, set := range map[string]string{
		"topics":    "topology.kafka.topics={my-topic}",
		"exchanges": "topology.rabbitmq.exchanges[0].name=mine",
		"routes":    "topology.rabbitmq.routes[0].queue=mine",
	} {
		err := renderError(t, "--set", set)
		if err == nil || !strings.Contains(err.Error(), "additional properties '"+key+"' not allowed") {
			t.Errorf("--set %s: %v, want the schema to refuse %s", set, err, key)
		}
	}
}
