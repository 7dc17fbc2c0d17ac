// Package amqptest reads RabbitMQ queues in tests the way a consumer would, so a
// test can check what a service published: which message, to which queue, with
// which payload.
package amqptest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Reader takes messages off queues. Messages read while looking for another one
// are kept, so tests can look for messages in any order.
type Reader struct {
	t    testing.TB
	ch   *amqp091.Channel
	mu   sync.Mutex
	kept map[string][]amqp091.Delivery
	// Timeout bounds the wait in Next (default 10 s).
	Timeout time.Duration
}

// Dial connects to url for the rest of the test. A test's first connection
// may meet a node busy with the other test packages that run beside it: when
// the node closes the socket during the handshake (amqp091 reports that as
// 403 "username or password not allowed", whatever the reason), Dial tries
// again for up to 30 s before the test fails.
func Dial(t testing.TB, url string) *amqp091.Connection {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := amqp091.Dial(url)
		if err == nil {
			t.Cleanup(func() { _ = conn.Close() })
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("amqptest: dial for 30 s: %v", err)
		}
		t.Logf("amqptest: dial: %v; trying again", err)
		time.Sleep(250 * time.Millisecond)
	}
}

// NewReader connects to url for the rest of the test.
func NewReader(t testing.TB, url string) *Reader {
	t.Helper()
	conn := Dial(t, url)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqptest: channel: %v", err)
	}
	return &Reader{t: t, ch: ch, kept: map[string][]amqp091.Delivery{}, Timeout: 10 * time.Second}
}

// KeyOf picks a JSON field of a message body as its match key: KeyOf("email")
// or KeyOf("order_id").
func KeyOf(field string) func([]byte) string {
	return func(body []byte) string {
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			return ""
		}
		raw := fields[field]
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(raw)
	}
}

// Next returns the next message on queue whose key (by keyOf) is want, waiting
// up to Timeout.
func (r *Reader) Next(queue string, keyOf func([]byte) string, want string) amqp091.Delivery {
	r.t.Helper()
	deadline := time.Now().Add(r.Timeout)
	for {
		if d, ok := r.take(queue, keyOf, want); ok {
			return d
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("amqptest: no message with key %q on queue %s within %v", want, queue, r.Timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// None fails the test if a message with key want arrives on queue within wait.
func (r *Reader) None(queue string, keyOf func([]byte) string, want string, wait time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if d, ok := r.take(queue, keyOf, want); ok {
			r.t.Fatalf("amqptest: unexpected message on %s: %s", queue, d.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Count returns how many messages with key want are on queue now (draining it).
func (r *Reader) Count(queue string, keyOf func([]byte) string, want string) int {
	r.t.Helper()
	r.drain(queue, keyOf)
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.kept[queue+"\x00"+want])
}

func (r *Reader) take(queue string, keyOf func([]byte) string, want string) (amqp091.Delivery, bool) {
	r.drain(queue, keyOf)
	r.mu.Lock()
	defer r.mu.Unlock()
	k := queue + "\x00" + want
	if pending := r.kept[k]; len(pending) > 0 {
		r.kept[k] = pending[1:]
		return pending[0], true
	}
	return amqp091.Delivery{}, false
}

func (r *Reader) drain(queue string, keyOf func([]byte) string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		d, ok, err := r.ch.Get(queue, true)
		if err != nil {
			r.t.Fatalf("amqptest: get from %s: %v", queue, err)
		}
		if !ok {
			return
		}
		k := queue + "\x00" + keyOf(d.Body)
		r.kept[k] = append(r.kept[k], d)
	}
}
