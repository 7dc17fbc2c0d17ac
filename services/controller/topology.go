package controller

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// A ConfigMap labelled TopologyLabel=kafka or =rabbitmq holds, under
// TopologyKey, the topology the controller makes that broker match. The
// controller writes how that went to the TopologyStatusAnnotation.
const (
	TopologyLabel            = "kshop.io/topology"
	TopologyKey              = "topology.yaml"
	TopologyStatusAnnotation = "kshop.io/topology-status"

	TopologyKafka    = "kafka"
	TopologyRabbitMQ = "rabbitmq"
)

// KafkaTopology is the document of a kafka ConfigMap.
type KafkaTopology struct {
	Topics []KafkaTopic `json:"topics"`
}

// KafkaTopic is one topic. Partitions can only grow; the replication factor
// is set at creation (0: the broker's default); Config entries are set, others
// left alone. Delete removes the topic and every record in it.
type KafkaTopic struct {
	Name              string            `json:"name"`
	Partitions        int               `json:"partitions"`
	ReplicationFactor int               `json:"replicationFactor,omitempty"`
	Config            map[string]string `json:"config,omitempty"`
	Delete            bool              `json:"delete,omitempty"`
}

// RabbitMQTopology is the document of a rabbitmq ConfigMap. It declares what
// the services declare, with the same arguments (services/platform/amqp), so
// whichever comes first the other agrees.
type RabbitMQTopology struct {
	Exchanges   []RabbitMQExchange   `json:"exchanges"`
	Queues      []RabbitMQQueue      `json:"queues"`
	DelayQueues []RabbitMQDelayQueue `json:"delayQueues"`
	Bindings    []RabbitMQBinding    `json:"bindings"`
}

// RabbitMQExchange is a durable exchange of Type topic, direct, fanout or headers.
type RabbitMQExchange struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Delete bool   `json:"delete,omitempty"`
}

// RabbitMQQueue is a durable work queue of Type quorum or classic; with
// DeadLetterQueue, "<name>.dlq" is declared too and takes what the queue rejects.
// Delete removes the queue and the messages in it (not its dead-letter queue).
type RabbitMQQueue struct {
	Name            string `json:"name"`
	Type            string `json:"type"`
	DeadLetterQueue bool   `json:"deadLetterQueue,omitempty"`
	Delete          bool   `json:"delete,omitempty"`
}

// RabbitMQDelayQueue holds each message for Delay, then dead-letters it to
// Exchange with RoutingKey: the timers of the order service.
type RabbitMQDelayQueue struct {
	Name       string   `json:"name"`
	Delay      Duration `json:"delay"`
	Exchange   string   `json:"exchange"`
	RoutingKey string   `json:"routingKey"`
	Delete     bool     `json:"delete,omitempty"`
}

// RabbitMQBinding routes an exchange's messages with RoutingKey to Queue.
type RabbitMQBinding struct {
	Exchange   string `json:"exchange"`
	Queue      string `json:"queue"`
	RoutingKey string `json:"routingKey"`
	Delete     bool   `json:"delete,omitempty"`
}

// Duration reads "4h" or "90s" from the document.
type Duration struct{ time.Duration }

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"4h\": %w", err)
	}
	parsed, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = parsed
	return nil
}

// MarshalJSON writes the duration as its string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", d.String())), nil }

// Kafka's own rule for topic names.
var kafkaTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ParseKafkaTopology reads and checks a kafka document; unknown fields are errors
// so a typo is reported instead of ignored.
func ParseKafkaTopology(doc string) (KafkaTopology, error) {
	var t KafkaTopology
	if err := yaml.UnmarshalStrict([]byte(doc), &t); err != nil {
		return t, fmt.Errorf("%s: %w", TopologyKey, err)
	}
	var errs []error
	seen := map[string]bool{}
	for i, topic := range t.Topics {
		at := fmt.Sprintf("topics[%d]", i)
		switch {
		case !kafkaTopicName.MatchString(topic.Name) || topic.Name == "." || topic.Name == "..":
			errs = append(errs, fmt.Errorf("%s.name %q: 1-249 of a-z A-Z 0-9 . _ -", at, topic.Name))
		case seen[topic.Name]:
			errs = append(errs, fmt.Errorf("%s.name %q: listed twice", at, topic.Name))
		}
		seen[topic.Name] = true
		if !topic.Delete && topic.Partitions < 1 {
			errs = append(errs, fmt.Errorf("%s.partitions: at least 1, got %d", at, topic.Partitions))
		}
		if topic.ReplicationFactor < 0 {
			errs = append(errs, fmt.Errorf("%s.replicationFactor: 0 (the broker's default) or more, got %d", at, topic.ReplicationFactor))
		}
	}
	return t, errors.Join(errs...)
}

// ParseRabbitMQTopology reads and checks a rabbitmq document.
func ParseRabbitMQTopology(doc string) (RabbitMQTopology, error) {
	var t RabbitMQTopology
	if err := yaml.UnmarshalStrict([]byte(doc), &t); err != nil {
		return t, fmt.Errorf("%s: %w", TopologyKey, err)
	}
	var errs []error
	named := func(at, name string) {
		if name == "" || len(name) > 255 || strings.HasPrefix(name, "amq.") {
			errs = append(errs, fmt.Errorf("%s.name %q: 1-255 bytes, and the amq. prefix is the broker's", at, name))
		}
	}
	for i, e := range t.Exchanges {
		at := fmt.Sprintf("exchanges[%d]", i)
		named(at, e.Name)
		switch e.Type {
		case "topic", "direct", "fanout", "headers":
		default:
			if !e.Delete {
				errs = append(errs, fmt.Errorf("%s.type %q: topic, direct, fanout or headers", at, e.Type))
			}
		}
	}
	for i, q := range t.Queues {
		at := fmt.Sprintf("queues[%d]", i)
		named(at, q.Name)
		if q.Type != "quorum" && q.Type != "classic" && !q.Delete {
			errs = append(errs, fmt.Errorf("%s.type %q: quorum or classic", at, q.Type))
		}
	}
	for i, d := range t.DelayQueues {
		at := fmt.Sprintf("delayQueues[%d]", i)
		named(at, d.Name)
		if !d.Delete && d.Delay.Duration < time.Millisecond {
			errs = append(errs, fmt.Errorf("%s.delay: at least 1ms, got %v", at, d.Delay.Duration))
		}
	}
	for i, b := range t.Bindings {
		if b.Exchange == "" || b.Queue == "" {
			errs = append(errs, fmt.Errorf("bindings[%d]: exchange and queue are required", i))
		}
	}
	return t, errors.Join(errs...)
}
