package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// publishSequences publishes, for each of keys keys, the values key:0 … key:n-1
// in that order, to topic.
func publishSequences(t *testing.T, brokers, topic string, keys, n int) {
	t.Helper()
	var msgs []kafka.Message
	for i := range n {
		for k := range keys {
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(fmt.Sprint("k", k)), Value: []byte(fmt.Sprintf("k%d:%d", k, i))})
		}
	}
	for i, err := range newProducer(t, brokers).PublishBatch(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// inOrder fails unless each key's values were handled in the order published.
func inOrder(t *testing.T, handled []string) {
	t.Helper()
	next := map[string]int{}
	for _, v := range handled {
		key, i, _ := strings.Cut(v, ":")
		if want := fmt.Sprint(next[key]); i != want {
			t.Fatalf("%s handled where %s:%s was due: %v", v, key, want, handled)
		}
		next[key]++
	}
}

// A slow message holds up its own partition only: the first message handled
// waits until a message of another partition has been handled, which a
// consumer that handles one message at a time never gets to. Each key (one
// partition) is still handled in order.
func TestPartitionsAreHandledSideBySideEachInOrder(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(3, "sides"))
	publishSequences(t, brokers, "sides", 12, 5)

	var mu sync.Mutex
	var handled []string
	firstPartition := int32(-1)
	otherHandled := make(chan struct{})
	var otherOnce sync.Once
	waitedFor := make(chan bool, 1)
	consume(t, kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "sides", Topics: []string{"sides"}},
		func(ctx context.Context, m kafka.Message) error {
			mu.Lock()
			first := firstPartition == -1
			if first {
				firstPartition = m.Partition
			}
			other := m.Partition != firstPartition
			mu.Unlock()
			if first {
				select {
				case <-otherHandled:
					waitedFor <- true
				case <-time.After(10 * time.Second):
					waitedFor <- false
				}
			}
			mu.Lock()
			handled = append(handled, string(m.Value))
			mu.Unlock()
			if other {
				otherOnce.Do(func() { close(otherHandled) })
			}
			return nil
		})
	if !<-waitedFor {
		t.Fatal("no message of another partition was handled while the first one waited: the partitions are handled one after the other")
	}
	testenv.WaitFor(t, 30*time.Second, "60 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(handled) == 60 })
	mu.Lock()
	defer mu.Unlock()
	inOrder(t, handled)
}

// When a second member joins, the first gives up partitions while its workers
// are busy with them: it finishes what it handed out and commits it first, so
// nothing is lost, nothing is handled twice and every key stays in order.
func TestRebalanceMidWorkLosesAndRepeatsNothing(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(3, "shared"))
	publishSequences(t, brokers, "shared", 12, 40)

	var mu sync.Mutex
	var handled []string
	times := map[string]int{}
	handler := func(ctx context.Context, m kafka.Message) error {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, string(m.Value))
		times[string(m.Value)]++
		return nil
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(times) }
	cfg := kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "shared", Topics: []string{"shared"}}
	consume(t, cfg, handler)
	testenv.WaitFor(t, 30*time.Second, "the first member to be busy", func() bool { return count() >= 40 })
	consume(t, cfg, handler)
	testenv.WaitFor(t, 60*time.Second, "480 distinct messages", func() bool { return count() == 480 })
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for v, n := range times {
		if n != 1 {
			t.Errorf("%s handled %d times", v, n)
		}
	}
	inOrder(t, handled)
}

// A consumer is joined once the group gave it its partitions, not before:
// a service answering from what its consumers bring is ready only then.
func TestJoinedOnlyOnceTheGroupAssignedPartitions(t *testing.T) {
	brokers := kafkatest.NewCluster(t, kafkatest.WithTopics(3, "joining"))
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "joining", Topics: []string{"joining"}},
		func(context.Context, kafka.Message) error { return nil }, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ready := kafka.AllJoined([]*kafka.Consumer{c})
	if err := ready(context.Background()); err == nil || !strings.Contains(err.Error(), "joining has not joined its group yet") {
		t.Fatalf("before Run: %v, want the group named as not joined", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testenv.WaitFor(t, 30*time.Second, "the consumer to join", func() bool { return ready(context.Background()) == nil })
}
