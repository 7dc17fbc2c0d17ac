package pg_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

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

// up is a migration file's text: goose's annotation, then the statements.
func up(statements string) string { return "-- +goose Up\n" + statements + "\n" }

func TestMigrateAppliesOnceAcrossSources(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	service := pg.Migrations{Source: "service", FS: files(
		"0001_create_items.sql", up(`CREATE TABLE items (id int PRIMARY KEY);`),
		"0002_seed_items.sql", up(`INSERT INTO items VALUES (1);
INSERT INTO items VALUES (2);`),
	)}
	// The same version as the service's first: each set numbers its own.
	platform := pg.Migrations{Source: "platform", FS: files("0001_create_items_log.sql", up(`CREATE TABLE items_log (id int);`))}
	for range 2 { // the second run finds everything applied
		if err := pg.Migrate(ctx, db.Primary, service, platform); err != nil {
			t.Fatal(err)
		}
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM items`); n != 2 {
		t.Fatalf("items has %d rows, want 2 (seed applied once)", n)
	}
	if got := appliedVersions(t, db.Primary, "service"); got != "1,2" {
		t.Fatalf("service's applied versions are %q, want 1,2", got)
	}
	if got := appliedVersions(t, db.Primary, "platform"); got != "1" {
		t.Fatalf("platform's applied versions are %q, want 1", got)
	}
}

// appliedVersions lists the versions goose recorded for a set, in order.
func appliedVersions(t *testing.T, pool *pgxpool.Pool, source string) string {
	t.Helper()
	return scalar[string](t, pool, `SELECT coalesce(string_agg(version_id::text, ',' ORDER BY version_id), '')
		FROM goose_db_version_`+source+` WHERE version_id > 0 AND is_applied`)
}

func TestFailingMigrationRollsBackAndIsNamed(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	set := pg.Migrations{Source: "service", FS: files(
		"0001_create_a.sql", up(`CREATE TABLE a (id int);`),
		"0002_broken.sql", up(`CREATE TABLE b (id int);
INSERT INTO nowhere VALUES (1);`),
	)}
	err := pg.Migrate(ctx, db.Primary, set)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("err = %v; want it to name 0002_broken.sql", err)
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM pg_tables WHERE tablename = 'b'`); n != 0 {
		t.Fatal("table b exists: the failed migration was not rolled back")
	}
	if got := appliedVersions(t, db.Primary, "service"); got != "1" {
		t.Fatalf("applied versions are %q, want only 1", got)
	}
}

