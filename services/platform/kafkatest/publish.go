package kafkatest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/outbox"
)

// Publish produces payload on topic the way a service's outbox relay does:
// JSON, keyed by key, with the topic's headers and eventID in the event-id
// header. Tests use it to play the service on the other side of a topic.
func Publish[T any](t testing.TB, producer *kafka.Producer, topic outbox.KafkaTopic[T], key string, payload T, eventID string) {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	headers := topic.Headers()
	headers[kafka.EventIDHeader] = eventID
	if err := producer.Publish(context.Background(), kafka.Message{Topic: topic.Name(), Key: []byte(key), Value: body, Headers: headers}); err != nil {
		t.Fatalf("publish to %s: %v", topic.Name(), err)
	}
}
