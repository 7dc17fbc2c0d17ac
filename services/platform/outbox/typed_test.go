package outbox_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kshop/kshop/services/platform/outbox"
)

type priceChanged struct {
	ProductID int64 `json:"product_id"`
	Cents     int64 `json:"cents"`
}

type priceTopic struct{}

func (priceTopic) Name() string { return "price-changed" }
func (priceTopic) Headers() map[string]string {
	return map[string]string{"event-type": "price-changed"}
}
func (priceTopic) Carries(priceChanged)      {}
func (priceTopic) Address() (string, string) { return "prices", "price.changed" }

// signal cannot be encoded as JSON: a channel.
type signal chan int

type signalTopic struct{}

func (signalTopic) Name() string               { return "signals" }
func (signalTopic) Headers() map[string]string { return nil }
func (signalTopic) Carries(signal)             {}

func TestTypedConstructorsAddressAndEncodeTheMessage(t *testing.T) {
	payload := priceChanged{ProductID: 7, Cents: 1999}
	want, _ := json.Marshal(payload)
	for name, c := range map[string]struct {
		msg                    outbox.Message
		destination            outbox.Destination
		topic, key, headerType string
	}{
		"Event":   {outbox.Event(priceTopic{}, "7", payload), outbox.Kafka, "price-changed", "7", "price-changed"},
		"Work":    {outbox.Work(priceTopic{}, payload), outbox.AMQP, "prices", "price.changed", ""},
		"Delayed": {outbox.Delayed(priceTopic{}, "prices.delay.30s", time.Now().Add(30*time.Second), payload), outbox.AMQP, "", "prices.delay.30s", ""},
	} {
		m := c.msg
		if m.Destination != c.destination || m.Topic != c.topic || m.Key != c.key || m.Headers["event-type"] != c.headerType || string(m.Payload) != string(want) {
			t.Errorf("%s = %+v (payload %s); want %s %q key %q, event-type %q, payload %s", name, m, m.Payload, c.destination, c.topic, c.key, c.headerType, want)
		}
	}
}

// TestAWrongPayloadDoesNotCompile builds testdata/wrongpayload, which puts an
// orderPaid on a topic of priceChanged, and expects the compiler to refuse it:
// that refusal is the point of binding payload types to topics.
func TestAWrongPayloadDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	out, err := exec.Command("go", "build", "-o", "/dev/null", "./testdata/wrongpayload").CombinedOutput()
	if err == nil {
		t.Fatal("a message with the wrong payload type compiled")
	}
	// The compiler's wording changes between releases; the two types it names do not.
	if !strings.Contains(string(out), "orderPaid") || !strings.Contains(string(out), "priceChanged") {
		t.Fatalf("the build failed, but not for the payload type:\n%s", out)
	}
}

func TestInCarriesTheGivenTraceAndLeavesTheMessageAlone(t *testing.T) {
	before := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(before) })
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))

	m := outbox.Event(priceTopic{}, "7", priceChanged{ProductID: 7})
	traced := m.In(ctx)
	if got, want := traced.Headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	if traced.Headers["event-type"] != "price-changed" {
		t.Errorf("the message's own headers were lost: %v", traced.Headers)
	}
	if _, ok := m.Headers["traceparent"]; ok {
		t.Errorf("In changed the message it was given: %v", m.Headers)
	}
}
