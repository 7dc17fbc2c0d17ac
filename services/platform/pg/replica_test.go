package pg_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/promtest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// watch runs the replica's checks for the rest of the test.
func watch(t *testing.T, db *pg.DB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = db.WatchReplica(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := db.WaitReplicaChecked(ctx); err != nil {
		t.Fatal(err)
	}
}

func readFrom(t *testing.T, db *pg.DB, reason string) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "reads to go where "+reason+" says", func() bool {
		_, why := db.ReadPool()
		return why == reason
	})
}

// TestLaggingReplicaServesNoReadsUntilItCatchesUp stops the replica's replay
// (a real streaming replica of the test server), so it falls behind a write:
// the lag it measures grows past the bound, reads go to the primary, and come
// back once replay resumes.
func TestLaggingReplicaServesNoReadsUntilItCatchesUp(t *testing.T) {
	url := testenv.NewDatabase(t)
	// Alone on the replica: pausing its replay would surprise anyone else.
	_, replicaURL := testenv.RestartableReplica(t, url)
	db := open(t, pg.Config{URL: url, ReplicaURL: replicaURL, ReplicaMaxLag: 400 * time.Millisecond, ReplicaCheckInterval: 50 * time.Millisecond})
	watch(t, db)
	if _, err := db.Primary.Exec(context.Background(), `CREATE TABLE marks (n int)`); err != nil {
		t.Fatal(err)
	}
	readFrom(t, db, pg.ReadReplica)
	if pool, _ := db.ReadPool(); pool != db.Replica {
		t.Fatal("a replica that keeps up must serve the reads")
	}

	// Replay pauses for the whole server; resumed at the end whatever happens.
	control, err := pgxpool.New(context.Background(), replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = control.Exec(context.Background(), `SELECT pg_wal_replay_resume()`)
		control.Close()
	})
	if _, err := control.Exec(context.Background(), `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Primary.Exec(context.Background(), `INSERT INTO marks VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var written string
	if err := db.Primary.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	readFrom(t, db, pg.ReadReplicaLagging)
	if state := db.ReplicaState(); !state.Up || state.Lag <= 400*time.Millisecond {
		t.Fatalf("state %+v: want up and more than 400ms behind", state)
	}
	var n int
	if err := db.Read(context.Background(), false, func(pool *pgxpool.Pool) error {
		return pool.QueryRow(context.Background(), `SELECT count(*) FROM marks`).Scan(&n)
	}); err != nil || n != 1 {
		t.Fatalf("read while the replica lags: %d rows, %v; want the primary's 1", n, err)
	}

	if _, err := control.Exec(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	readFrom(t, db, pg.ReadReplica)
	if state := db.ReplicaState(); state.Lag > 400*time.Millisecond {
		t.Fatalf("caught up, yet %v behind", state.Lag)
	}
	// Within the bound is not yet replayed: a replica 300 ms behind may
	// still lack the table (a read failed with "relation marks does not
	// exist" on a slow machine). The reads below are for the replica that
	// has replayed everything written.
	testenv.WaitFor(t, 20*time.Second, "the replica to replay the insert", func() bool {
		var replayed bool
		err := control.QueryRow(context.Background(), `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, written).Scan(&replayed)
		return err == nil && replayed
	})
	// The replay that resumes may cancel a read on the replica at once: its
	// WAL arrived during the pause, and replay waits for a conflicting read
	// at most max_standby_streaming_delay (1 s on the test servers). Read
	// runs such a read again on the primary, and a later one goes back to
	// the replica. Under load the state may also flip between the check and
	// the read, which sends that read to the primary: both are counted.
	cancelled, primaryOnly := 0, 0
	for served := false; !served; {
		readFrom(t, db, pg.ReadReplica)
		var onReplica error
		tried := false
		if err := db.Read(context.Background(), false, func(pool *pgxpool.Pool) error {
			err := pool.QueryRow(context.Background(), `SELECT count(*) FROM marks`).Scan(&n)
			if pool == db.Replica {
				tried, onReplica = true, err
			}
			return err
		}); err != nil || n != 1 {
			t.Fatalf("read after the replica caught up: %d rows, %v", n, err)
		}
		switch {
		case !tried:
			primaryOnly++
		case onReplica == nil:
			served = true
		case recoveryConflict(onReplica) && cancelled < 5:
			t.Logf("the replica cancelled a read, it runs on the primary: %v", onReplica)
			cancelled++
		default:
			t.Fatalf("the caught-up replica failed a read (%d cancelled before): %v", cancelled, onReplica)
		}
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(pg.NewPoolCollector(db))
	for _, name := range []string{"kshop_db_replica_up", "kshop_db_replica_lag_seconds"} {
		if n, err := testutil.GatherAndCount(registry, name); err != nil || n != 1 {
			t.Fatalf("%s: %d series, %v", name, n, err)
		}
	}
	reads := promtest.Counters(t, registry, "kshop_db_reads_total", "pool", "reason")
	if reads["replica replica"] != 1 || reads["primary fresh"] != 0 || reads["primary replica_failed"] != float64(cancelled) ||
		reads["primary replica_lagging"] < 1 || reads["primary replica_lagging"]+reads["primary replica_down"] != float64(1+primaryOnly) {
		t.Fatalf("kshop_db_reads_total %v; want one read on the replica, %d after a failure there and %d more on the primary because it lagged", reads, cancelled, 1+primaryOnly)
	}
}

// recoveryConflict tells a read a standby cancelled because replay needed
// what it held (SQLSTATE 40001, or 40P01 for a deadlock with replay).
func recoveryConflict(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// TestAReplicaThatIsAPrimaryIsCurrent: a replica URL that reaches a server
// not in recovery (a pooler in front of the primary, the same server) is
// never behind.
func TestAReplicaThatIsAPrimaryIsCurrent(t *testing.T) {
	url := testenv.NewDatabase(t)
	db := open(t, pg.Config{URL: url, ReplicaURL: url + "&application_name=replica", ReplicaCheckInterval: 50 * time.Millisecond})
	watch(t, db)
	readFrom(t, db, pg.ReadReplica)
	if state := db.ReplicaState(); !state.Up || state.Lag != 0 {
		t.Fatalf("state %+v", state)
	}
}

// TestAFailedReplicaReadRunsOnThePrimary: a replica that stops answering
// between two checks costs the read a retry on the primary, not an error, and
// the next reads go to the primary before any check noticed.
func TestAFailedReplicaReadRunsOnThePrimary(t *testing.T) {
	url := testenv.NewDatabase(t)
	// A check interval longer than the test: only the failed read can tell.
	db := open(t, pg.Config{URL: url, ReplicaURL: url + "&application_name=replica", ReplicaCheckInterval: time.Hour})
	watch(t, db)
	calls := 0
	err := db.Read(context.Background(), false, func(pool *pgxpool.Pool) error {
		calls++
		if pool == db.Replica {
			return errors.New("connection reset by peer")
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("err %v after %d calls; want success on the second, the primary", err, calls)
	}
	if _, why := db.ReadPool(); why != pg.ReadReplicaDown {
		t.Fatalf("after a failed replica read, reads go where %q says", why)
	}
	// A replica behind a migration misses a table for a moment: the read runs
	// on the primary, and the replica keeps serving (it answered).
	db2 := open(t, pg.Config{URL: url, ReplicaURL: url + "&application_name=replica2", ReplicaCheckInterval: time.Hour})
	watch(t, db2)
	calls = 0
	err = db2.Read(context.Background(), false, func(pool *pgxpool.Pool) error {
		calls++
		if pool == db2.Replica {
			return &pgconn.PgError{Code: "42P01", Message: `relation "products" does not exist`}
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("err %v after %d calls; want success on the primary", err, calls)
	}
	if _, why := db2.ReadPool(); why != pg.ReadReplica {
		t.Fatalf("a replica that answered is no longer used: %q", why)
	}
	// Not found is an answer: no retry.
	calls = 0
	err = db.Read(context.Background(), false, func(*pgxpool.Pool) error { calls++; return pgx.ErrNoRows })
	if !errors.Is(err, pgx.ErrNoRows) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}
