package kafka

import (
	"testing"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// A member starts each partition at the group's committed offset; where the
// group never committed one, at the beginning (what auto.offset.reset=earliest
// would choose after its wait); where the lookup failed for that partition,
// librdkafka looks again.
func TestStartPositions(t *testing.T) {
	topic := "orders"
	committed := []ckafka.TopicPartition{
		{Topic: &topic, Partition: 0, Offset: 42},
		{Topic: &topic, Partition: 1, Offset: ckafka.OffsetInvalid},
		{Topic: &topic, Partition: 2, Offset: ckafka.OffsetInvalid, Error: ckafka.NewError(ckafka.ErrTimedOut, "timed out", false)},
		{Topic: &topic, Partition: 3, Offset: 0},
	}
	want := []ckafka.Offset{42, ckafka.OffsetBeginning, ckafka.OffsetStored, 0}
	got := startPositions(committed)
	for i, p := range got {
		if p.Offset != want[i] || p.Partition != committed[i].Partition || p.Error != nil {
			t.Errorf("partition %d: start at %v (error %v), want %v", p.Partition, p.Offset, p.Error, want[i])
		}
	}
	if committed[1].Offset != ckafka.OffsetInvalid || committed[2].Error == nil {
		t.Error("startPositions changed the list it was given")
	}
}
