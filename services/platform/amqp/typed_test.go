package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/retry"
)

// count is a payload type: a decimal number.
type count int

type countRoute struct{}

func (countRoute) Decode(body []byte) (count, error) {
	n, err := strconv.Atoi(string(body))
	return count(n), err
}

func TestHandleGivesTheHandlerTheMessageIDAndTheDecodedPayload(t *testing.T) {
	id := uuid.NewString()
	var gotID string
	var got count
	handler := amqp.Handle(countRoute{}, func(_ context.Context, messageID string, n count) error {
		gotID, got = messageID, n
		return nil
	})
	if err := handler(context.Background(), amqp.Delivery{MessageID: id, RoutingKey: "count", Body: []byte("42")}); err != nil || gotID != id || got != 42 {
		t.Fatalf("handled (%q, %d) with error %v; want (%q, 42) and none", gotID, got, err, id)
	}
	failure := errors.New("database down")
	handler = amqp.Handle(countRoute{}, func(context.Context, string, count) error { return failure })
	if err := handler(context.Background(), amqp.Delivery{MessageID: id, Body: []byte("1")}); !errors.Is(err, failure) || retry.IsPermanent(err) {
		t.Errorf("the handler's own failure came back as %v (permanent: %v); want it as it was, to be retried", err, retry.IsPermanent(err))
	}
}

func TestHandleDeadLettersWhatNoRetryCanFix(t *testing.T) {
	for name, d := range map[string]amqp.Delivery{
		"no message id":      {RoutingKey: "count", Body: []byte("1")},
		"message id no UUID": {MessageID: "7", RoutingKey: "count", Body: []byte("1")},
		"body not a count":   {MessageID: uuid.NewString(), RoutingKey: "count", Body: []byte("seven")},
	} {
		t.Run(name, func(t *testing.T) {
			called := false
			err := amqp.Handle(countRoute{}, func(context.Context, string, count) error { called = true; return nil })(context.Background(), d)
			if !retry.IsPermanent(err) || called {
				t.Errorf("error %v (permanent: %v), handler called: %v; want a permanent error and no call", err, retry.IsPermanent(err), called)
			}
		})
	}
}

type route struct{ exchange, kind, key, queue string }

func (r route) Address() (string, string) { return r.exchange, r.key }
func (r route) ExchangeKind() string      { return r.kind }
func (r route) QueueName() string         { return r.queue }

func TestWorkTopologyOfDeclaresEachExchangeAndQueueOnce(t *testing.T) {
	got := amqp.WorkTopologyOf([]route{
		{"mails", "topic", "send.a", "a"}, {"mails", "topic", "send.b", "b"}, {"pay", "direct", "send.a", "a"},
	})
	want := amqp.WorkTopology(
		amqp.WorkRoute{Exchange: "mails", ExchangeKind: "topic", RoutingKey: "send.a", Queue: "a"},
		amqp.WorkRoute{Exchange: "mails", ExchangeKind: "topic", RoutingKey: "send.b", Queue: "b"},
		amqp.WorkRoute{Exchange: "pay", ExchangeKind: "direct", RoutingKey: "send.a", Queue: "a"},
	)
	if len(got.Exchanges) != 2 || len(got.Queues) != 2 || len(got.Bindings) != 3 {
		t.Errorf("declares %d exchanges, %d queues, %d bindings; want 2, 2, 3", len(got.Exchanges), len(got.Queues), len(got.Bindings))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("WorkTopologyOf = %+v\nwant the WorkTopology of the same routes: %+v", got, want)
	}
}
