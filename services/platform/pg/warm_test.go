package pg

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/platform/testenv"
)

// A new connection is warmed on every table of its schema that its role may
// read, and only those: a table it may not read neither fails the connection
// nor is touched.
func TestWarmingTouchesTheTablesTheRoleMayRead(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	role := "warm_" + testenv.RandomSuffix()
	for _, stmt := range []string{
		`CREATE TABLE orders (id bigint PRIMARY KEY)`,
		`CREATE TABLE "Order Items" (order_id bigint REFERENCES orders)`,
		`CREATE TABLE secrets (value text)`,
		`CREATE ROLE ` + role,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT ON orders, "Order Items" TO ` + role,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		cleanup, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Error(err)
			return
		}
		defer cleanup.Close(context.Background())
		_, _ = cleanup.Exec(context.Background(), `DROP OWNED BY `+role)
		_, _ = cleanup.Exec(context.Background(), `DROP ROLE `+role)
	})

	warmed, err := warmCatalogCaches(ctx, conn)
	if want := []string{`public."Order Items"`, "public.orders", "public.secrets"}; err != nil || !slices.Equal(warmed, want) {
		t.Fatalf("as the owner: warmed %q, %v; want %q", warmed, err, want)
	}
	if _, err := conn.Exec(ctx, `SET ROLE `+role); err != nil {
		t.Fatal(err)
	}
	warmed, err = warmCatalogCaches(ctx, conn)
	if want := []string{`public."Order Items"`, "public.orders"}; err != nil || !slices.Equal(warmed, want) {
		t.Fatalf("as a role that may not read secrets: warmed %q, %v; want %q", warmed, err, want)
	}
	if err := warmNewConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatal(fmt.Errorf("the connection after warming: %w", err))
	}
}
