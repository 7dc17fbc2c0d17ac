package chart_test

import (
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
			for _, d := range c.reminders {
				delays = append(delays, controller.RabbitMQDelayQueue{Name: events.DelayQueueName(d), Delay: controller.Duration{Duration: d}, Exchange: events.ExchangeOrders, RoutingKey: events.RoutingOrderReminder})
			}
			delays = append(delays, controller.RabbitMQDelayQueue{Name: events.DelayQueueName(c.expiry), Delay: controller.Duration{Duration: c.expiry}, Exchange: events.ExchangeOrders, RoutingKey: events.RoutingOrderExpiry})
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
