package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	amqp091 "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// topologyWorld is a namespace watched by a running manager, a kfake cluster
// and a private RabbitMQ vhost.
type topologyWorld struct {
	t       *testing.T
	c       client.Client
	ns      string
	brokers string
	amqpURL string
	admin   *ckafka.AdminClient
	amqp    *amqp091.Connection
}

func newTopologyWorld(t *testing.T) *topologyWorld {
	t.Helper()
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w := &topologyWorld{t: t, c: c, ns: namespace(t, c), brokers: kafkatest.NewCluster(t), amqpURL: testenv.OwnAMQPURL(t)}
	w.admin, err = ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": w.brokers, "log_level": 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.admin.Close)
	w.amqp = amqptest.Dial(t, w.amqpURL)

	mgr, err := controller.NewManager(apiServer.Config, controller.Options{
		Namespace: w.ns, JWKSSecretName: "kshop-jwks", Policy: policy, MetricsAddr: "0", ProbeAddr: "0",
		Kafka: kafka.Connection{Brokers: w.brokers}, AMQPURL: w.amqpURL, TopologyResync: 300 * time.Millisecond,
		SeveralPerProcess: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return w
}

func (w *topologyWorld) apply(name, kind, doc string) {
	w.t.Helper()
	ctx := context.Background()
	key := types.NamespacedName{Namespace: w.ns, Name: name}
	var cm corev1.ConfigMap
	if err := w.c.Get(ctx, key, &cm); err == nil {
		// A merge patch: the controller writes its status annotation on the
		// same ConfigMap, and an update racing it would fail on the version.
		edit := client.MergeFrom(cm.DeepCopy())
		cm.Data = map[string]string{controller.TopologyKey: doc}
		if err := w.c.Patch(ctx, &cm, edit); err != nil {
			w.t.Fatal(err)
		}
		return
	}
	cm = corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name, Labels: map[string]string{controller.TopologyLabel: kind}},
		Data:       map[string]string{controller.TopologyKey: doc},
	}
	if err := w.c.Create(ctx, &cm); err != nil {
		w.t.Fatal(err)
	}
}

func (w *topologyWorld) status(name string) controller.TopologyStatus {
	w.t.Helper()
	var cm corev1.ConfigMap
	if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: name}, &cm); err != nil {
		w.t.Fatal(err)
	}
	var s controller.TopologyStatus
	if raw := cm.Annotations[controller.TopologyStatusAnnotation]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			w.t.Fatalf("status annotation %q: %v", raw, err)
		}
	}
	return s
}

// waitReady waits until the Ready condition has reason (True for Synced).
func (w *topologyWorld) waitReady(name, reason string) controller.TopologyStatus {
	w.t.Helper()
	var last controller.TopologyStatus
	testenv.WaitFor(w.t, 30*time.Second, fmt.Sprintf("configmap %s Ready reason %s", name, reason), func() bool {
		last = w.status(name)
		c := meta.FindStatusCondition(last.Conditions, "Ready")
		return c != nil && c.Reason == reason && (c.Status == metav1.ConditionTrue) == (reason == controller.ReasonSynced)
	})
	return last
}

// partitions is the topic's partition count, 0 when it does not exist.
func (w *topologyWorld) partitions(topic string) int {
	w.t.Helper()
	// All topics: asking for one by name would auto-create it on kfake.
	md, err := w.admin.GetMetadata(nil, true, 10000)
	if err != nil {
		w.t.Fatal(err)
	}
	tm, ok := md.Topics[topic]
	if !ok || tm.Error.Code() != ckafka.ErrNoError {
		return 0
	}
	return len(tm.Partitions)
}

func (w *topologyWorld) topicConfig(topic, key string) string {
	w.t.Helper()
	res, err := w.admin.DescribeConfigs(context.Background(), []ckafka.ConfigResource{{Type: ckafka.ResourceTopic, Name: topic}})
	if err != nil {
		w.t.Fatal(err)
	}
	return res[0].Config[key].Value
}

// queue reports whether name exists and, then, how many messages it holds.
func (w *topologyWorld) queue(name string) (bool, int) {
	w.t.Helper()
	ch, err := w.amqp.Channel()
	if err != nil {
		w.t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return false, 0
	}
	return true, q.Messages
}

func (w *topologyWorld) onChannel(fn func(ch *amqp091.Channel) error) {
	w.t.Helper()
	ch, err := w.amqp.Channel()
	if err != nil {
		w.t.Fatal(err)
	}
	defer ch.Close()
	if err := fn(ch); err != nil {
		w.t.Fatal(err)
	}
}

