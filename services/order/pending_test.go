package order_test

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/pg"
)

// pendingCountsMatch fails when a customer's pending counts (customers, kept
// by triggers) differ from a count of the customer's PENDING orders and their
// units.
func pendingCountsMatch(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	rows, err := db.Query(context.Background(), `
		SELECT c.id, c.pending_orders, c.pending_units, coalesce(p.orders, 0), coalesce(p.units, 0)
		FROM customers c LEFT JOIN (
			SELECT o.customer_id, count(DISTINCT o.id) AS orders, coalesce(sum(i.quantity), 0) AS units
			FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
			WHERE o.status = 'PENDING' GROUP BY o.customer_id
		) p ON p.customer_id = c.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	customers := 0
	for rows.Next() {
		var id, orders, units, wantOrders, wantUnits int64
		if err := rows.Scan(&id, &orders, &units, &wantOrders, &wantUnits); err != nil {
			t.Fatal(err)
		}
		customers++
		if orders != wantOrders || units != wantUnits {
			t.Errorf("customer %d: counted %d pending orders of %d units; there are %d of %d", id, orders, units, wantOrders, wantUnits)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if customers == 0 {
		t.Fatal("no customers to check")
	}
}

// migrationsBefore is the order service's migration set as it was before
// version: the schema an earlier release left.
func migrationsBefore(t *testing.T, version string) pg.Migrations {
	t.Helper()
	files := fstest.MapFS{}
	names, err := fs.Glob(os.DirFS("."), "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("the order migrations: %v (%d files)", err, len(names))
	}
	for _, name := range names {
		if strings.TrimPrefix(name, "migrations/") >= version {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: data}
	}
	return pg.EmbeddedMigrations("order", files, "migrations")
}

// An installation upgraded to the counted pending limits: the orders its
// earlier release placed count (ann's two pending ones, not her paid one; bob's,
// though he ordered before customers had rows), and so do the orders that a
// replica of the earlier release, still running during the rolling upgrade,
// places and settles without knowing of the counts.
func TestPendingCountsIncludeOrdersPlacedBeforeTheUpgrade(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPendingOrders, cfg.MaxPendingUnits = 3, 1000
	ctx := context.Background()
	db, err := pgxpool.New(ctx, cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := pg.Migrate(ctx, db, migrationsBefore(t, "0005")); err != nil {
		t.Fatal(err)
	}
	// placeTheOldWay writes an order as the earlier release did: the order and
	// its lines, nothing else.
	placeTheOldWay := func(customer int64, status string, quantities ...int) int64 {
		t.Helper()
		var id int64
		paidAt := "NULL"
		if status == "PAID" {
			paidAt = "now()"
		}
		if err := db.QueryRow(ctx, `INSERT INTO orders (customer_id, customer_email, request_id, total_amount, status, paid_at)
			VALUES ($1, 'someone@example.com', $2, 1, $3, `+paidAt+`) RETURNING id`, customer, uuid.NewString(), status).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for i, q := range quantities {
			if _, err := db.Exec(ctx, `INSERT INTO order_items (order_id, product_id, product_name, quantity, price) VALUES ($1, $2, 'p', $3, 1)`,
				id, i+1, q); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	if _, err := db.Exec(ctx, `INSERT INTO customers (id) VALUES ($1)`, ann.ID); err != nil {
		t.Fatal(err)
	}
	placeTheOldWay(ann.ID, "PENDING", 3)
	placeTheOldWay(ann.ID, "PENDING", 2, 2)
	placeTheOldWay(ann.ID, "PAID", 50)
	placeTheOldWay(bob.ID, "PENDING", 5)

	s := start(t, cfg) // migrates to the current schema
	s.product(t, 1, "1.00", 100)
	pendingCountsMatch(t, s.db)
	s.placeOrder(t, &ann, [2]int64{1, 1})
	s.Do(t, &ann, http.MethodPost, "/orders", orderBody(uuid.NewString(), [2]int64{1, 1})).Expect(t, http.StatusConflict, "too many pending orders")

	old := placeTheOldWay(bob.ID, "PENDING", 4, 6)
	pendingCountsMatch(t, s.db)
	if _, err := db.Exec(ctx, `UPDATE orders SET status = 'CANCELLED', cancel_reason = 'customer' WHERE id = $1`, old); err != nil {
		t.Fatal(err)
	}
	pendingCountsMatch(t, s.db)
	if n := count(t, s.db, `SELECT pending_orders FROM customers WHERE id = $1`, bob.ID); n != 1 {
		t.Fatalf("bob has %d pending orders counted, want 1", n)
	}
}
