package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/kshop/kshop/services/platform/kafka"
)

// KafkaBroker makes a Kafka cluster match a kafka document.
type KafkaBroker struct {
	Connection kafka.Connection
	// Timeout bounds each admin request (zero: 30 s).
	Timeout time.Duration
}

// Apply creates missing topics, raises partition counts, sets the configs the
// document names and deletes topics marked delete. Fewer partitions and another
// replication factor are Problems: Kafka cannot do the first, and the second
// is a partition reassignment an operator plans.
func (k KafkaBroker) Apply(ctx context.Context, doc string) (Outcome, error) {
	var out Outcome
	t, err := ParseKafkaTopology(doc)
	if err != nil {
		return out, &InvalidDocumentError{err}
	}
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	props, err := k.Connection.ClientConfig(ckafka.ConfigMap{"log_level": 3})
	if err != nil {
		return out, fmt.Errorf("kafka admin client: %w", err)
	}
	admin, err := ckafka.NewAdminClient(props)
	if err != nil {
		return out, fmt.Errorf("kafka admin client: %w", err)
	}
	defer admin.Close()
	md, err := admin.GetMetadata(nil, true, int(timeout.Milliseconds()))
	if err != nil {
		return out, fmt.Errorf("read Kafka metadata from %s: %w", k.Connection.Brokers, err)
	}
	existing := map[string]ckafka.TopicMetadata{}
	for name, topic := range md.Topics {
		if topic.Error.Code() == ckafka.ErrNoError {
			existing[name] = topic
		}
	}

	var create []ckafka.TopicSpecification
	var remove []string
	var raise []ckafka.PartitionsSpecification
	var configured []KafkaTopic
	for _, topic := range t.Topics {
		current, found := existing[topic.Name]
		switch {
		case topic.Delete:
			if found {
				remove = append(remove, topic.Name)
			}
		case !found:
			replication := topic.ReplicationFactor
			if replication == 0 {
				replication = -1
			}
			create = append(create, ckafka.TopicSpecification{Topic: topic.Name, NumPartitions: topic.Partitions, ReplicationFactor: replication, Config: topic.Config})
		default:
			have := len(current.Partitions)
			if topic.Partitions > have {
				raise = append(raise, ckafka.PartitionsSpecification{Topic: topic.Name, IncreaseTo: topic.Partitions})
			} else if topic.Partitions < have {
				out.Problems = append(out.Problems, fmt.Sprintf("topic %s has %d partitions and the document asks for %d: Kafka cannot remove partitions; recreate the topic (delete: true, then again) if its records may go", topic.Name, have, topic.Partitions))
			}
			if replicas := len(current.Partitions[0].Replicas); topic.ReplicationFactor > 0 && replicas != topic.ReplicationFactor {
				out.Problems = append(out.Problems, fmt.Sprintf("topic %s has replication factor %d and the document asks for %d: change it with a partition reassignment (kafka-reassign-partitions)", topic.Name, replicas, topic.ReplicationFactor))
			}
			if len(topic.Config) > 0 {
				configured = append(configured, topic)
			}
		}
	}

	if len(remove) > 0 {
		results, err := admin.DeleteTopics(ctx, remove)
		if err := topicResults("delete", "deleted", results, err, &out); err != nil {
			return out, err
		}
	}
	if len(create) > 0 {
		results, err := admin.CreateTopics(ctx, create)
		if err := topicResults("create", "created", results, err, &out); err != nil {
			return out, err
		}
	}
	if len(raise) > 0 {
		results, err := admin.CreatePartitions(ctx, raise)
		if err := topicResults("raise partitions of", "raised the partitions of", results, err, &out); err != nil {
			return out, err
		}
	}
	if len(configured) > 0 {
		if err := k.setConfigs(ctx, admin, configured, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (k KafkaBroker) setConfigs(ctx context.Context, admin *ckafka.AdminClient, topics []KafkaTopic, out *Outcome) error {
	resources := make([]ckafka.ConfigResource, len(topics))
	for i, topic := range topics {
		resources[i] = ckafka.ConfigResource{Type: ckafka.ResourceTopic, Name: topic.Name}
	}
	described, err := admin.DescribeConfigs(ctx, resources)
	if err != nil {
		return fmt.Errorf("describe topic configs: %w", err)
	}
	var alter []ckafka.ConfigResource
	for i, topic := range topics {
		current := described[i].Config
		var entries []ckafka.ConfigEntry
		for _, name := range sortedKeys(topic.Config) {
			if entry, ok := current[name]; ok && entry.Value == topic.Config[name] {
				continue
			}
			entries = append(entries, ckafka.ConfigEntry{Name: name, Value: topic.Config[name], IncrementalOperation: ckafka.AlterConfigOpTypeSet})
		}
		if len(entries) > 0 {
			alter = append(alter, ckafka.ConfigResource{Type: ckafka.ResourceTopic, Name: topic.Name, Config: entries})
		}
	}
	if len(alter) == 0 {
		return nil
	}
	results, err := admin.IncrementalAlterConfigs(ctx, alter)
	if err != nil {
		return fmt.Errorf("set topic configs: %w", err)
	}
	for i, r := range results {
		if r.Error.Code() != ckafka.ErrNoError {
			out.Problems = append(out.Problems, fmt.Sprintf("topic %s: the broker refused its config: %v", r.Name, r.Error))
			continue
		}
		var names []string
		for _, e := range alter[i].Config {
			names = append(names, e.Name+"="+e.Value)
		}
		out.Changes = append(out.Changes, fmt.Sprintf("set %v on topic %s", names, r.Name))
	}
	return nil
}

// topicResults turns per-topic admin results into changes; a request that
// failed as a whole is an error (the broker is unreachable), one refused topic
// a Problem.
func topicResults(verb, done string, results []ckafka.TopicResult, err error, out *Outcome) error {
	if err != nil {
		return fmt.Errorf("%s topics: %w", verb, err)
	}
	for _, r := range results {
		switch r.Error.Code() {
		case ckafka.ErrNoError:
			out.Changes = append(out.Changes, fmt.Sprintf("%s topic %s", done, r.Topic))
		case ckafka.ErrTopicAlreadyExists, ckafka.ErrUnknownTopicOrPart:
			// Someone else did it between our read and our write.
		default:
			out.Problems = append(out.Problems, fmt.Sprintf("%s topic %s: %v", verb, r.Topic, r.Error))
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