// publish sends a mandatory message and tells whether a queue took it.
func (w *topologyWorld) publish(exchange, key string) (routed bool) {
	w.t.Helper()
	w.onChannel(func(ch *amqp091.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
		confirm, err := ch.PublishWithDeferredConfirm(exchange, key, true, false, amqp091.Publishing{Body: []byte("{}")})
		if err != nil {
			return err
		}
		if !confirm.Wait() {
			return fmt.Errorf("publish to %s/%s not confirmed", exchange, key)
		}
		// The broker sends basic.return before the confirm of an unroutable message.
		select {
		case <-returns:
			routed = false
		default:
			routed = true
		}
		return nil
	})
	return routed
}

// warnings are the Warning Events about a ConfigMap with reason.
func (w *topologyWorld) warnings(name, reason string) []string {
	w.t.Helper()
	var list eventsv1.EventList
	if err := w.c.List(context.Background(), &list, client.InNamespace(w.ns)); err != nil {
		w.t.Fatal(err)
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "ConfigMap" && e.Type == corev1.EventTypeWarning && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

const kafkaDoc = `
topics:
  - {name: order-created, partitions: 3, config: {retention.ms: "604800000"}}
  - {name: order-created.dlt, partitions: 1}
`

const rabbitDoc = `
exchanges:
  - {name: notifications, type: topic}
  - {name: orders, type: direct}
queues:
  - {name: verification, type: quorum, deadLetterQueue: true}
  - {name: order-reminder, type: quorum, deadLetterQueue: true}
delayQueues:
  - {name: order-reminder.delay.4h, delay: 4h, exchange: orders, routingKey: order.reminder}
bindings:
  - {exchange: notifications, queue: verification, routingKey: send.verification}
  - {exchange: orders, queue: order-reminder, routingKey: order.reminder}
`

func TestTopologyIsCreatedRaisedAndRepairedAfterDrift(t *testing.T) {
	w := newTopologyWorld(t)
	w.apply("kafka-topology", controller.TopologyKafka, kafkaDoc)
	w.apply("rabbitmq-topology", controller.TopologyRabbitMQ, rabbitDoc)
	w.waitReady("kafka-topology", controller.ReasonSynced)
	w.waitReady("rabbitmq-topology", controller.ReasonSynced)

	if got := w.partitions("order-created"); got != 3 {
		t.Fatalf("order-created has %d partitions, want 3", got)
	}
	if got := w.partitions("order-created.dlt"); got != 1 {
		t.Fatalf("order-created.dlt has %d partitions, want 1", got)
	}
	if got := w.topicConfig("order-created", "retention.ms"); got != "604800000" {
		t.Fatalf("retention.ms = %q", got)
	}
	for _, q := range []string{"verification", "verification.dlq", "order-reminder", "order-reminder.dlq", "order-reminder.delay.4h"} {
		if ok, _ := w.queue(q); !ok {
			t.Fatalf("queue %s was not declared", q)
		}
	}
	// The bindings route: a message to notifications/send.verification lands in verification.
	if !w.publish("notifications", "send.verification") {
		t.Fatal("notifications/send.verification is not routed")
	}
	if _, n := w.queue("verification"); n != 1 {
		t.Fatalf("verification holds %d messages, want the 1 routed by the binding", n)
	}

	// Drift made by hand comes back at the next re-check.
	if _, err := w.admin.DeleteTopics(context.Background(), []string{"order-created"}); err != nil {
		t.Fatal(err)
	}
	w.onChannel(func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete("order-reminder", false, false, false)
		return err
	})
	testenv.WaitFor(t, 30*time.Second, "the deleted topic, queue and binding to come back", func() bool {
		ok, _ := w.queue("order-reminder")
		return ok && w.partitions("order-created") == 3 && w.publish("orders", "order.reminder")
	})
	if _, n := w.queue("order-reminder"); n != 1 {
		t.Fatalf("the re-created order-reminder holds %d messages, want the one routed", n)
	}

	// Raising partitions and changing a config are carried out.
	w.apply("kafka-topology", controller.TopologyKafka, strings.Replace(strings.Replace(kafkaDoc, "partitions: 3", "partitions: 6", 1), "604800000", "86400000", 1))
	testenv.WaitFor(t, 30*time.Second, "6 partitions and the new retention", func() bool {
		return w.partitions("order-created") == 6 && w.topicConfig("order-created", "retention.ms") == "86400000"
	})
	w.waitReady("kafka-topology", controller.ReasonSynced)
}

func TestImpossibleChangesAreReportedAndNothingIsDeletedUnasked(t *testing.T) {
	w := newTopologyWorld(t)
	ctx := context.Background()
	// What exists before the controller: a topic with 6 partitions, a classic
	// queue with a message in it, and a topic the document does not mention.
	if _, err := w.admin.CreateTopics(ctx, []ckafka.TopicSpecification{{Topic: "product-updated", NumPartitions: 6, ReplicationFactor: -1}, {Topic: "hand-made", NumPartitions: 1, ReplicationFactor: -1}}); err != nil {
		t.Fatal(err)
	}
	w.onChannel(func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare("legacy", true, false, false, false, nil)
		return err
	})
	if !w.publish("", "legacy") {
		t.Fatal("legacy did not take its message")
	}

	w.apply("kafka-topology", controller.TopologyKafka, "topics:\n  - {name: product-updated, partitions: 3}\n")
	w.apply("rabbitmq-topology", controller.TopologyRabbitMQ, "queues:\n  - {name: legacy, type: quorum}\n")

	kafkaStatus := w.waitReady("kafka-topology", controller.ReasonCannotChange)
	if len(kafkaStatus.Problems) != 1 || !strings.Contains(kafkaStatus.Problems[0], "cannot remove partitions") {
		t.Fatalf("problems %q", kafkaStatus.Problems)
	}
	rabbitStatus := w.waitReady("rabbitmq-topology", controller.ReasonCannotChange)
	if len(rabbitStatus.Problems) != 1 || !strings.Contains(rabbitStatus.Problems[0], "queue legacy exists with other settings") {
		t.Fatalf("problems %q", rabbitStatus.Problems)
	}
	testenv.WaitFor(t, 30*time.Second, "a CannotChange Warning Event on each ConfigMap", func() bool {
		return len(w.warnings("kafka-topology", controller.ReasonCannotChange)) > 0 && len(w.warnings("rabbitmq-topology", controller.ReasonCannotChange)) > 0
	})
	// Several re-checks later: still one Event each (warned once, not every resync),
	// and nothing was changed.
	time.Sleep(time.Second)
	if k, r := w.warnings("kafka-topology", controller.ReasonCannotChange), w.warnings("rabbitmq-topology", controller.ReasonCannotChange); len(k) != 1 || len(r) != 1 {
		t.Fatalf("warnings: kafka %q, rabbitmq %q", k, r)
	}
	if got := w.partitions("product-updated"); got != 6 {
		t.Fatalf("product-updated has %d partitions, want the 6 it had", got)
	}
	if ok, n := w.queue("legacy"); !ok || n != 1 {
		t.Fatalf("legacy: exists %v with %d messages, want it untouched with its message", ok, n)
	}
	if w.partitions("hand-made") != 1 {
		t.Fatal("a topic the document does not mention was deleted")
	}

	// The object says so: the queue goes, with its message, and a quorum one
	// can then be declared in the same edit.
	w.apply("rabbitmq-topology", controller.TopologyRabbitMQ, "queues:\n  - {name: legacy, type: quorum, delete: true}\n  - {name: legacy-v2, type: quorum}\n")
	w.waitReady("rabbitmq-topology", controller.ReasonSynced)
	if ok, _ := w.queue("legacy"); ok {
		t.Fatal("legacy marked delete: true still exists")
	}
	if ok, _ := w.queue("legacy-v2"); !ok {
		t.Fatal("legacy-v2 was not declared")
	}
}

