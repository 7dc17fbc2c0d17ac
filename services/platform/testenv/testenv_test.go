package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestTheReplicaStreamsThePrimary: the replica is a hot standby of the test
// server: what the primary commits appears there, and it refuses writes.
func TestTheReplicaStreamsThePrimary(t *testing.T) {
	ctx := context.Background()
	url := NewDatabase(t)
	primary, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	if _, err := primary.Exec(ctx, `CREATE TABLE marks (n int); INSERT INTO marks VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	replica, err := pgx.Connect(ctx, ReplicaURL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close(ctx)
	var recovering bool
	if err := replica.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovering); err != nil || !recovering {
		t.Fatalf("the replica is not a standby: %v, %v", recovering, err)
	}
	WaitFor(t, 10*time.Second, "the primary's row on the replica", func() bool {
		var n int
		return replica.QueryRow(ctx, `SELECT n FROM marks`).Scan(&n) == nil && n == 7
	})
	if _, err := replica.Exec(ctx, `INSERT INTO marks VALUES (8)`); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a write on the replica: %v, want a read-only refusal", err)
	}
}
