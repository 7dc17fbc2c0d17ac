package pg_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/testenv"
)

func open(t *testing.T, cfg pg.Config) *pg.DB {
	t.Helper()
	db, err := pg.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func files(kv ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return fsys
}

func scalar[T any](t *testing.T, pool *pgxpool.Pool, query string) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), query).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func TestReplicaDefaultsToPrimary(t *testing.T) {
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	if db.Replica != db.Primary {
		t.Fatal("without a replica URL, Replica must be the primary pool")
	}
	if err := db.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestReadsGoToTheReplicaPool(t *testing.T) {
	url := testenv.NewDatabase(t)
	db := open(t, pg.Config{URL: url + "&application_name=primary", ReplicaURL: url + "&application_name=replica"})
	if got := scalar[string](t, db.Replica, `SELECT current_setting('application_name')`); got != "replica" {
		t.Fatalf("replica pool reached %q", got)
	}
	if got := scalar[string](t, db.Primary, `SELECT current_setting('application_name')`); got != "primary" {
		t.Fatalf("primary pool reached %q", got)
	}
}

func TestOpenWithBadURLNamesTheSettingNotThePassword(t *testing.T) {
	_, err := pg.Open(context.Background(), pg.Config{URL: "postgres://u:s3cret@host:notaport/db"})
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v; want one naming DATABASE_URL without the password", err)
	}
}

func TestDatabaseDownIsNotReadyAndDoesNotPanic(t *testing.T) {
	db := open(t, pg.Config{URL: "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"})
	if err := db.Ready(context.Background()); err == nil {
		t.Fatal("Ready = nil with no server")
	}
}

func TestMigrateAppliesOnceAcrossSources(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	service := pg.Migrations{Source: "service", FS: files(
		"0001_create_items.sql", `CREATE TABLE items (id int PRIMARY KEY)`,
		"0002_seed_items.sql", `INSERT INTO items VALUES (1), (2)`,
	)}
	platform := pg.Migrations{Source: "platform", FS: files("0001_create_items_log.sql", `CREATE TABLE items_log (id int)`)}
	for range 2 { // the second run finds everything applied
		if err := pg.Migrate(ctx, db.Primary, service, platform); err != nil {
			t.Fatal(err)
		}
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM items`); n != 2 {
		t.Fatalf("items has %d rows, want 2 (seed applied once)", n)
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM schema_migrations`); n != 3 {
		t.Fatalf("schema_migrations has %d rows, want 3", n)
	}
}

func TestFailingMigrationRollsBackAndIsNamed(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	set := pg.Migrations{Source: "service", FS: files(
		"0001_create_a.sql", `CREATE TABLE a (id int)`,
		"0002_broken.sql", `CREATE TABLE b (id int); INSERT INTO nowhere VALUES (1)`,
	)}
	err := pg.Migrate(ctx, db.Primary, set)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("err = %v; want it to name 0002_broken.sql", err)
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM pg_tables WHERE tablename = 'b'`); n != 0 {
		t.Fatal("table b exists: the failed migration was not rolled back")
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM schema_migrations`); n != 1 {
		t.Fatalf("%d migrations recorded, want 1", n)
	}
}

func TestMalformedMigrationSetsAreRefused(t *testing.T) {
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	for name, fsys := range map[string]fstest.MapFS{
		"bad name":       files("create.sql", `SELECT 1`),
		"shared version": files("0001_a.sql", `SELECT 1`, "001_b.sql", `SELECT 1`),
	} {
		if err := pg.Migrate(context.Background(), db.Primary, pg.Migrations{Source: "s", FS: fsys}); err == nil {
			t.Errorf("%s: Migrate accepted it", name)
		}
	}
}

// TestConcurrentMigrationsRunOnce starts eight "processes" (each its own pool) at
// once on a migration that fails if it runs twice.
func TestConcurrentMigrationsRunOnce(t *testing.T) {
	url := testenv.NewDatabase(t)
	set := pg.Migrations{Source: "service", FS: files(
		"0001_create_once.sql", `CREATE TABLE once (id int); INSERT INTO once VALUES (1)`,
	)}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := pg.Open(context.Background(), pg.Config{URL: url, MaxConns: 2})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- pg.Migrate(context.Background(), db.Primary, set)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	db := open(t, pg.Config{URL: url})
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM once`); n != 1 {
		t.Fatalf("once has %d rows, want 1", n)
	}
}

func TestInTx(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	if _, err := db.Primary.Exec(ctx, `CREATE TABLE t (v text)`); err != nil {
		t.Fatal(err)
	}
	insert := func(v string) func(pgx.Tx) error {
		return func(tx pgx.Tx) error { _, err := tx.Exec(ctx, `INSERT INTO t VALUES ($1)`, v); return err }
	}
	if err := pg.InTx(ctx, db.Primary, insert("committed")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := pg.InTx(ctx, db.Primary, func(tx pgx.Tx) error { _ = insert("rolled back")(tx); return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not continue after the rollback")
			}
		}()
		_ = pg.InTx(ctx, db.Primary, func(tx pgx.Tx) error { _ = insert("panicked")(tx); panic("bug") })
	}()
	if got := scalar[string](t, db.Primary, `SELECT string_agg(v, ',') FROM t`); got != "committed" {
		t.Fatalf("table holds %q, want only the committed row", got)
	}
	if n := db.Primary.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still held after the transactions", n)
	}
}