func TestMalformedMigrationSetsAreRefused(t *testing.T) {
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	for name, set := range map[string]pg.Migrations{
		"bad name":          {Source: "s", FS: files("create.sql", up(`SELECT 1;`))},
		"shared version":    {Source: "s", FS: files("0001_a.sql", up(`SELECT 1;`), "001_b.sql", up(`SELECT 1;`))},
		"no annotation":     {Source: "s", FS: files("0001_a.sql", `CREATE TABLE a (id int);`)},
		"no semicolon":      {Source: "s", FS: files("0001_a.sql", up(`CREATE TABLE a (id int)`))},
		"unusable source":   {Source: "s; DROP", FS: files("0001_a.sql", up(`SELECT 1;`))},
		"source of capital": {Source: "Service", FS: files("0001_a.sql", up(`SELECT 1;`))},
	} {
		if err := pg.Migrate(context.Background(), db.Primary, set); err == nil {
			t.Errorf("%s: Migrate accepted it", name)
		}
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM pg_tables WHERE tablename = 'a'`); n != 0 {
		t.Fatal("table a exists: a refused set was applied")
	}
}

// TestMigrationMergedLateIsApplied: a migration whose version is below the
// highest applied (merged from a branch after a later one shipped) is applied,
// as the runner before goose did.
func TestMigrationMergedLateIsApplied(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	early := files("0001_create_a.sql", up(`CREATE TABLE a (id int);`), "0003_create_c.sql", up(`CREATE TABLE c (id int);`))
	if err := pg.Migrate(ctx, db.Primary, pg.Migrations{Source: "service", FS: early}); err != nil {
		t.Fatal(err)
	}
	late := files("0002_create_b.sql", up(`CREATE TABLE b (id int);`))
	maps.Copy(late, early)
	if err := pg.Migrate(ctx, db.Primary, pg.Migrations{Source: "service", FS: late}); err != nil {
		t.Fatal(err)
	}
	if got := appliedVersions(t, db.Primary, "service"); got != "1,2,3" {
		t.Fatalf("applied versions are %q, want 1,2,3", got)
	}
}

// TestDatabaseOfTheRunnerBeforeGooseIsAdopted sets up a database as the runner
// before goose left it (the schema applied, its versions in schema_migrations)
// and migrates it with a later migration added: goose must apply that one only.
func TestDatabaseOfTheRunnerBeforeGooseIsAdopted(t *testing.T) {
	ctx := context.Background()
	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	if _, err := db.Primary.Exec(ctx, `
		CREATE TABLE schema_migrations (
			source     text        NOT NULL,
			version    integer     NOT NULL,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (source, version)
		);
		CREATE TABLE items (id int PRIMARY KEY);
		INSERT INTO items VALUES (1);
		CREATE TABLE items_log (id int);
		INSERT INTO schema_migrations (source, version, name) VALUES
			('service', 1, '0001_create_items.sql'),
			('service', 2, '0002_seed_items.sql'),
			('platform', 1, '0001_create_items_log.sql'),
			('other', 1, '0001_create_other.sql')`); err != nil {
		t.Fatal(err)
	}
	// Applying 0001 or 0002 again fails (the table exists, the key is taken).
	service := pg.Migrations{Source: "service", FS: files(
		"0001_create_items.sql", up(`CREATE TABLE items (id int PRIMARY KEY);`),
		"0002_seed_items.sql", up(`INSERT INTO items VALUES (1);`),
		"0003_items_name.sql", up(`ALTER TABLE items ADD COLUMN name text NOT NULL DEFAULT 'item';`),
	)}
	platform := pg.Migrations{Source: "platform", FS: files("0001_create_items_log.sql", up(`CREATE TABLE items_log (id int);`))}
	// A set the runner before goose never applied is applied from its start.
	added := pg.Migrations{Source: "added", FS: files("0001_create_added.sql", up(`CREATE TABLE added (id int);`))}
	for range 2 { // the second run, adopted already, changes nothing
		if err := pg.Migrate(ctx, db.Primary, service, platform, added); err != nil {
			t.Fatal(err)
		}
	}
	if got := scalar[string](t, db.Primary, `SELECT string_agg(id || ':' || name, ',') FROM items`); got != "1:item" {
		t.Fatalf("items holds %q, want 1:item (seeded once, then 0003 applied)", got)
	}
	for source, want := range map[string]string{"service": "1,2,3", "platform": "1", "added": "1"} {
		if got := appliedVersions(t, db.Primary, source); got != want {
			t.Errorf("%s's applied versions are %q, want %s", source, got, want)
		}
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM pg_tables WHERE tablename = 'goose_db_version_other'`); n != 0 {
		t.Error("a source this process does not migrate was adopted")
	}
	if n := scalar[int](t, db.Primary, `SELECT count(*) FROM schema_migrations`); n != 4 {
		t.Errorf("schema_migrations has %d rows, want its 4 left as they were", n)
	}
}

// TestConcurrentMigrationsRunOnce starts eight "processes" (each its own pool) at
// once on a migration that fails if it runs twice.
func TestConcurrentMigrationsRunOnce(t *testing.T) {
	url := testenv.NewDatabase(t)
	set := pg.Migrations{Source: "service", FS: files(
		"0001_create_once.sql", up(`CREATE TABLE once (id int PRIMARY KEY);
INSERT INTO once VALUES (1);`),
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

// countingHandler counts the log records it is given.
type countingHandler struct {
	slog.Handler
	n *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }

func TestMigrateWithRetryWaitsForTheDatabaseButNotForABrokenMigration(t *testing.T) {
	set := pg.Migrations{Source: "service", FS: files("0001_broken.sql", up(`INSERT INTO nowhere VALUES (1);`))}

	down := open(t, pg.Config{URL: "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"})
	var warnings atomic.Int32
	logger := slog.New(countingHandler{slog.DiscardHandler, &warnings})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := pg.MigrateWithRetry(ctx, down.Primary, logger, set); err == nil {
		t.Fatal("MigrateWithRetry = nil with no server")
	}
	if n := warnings.Load(); n < 3 {
		t.Fatalf("%d attempts in 2 s with the database down; want it to keep trying", n)
	}

	db := open(t, pg.Config{URL: testenv.NewDatabase(t)})
	started := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := pg.MigrateWithRetry(ctx, db.Primary, logger, set)
	if err == nil || !strings.Contains(err.Error(), "0001_broken.sql") {
		t.Fatalf("err = %v; want the broken file named", err)
	}
	if took := time.Since(started); took > 10*time.Second {
		t.Fatalf("a broken migration was retried for %v", took)
	}
}