func TestAnInvalidDocumentIsReportedAndChangesNothing(t *testing.T) {
	w := newTopologyWorld(t)
	w.apply("kafka-topology", controller.TopologyKafka, "topics:\n  - {name: ok-topic, partitions: 3}\n  - {name: bad topic, partitions: 0, retention: 1d}\n")
	s := w.waitReady("kafka-topology", controller.ReasonInvalidDocument)
	ready := meta.FindStatusCondition(s.Conditions, "Ready")
	if !strings.Contains(ready.Message, "retention") {
		t.Fatalf("the message should name the unknown field: %q", ready.Message)
	}
	testenv.WaitFor(t, 30*time.Second, "an InvalidDocument Warning Event", func() bool {
		return len(w.warnings("kafka-topology", controller.ReasonInvalidDocument)) == 1
	})
	if w.partitions("ok-topic") != 0 {
		t.Fatal("a document with errors must change nothing, ok-topic was created")
	}
	// Fixing the document clears the condition.
	w.apply("kafka-topology", controller.TopologyKafka, "topics:\n  - {name: ok-topic, partitions: 3}\n")
	w.waitReady("kafka-topology", controller.ReasonSynced)
	if w.partitions("ok-topic") != 3 {
		t.Fatal("ok-topic was not created after the fix")
	}
}
