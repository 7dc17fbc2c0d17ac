package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/retry"
)

// count is a payload type: a decimal number.
type count int

type countTopic struct{}

func (countTopic) Decode(value []byte) (count, error) {
	n, err := strconv.Atoi(string(value))
	return count(n), err
}

func TestHandleGivesTheHandlerTheEventIDAndTheDecodedPayload(t *testing.T) {
	id := uuid.NewString()
	var gotID string
	var got count
	handler := kafka.Handle(countTopic{}, func(_ context.Context, eventID string, n count) error {
		gotID, got = eventID, n
		return nil
	})
	err := handler(context.Background(), kafka.Message{Topic: "counts", Value: []byte("42"), Headers: map[string]string{kafka.EventIDHeader: id}})
	if err != nil || gotID != id || got != 42 {
		t.Fatalf("handled (%q, %d) with error %v; want (%q, 42) and none", gotID, got, err, id)
	}
	failure := errors.New("database down")
	handler = kafka.Handle(countTopic{}, func(context.Context, string, count) error { return failure })
	err = handler(context.Background(), kafka.Message{Topic: "counts", Value: []byte("1"), Headers: map[string]string{kafka.EventIDHeader: id}})
	if !errors.Is(err, failure) || retry.IsPermanent(err) {
		t.Errorf("the handler's own failure came back as %v (permanent: %v); want it as it was, to be retried", err, retry.IsPermanent(err))
	}
}

func TestHandleDeadLettersWhatNoRetryCanFix(t *testing.T) {
	for name, msg := range map[string]kafka.Message{
		"no event id":       {Topic: "counts", Value: []byte("1")},
		"event id no UUID":  {Topic: "counts", Value: []byte("1"), Headers: map[string]string{kafka.EventIDHeader: "7"}},
		"value not a count": {Topic: "counts", Value: []byte("seven"), Headers: map[string]string{kafka.EventIDHeader: uuid.NewString()}},
	} {
		t.Run(name, func(t *testing.T) {
			called := false
			err := kafka.Handle(countTopic{}, func(context.Context, string, count) error { called = true; return nil })(context.Background(), msg)
			if !retry.IsPermanent(err) || called {
				t.Errorf("error %v (permanent: %v), handler called: %v; want a permanent error and no call", err, retry.IsPermanent(err), called)
			}
		})
	}
}
