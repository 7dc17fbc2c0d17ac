package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestNewDatabaseIsEmptyAndUsable(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("new database has %d tables, want 0", tables)
	}
}

func TestServersAreReachable(t *testing.T) {
	RedisAddr(t)
	if n := len(RedisClusterAddrs(t)); n != 6 {
		t.Fatalf("Redis Cluster has %d addresses, want 6", n)
	}
	AMQPURL(t)
}

func TestOwnAMQPURLIsAPrivateVHost(t *testing.T) {
	u := OwnAMQPURL(t)
	if u == AMQPURL(t) || !strings.Contains(u, "/test-") {
		t.Fatalf("OwnAMQPURL = %s, want a vhost of its own", u)
	}
	if again := OwnAMQPURL(t); again != u {
		t.Fatalf("second call gave %s, want the same vhost %s", again, u)
	}
	conn, err := amqp091.Dial(u)
	if err != nil {
		t.Fatalf("dial the vhost: %v", err)
	}
	conn.Close()
}

func TestNewAMQPVHostIsOneTestsOwn(t *testing.T) {
	first, second := NewAMQPVHost(t), NewAMQPVHost(t)
	if first == second || first == OwnAMQPURL(t) || !strings.Contains(first, "/test-") {
		t.Fatalf("NewAMQPVHost gave %s and %s (the process's own: %s), want two fresh vhosts", first, second, OwnAMQPURL(t))
	}
	for _, u := range []string{first, second} {
		conn, err := amqp091.Dial(u)
		if err != nil {
			t.Fatalf("dial the vhost %s: %v", u, err)
		}
		conn.Close()
	}
}
