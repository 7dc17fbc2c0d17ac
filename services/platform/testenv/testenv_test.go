package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
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
