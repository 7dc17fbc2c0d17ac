package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/events"
)

// The unauthenticated development broker listens on one named address, never
// on every interface.
func TestTheDevelopmentBrokerRefusesEveryInterface(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:14099", ":14099", "[::]:14099", "kafka.example.com:14099", "127.0.0.1"} {
		if b, err := startDevKafka(t.Context(), binaries.DevKafkaConfig{Addr: addr}, slog.Default()); err == nil {
			b.Close()
			t.Errorf("%s was accepted", addr)
		} else if !strings.Contains(err.Error(), "KSHOP_DEV_KAFKA_ADDR") {
			t.Errorf("%s: the error does not name the setting: %v", addr, err)
		}
	}
	b, err := startDevKafka(t.Context(), binaries.DevKafkaConfig{Addr: "127.0.0.1:0"}, slog.Default())
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	b.Close()
}

// On another address of this machine the broker listens and advertises there,
// so clients that can reach only that address (pods) are sent back to it.
func TestTheDevelopmentBrokerAdvertisesTheAddressItListensOn(t *testing.T) {
	b, err := startDevKafka(t.Context(), binaries.DevKafkaConfig{Addr: "127.0.0.2:0"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if addrs := b.ListenAddrs(); len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.2:") {
		t.Fatalf("listens on %v, want 127.0.0.2", addrs)
	}
}

// Seeded, the broker holds the contract's topics with the chart's partition
// counts, so the controller finds nothing to change; unseeded it is empty.
func TestTheDevelopmentBrokerSeedsTheTopicsLikeTheChart(t *testing.T) {
	for _, seed := range []bool{true, false} {
		b, err := startDevKafka(t.Context(), binaries.DevKafkaConfig{Addr: "127.0.0.1:0", SeedTopics: seed}, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		client, err := kgo.NewClient(kgo.SeedBrokers(b.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		topics, err := kadm.NewClient(client).ListTopics(context.Background())
		client.Close()
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !seed {
			if len(topics) != 0 {
				t.Errorf("unseeded broker holds %v", topics.Names())
			}
			continue
		}
		for _, topic := range events.Topics {
			if n := len(topics[topic].Partitions); n != events.DefaultPartitions {
				t.Errorf("%s: %d partitions, want %d", topic, n, events.DefaultPartitions)
			}
			if n := len(topics[events.DeadLetterTopic(topic)].Partitions); n != events.DeadLetterPartitions {
				t.Errorf("%s: %d partitions, want %d", events.DeadLetterTopic(topic), n, events.DeadLetterPartitions)
			}
		}
	}
}

// The in-memory broker drops, in each partition, the records every group
// that consumes the topic has committed past, and keeps the rest: what a
// group has not read yet, a partition one group has not committed, and a
// topic no group reads (dead letters).
func TestTheInMemoryBrokerDropsOnlyWhatEveryGroupHasRead(t *testing.T) {
	ctx := context.Background()
	b, err := startDevKafka(t.Context(), binaries.DevKafkaConfig{Addr: "127.0.0.1:0", SeedTopics: true}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(b.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	read, unread := events.TopicOrderCreated.Name(), events.DeadLetterTopic(events.TopicOrderCreated.Name())
	// 3 MiB into each partition: more than one segment each.
	value := make([]byte, 1024)
	for topic, partitions := range map[string]int32{read: events.DefaultPartitions, unread: events.DeadLetterPartitions} {
		for partition := range partitions {
			for range 3 * 1024 {
				client.Produce(ctx, &kgo.Record{Topic: topic, Partition: partition, Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce to %s[%d]: %v", topic, partition, err)
					}
				})
			}
		}
	}
	if err := client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	commit := func(group string, at map[int32]int64) {
		t.Helper()
		offsets := kadm.Offsets{}
		for partition, offset := range at {
			offsets.AddOffset(read, partition, offset, -1)
		}
		if err := admin.CommitAllOffsets(ctx, group, offsets); err != nil {
			t.Fatalf("commit for %s: %v", group, err)
		}
	}
	// order has read partitions 0 and 1 far; mail less of 0 and nothing of 2.
	commit("order", map[int32]int64{0: 3000, 1: 2500, 2: 1000})
	commit("mail", map[int32]int64{0: 1200, 1: 2500})
	if err := dropConsumedRecords(ctx, admin); err != nil {
		t.Fatal(err)
	}
	starts, err := admin.ListStartOffsets(ctx, read, unread)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]int64{read: {0: 1200, 1: 2500, 2: 0}, unread: {0: 0}}
	for topic, partitions := range want {
		for partition, offset := range partitions {
			got, ok := starts.Lookup(topic, partition)
			if !ok || got.Err != nil || got.Offset != offset {
				t.Errorf("%s[%d] starts at %+v, want %d", topic, partition, got, offset)
			}
		}
	}
}
