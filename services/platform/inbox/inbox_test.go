package inbox_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/testenv"
)

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(context.Background(), pool, inbox.Migrations); err != nil {
		t.Fatal(err)
	}
	return pool
}

func claim(t *testing.T, pool *pgxpool.Pool, consumer, id string) bool {
	t.Helper()
	var first bool
	err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		first, err = inbox.Claim(context.Background(), tx, consumer, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

func TestClaimOncePerConsumer(t *testing.T) {
	pool := newPool(t)
	if !claim(t, pool, "product.order-created", "e1") {
		t.Fatal("first claim reported a duplicate")
	}
	if claim(t, pool, "product.order-created", "e1") {
		t.Fatal("second claim of the same event reported first")
	}
	if !claim(t, pool, "order.stock-reserved", "e1") {
		t.Fatal("another consumer's claim of the same id must be independent")
	}
}

func TestRolledBackClaimCanBeClaimedAgain(t *testing.T) {
	pool := newPool(t)
	failed := errors.New("effect failed")
	err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		if _, err := inbox.Claim(context.Background(), tx, "c", "e1"); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatal(err)
	}
	if !claim(t, pool, "c", "e1") {
		t.Fatal("the claim of a rolled-back effect must not count")
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	pool := newPool(t)
	var winners atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
				first, err := inbox.Claim(context.Background(), tx, "c", "same-event")
				if first {
					winners.Add(1)
				}
				return err
			})
		}()
	}
	wg.Wait()
	if n := winners.Load(); n != 1 {
		t.Fatalf("%d goroutines won the claim, want 1", n)
	}
}

func TestClaimRefusesEmptyID(t *testing.T) {
	pool := newPool(t)
	err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		_, err := inbox.Claim(context.Background(), tx, "c", "")
		return err
	})
	if err == nil {
		t.Fatal("an empty event id was accepted")
	}
}

func TestPruneForgetsOldClaims(t *testing.T) {
	pool := newPool(t)
	claim(t, pool, "c", "old")
	claim(t, pool, "c", "new")
	if _, err := pool.Exec(context.Background(), `UPDATE inbox SET processed_at = now() - interval '8 days' WHERE event_id = 'old'`); err != nil {
		t.Fatal(err)
	}
	n, err := inbox.Prune(context.Background(), pool, 7*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
}

// The pruner runs on its own: claims past the retention go, recent ones stay,
// and the count is exported.
func TestThePrunerForgetsOldClaimsOnItsOwn(t *testing.T) {
	pool := newPool(t)
	claim(t, pool, "c", "old")
	claim(t, pool, "c", "recent")
	if _, err := pool.Exec(context.Background(), `UPDATE inbox SET processed_at = now() - interval '2 hours' WHERE event_id = 'old'`); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&inbox.Pruner{Pool: pool, Retention: time.Hour, Every: 50 * time.Millisecond, Registerer: reg}).Run(ctx)
	}()
	testenv.WaitFor(t, 10*time.Second, "the old claim to be pruned", func() bool {
		var n int
		return pool.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE event_id = 'old'`).Scan(&n) == nil && n == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if claim(t, pool, "c", "recent") {
		t.Fatal("the recent claim was pruned: its redelivery would take effect twice")
	}
	if got := testutil.ToFloat64(counterOf(t, reg, "inbox_pruned_rows_total")); got != 1 {
		t.Fatalf("inbox_pruned_rows_total = %v, want 1", got)
	}
}

func counterOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: name}, func() float64 { return f.GetMetric()[0].GetCounter().GetValue() })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestClaimAllReturnsOnlyTheFirstClaims(t *testing.T) {
	pool := newPool(t)
	claimAll := func(ids ...string) map[string]bool {
		t.Helper()
		var first map[string]bool
		if err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
			var err error
			first, err = inbox.ClaimAll(context.Background(), tx, "product.order-created", ids)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return first
	}
	if got := claimAll("e1", "e2", "e1"); len(got) != 2 || !got["e1"] || !got["e2"] {
		t.Fatalf("first claims %v, want e1 and e2 (e1 given twice counts once)", got)
	}
	if claim(t, pool, "product.order-created", "e3") != true {
		t.Fatal("e3 was claimed before it was given")
	}
	if got := claimAll("e2", "e3", "e4"); len(got) != 1 || !got["e4"] {
		t.Fatalf("first claims %v, want only e4: e2 and e3 were claimed before", got)
	}
	err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		_, err := inbox.ClaimAll(context.Background(), tx, "product.order-created", []string{"e5", ""})
		return err
	})
	if err == nil {
		t.Fatal("an empty event id was claimed")
	}
}
