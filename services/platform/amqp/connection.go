// Package amqp is kshop's RabbitMQ layer: a connection that heals itself after the
// broker goes away, topology declared again after every reconnect, publishing with
// publisher confirms, consumers with bounded retries and dead-letter queues, and
// delayed delivery through TTL queues (no plugin needed).
package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kshop/kshop/services/platform/retry"
)

// ErrNotConnected is returned while the broker is unreachable; callers retry later.
var ErrNotConnected = errors.New("not connected to RabbitMQ")

// Connection keeps one AMQP connection open, reconnecting with backoff whenever
// it drops. Publishers and consumers made from it follow it across reconnects.
type Connection struct {
	url    string
	logger *slog.Logger

	mu         sync.Mutex
	conn       *amqp091.Connection
	generation uint64        // grows with every successful (re)connect
	changed    chan struct{} // closed and replaced whenever conn changes
	topologies []Topology

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// Dial returns at once and connects in the background; Ready tells when it is up.
// It never fails: a wrong URL or a broker that is down is logged and retried.
func Dial(url string, logger *slog.Logger) *Connection {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Connection{url: url, logger: logger, changed: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go c.maintain()
	return c
}

func (c *Connection) maintain() {
	defer close(c.done)
	attempt := 0
	for c.ctx.Err() == nil {
		conn, err := amqp091.DialConfig(c.url, amqp091.Config{Heartbeat: 5 * time.Second, Locale: "en_US"})
		if err == nil {
			err = c.redeclare(conn)
			if err != nil {
				_ = conn.Close()
			}
		}
		if err != nil {
			c.logger.Warn("connect to RabbitMQ; retrying", "error", redact(err), "attempt", attempt+1)
			retry.Sleep(c.ctx, retry.Default.Delay(attempt))
			attempt++
			continue
		}
		if attempt > 0 {
			c.logger.Info("connected to RabbitMQ again", "after_attempts", attempt)
		}
		attempt = 0
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		c.setConn(conn)
		select {
		case <-c.ctx.Done():
			c.setConn(nil)
			_ = conn.Close()
			return
		case reason := <-closed:
			c.setConn(nil)
			c.logger.Warn("RabbitMQ connection lost; reconnecting", "reason", fmt.Sprint(reason))
		}
	}
}

// redact keeps credentials of the URL out of logs: amqp091's dial errors do not
// include the URL, so only its own error text is logged.
func redact(err error) string { return err.Error() }

func (c *Connection) setConn(conn *amqp091.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	if conn != nil {
		c.generation++
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// current returns the live connection, its generation, and a channel closed at
// the next change.
func (c *Connection) current() (*amqp091.Connection, uint64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn, c.generation, c.changed
}

// waitConnected blocks until a connection is up or ctx ends.
func (c *Connection) waitConnected(ctx context.Context) (*amqp091.Connection, uint64, error) {
	for {
		conn, gen, changed := c.current()
		if conn != nil && !conn.IsClosed() {
			return conn, gen, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		case <-c.ctx.Done():
			return nil, 0, ErrNotConnected
		case <-changed:
		}
	}
}

// Ready reports whether the connection is up.
func (c *Connection) Ready(context.Context) error {
	conn, _, _ := c.current()
	if conn == nil || conn.IsClosed() {
		return ErrNotConnected
	}
	return nil
}

// Close stops reconnecting and closes the connection.
func (c *Connection) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Declare creates t's exchanges, queues, delay queues and bindings now (it waits
// for the connection until ctx ends) and again after every reconnect, so a broker
// that lost them, or a fresh one, gets them back.
func (c *Connection) Declare(ctx context.Context, t Topology) error {
	conn, _, err := c.waitConnected(ctx)
	if err != nil {
		return err
	}
	if err := DeclareTopology(conn, t); err != nil {
		return err
	}
	c.mu.Lock()
	c.topologies = append(c.topologies, t)
	c.mu.Unlock()
	return nil
}

func (c *Connection) redeclare(conn *amqp091.Connection) error {
	c.mu.Lock()
	topologies := append([]Topology(nil), c.topologies...)
	c.mu.Unlock()
	for _, t := range topologies {
		if err := DeclareTopology(conn, t); err != nil {
			return err
		}
	}
	return nil
}
