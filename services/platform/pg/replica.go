package pg

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of the replica settings, also used when a Config built in code
// leaves them zero.
const (
	DefaultReplicaMaxLag        = 2 * time.Second
	DefaultReplicaCheckInterval = 500 * time.Millisecond
	// A check that takes longer than this counts as a replica that does not
	// answer: a host that vanished must not hold reads for a TCP timeout.
	replicaCheckTimeout = time.Second
	// Positions kept while the replica is behind; beyond that the oldest go,
	// which only makes the measured lag larger than the truth, never smaller.
	maxPendingSamples = 4096
)

// Why a read went where it went (the reason label of kshop_db_reads_total).
const (
	ReadReplica        = "replica"         // the replica, at most MaxLag behind
	ReadFresh          = "fresh"           // the caller must see every committed write
	ReadReplicaDown    = "replica_down"    // the last check did not reach the replica
	ReadReplicaLagging = "replica_lagging" // the replica is more than MaxLag behind
	ReadReplicaFailed  = "replica_failed"  // the query failed on the replica and ran again on the primary
	ReadNoReplica      = "no_replica"      // none is configured: the primary serves every read
)

var readReasons = []string{ReadReplica, ReadFresh, ReadReplicaDown, ReadReplicaLagging, ReadReplicaFailed, ReadNoReplica}

// replication watches a streaming replica and decides, read by read, whether
// it may serve. It measures lag by time, not bytes: at every check it notes the
// primary's WAL position and when it was seen, and the replica is as old as
// the newest noted position it has replayed. That bound holds whatever the
// write rate, costs two tiny queries per check, and needs no privilege
// (pg_stat_replication hides its columns from non-superusers and reports no
// replay_lag once the primary is idle).
type replication struct {
	primary, replica *pgxpool.Pool
	maxLag, interval time.Duration

	usable atomic.Bool  // up and at most maxLag behind
	up     atomic.Bool  // the last check reached the replica
	lag    atomic.Int64 // nanoseconds; meaningful while up
	// checked is closed after the first check, so tests (and anyone) can wait.
	checked     chan struct{}
	checkedOnce sync.Once

	// Only the monitoring goroutine touches these.
	pending   []sample // primary positions not yet replayed, oldest first
	coveredAt time.Time
}

type sample struct {
	at  time.Time
	lsn uint64
}

func newReplication(primary, replica *pgxpool.Pool, cfg Config) *replication {
	r := &replication{primary: primary, replica: replica, maxLag: cfg.ReplicaMaxLag, interval: cfg.ReplicaCheckInterval, checked: make(chan struct{})}
	if r.maxLag <= 0 {
		r.maxLag = DefaultReplicaMaxLag
	}
	if r.interval <= 0 {
		r.interval = DefaultReplicaCheckInterval
	}
	return r
}

// run checks the replica every interval until ctx ends. It never fails: a
// replica that does not answer is a state (reads go to the primary), not an
// error of the service.
func (r *replication) run(ctx context.Context) error {
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		r.check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (r *replication) check(ctx context.Context) {
	defer r.checkedOnce.Do(func() { close(r.checked) })
	ctx, cancel := context.WithTimeout(ctx, replicaCheckTimeout)
	defer cancel()
	// The primary first: whatever it had written then, a replica that has
	// replayed it afterwards is at most (now - then) old.
	at := time.Now()
	var primaryLSN string
	if err := r.primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&primaryLSN); err != nil {
		// Without the primary's position the lag is unknown; the replica's
		// data is not getting older than what the primary can serve either
		// (it serves nothing). Keep the last verdict.
		return
	}
	var replayLSN *string
	// The age of the last transaction replayed bounds the lag too, and more
	// tightly than the checks' spacing while the primary is busy.
	var replayAge *float64
	if err := r.replica.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text,
		extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`).Scan(&replayLSN, &replayAge); err != nil {
		r.up.Store(false)
		r.usable.Store(false)
		return
	}
	now := time.Now()
	p, err := parseLSN(primaryLSN)
	if err != nil {
		return
	}
	if replayLSN == nil {
		// Not in recovery: the "replica" is a primary itself (a pooler in
		// front of the primary, or the same server), so it is current.
		r.pending, r.coveredAt = r.pending[:0], at
		r.record(0)
		return
	}
	replayed, err := parseLSN(*replayLSN)
	if err != nil {
		return
	}
	r.pending = append(r.pending, sample{at: at, lsn: p})
	if len(r.pending) > maxPendingSamples {
		r.pending = r.pending[len(r.pending)-maxPendingSamples:]
	}
	for len(r.pending) > 0 && r.pending[0].lsn <= replayed {
		r.coveredAt = r.pending[0].at
		r.pending = r.pending[1:]
	}
	if len(r.pending) == 0 {
		r.record(0)
		return
	}
	if r.coveredAt.IsZero() {
		// Behind since the first check: as old as the monitoring, at least.
		r.coveredAt = r.pending[0].at
	}
	lag := now.Sub(r.coveredAt)
	if replayAge != nil && *replayAge >= 0 {
		// Both are upper bounds of how old the replica's data is; negative
		// ages (clocks of two machines apart) prove nothing and are ignored.
		lag = min(lag, time.Duration(*replayAge*float64(time.Second)))
	}
	r.record(lag)
}

func (r *replication) record(lag time.Duration) {
	r.lag.Store(int64(lag))
	r.up.Store(true)
	r.usable.Store(lag <= r.maxLag)
}

// parseLSN reads PostgreSQL's text form of a WAL position, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	var hi, lo uint32
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			h, err := parseHex(s[:i])
			if err != nil {
				return 0, err
			}
			l, err := parseHex(s[i+1:])
			if err != nil {
				return 0, err
			}
			hi, lo = h, l
			return uint64(hi)<<32 | uint64(lo), nil
		}
	}
	return 0, errors.New("not a WAL position: " + s)
}

func parseHex(s string) (uint32, error) {
	if s == "" || len(s) > 8 {
		return 0, errors.New("not a WAL position part: " + s)
	}
	var v uint32
	for _, c := range []byte(s) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, errors.New("not a WAL position part: " + s)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// readCounts counts reads by reason, for kshop_db_reads_total.
type readCounts struct{ n [6]atomic.Uint64 }

func (c *readCounts) add(reason string) {
	for i, r := range readReasons {
		if r == reason {
			c.n[i].Add(1)
			return
		}
	}
}

// ReadPool returns the pool a read that may be a little stale should use, and
// why: the replica while it answers and is at most ReplicaMaxLag behind the
// primary, else the primary. Most callers want Read, which also falls back
// when the replica fails in the middle of the query.
func (db *DB) ReadPool() (*pgxpool.Pool, string) {
	r := db.replication
	switch {
	case r == nil:
		return db.Primary, ReadNoReplica
	case r.usable.Load():
		return db.Replica, ReadReplica
	case !r.up.Load():
		return db.Primary, ReadReplicaDown
	default:
		return db.Primary, ReadReplicaLagging
	}
}

// Read runs a read that may be at most ReplicaMaxLag stale (plus one check
// interval) on the pool ReadPool picks. If it fails on the replica, it runs
// again on the primary: a replica that has just stopped, a standby's conflict
// with recovery, or a replica a little behind a migration (a table it has not
// replayed yet) costs a retry, not an error; a query that is wrong fails on
// the primary too. fresh sends it to the primary at once: for callers who
// must see every committed write (their own, above all). pgx.ErrNoRows is an
// answer, not a failure.
func (db *DB) Read(ctx context.Context, fresh bool, fn func(pool *pgxpool.Pool) error) error {
	if fresh {
		db.reads.add(ReadFresh)
		return fn(db.Primary)
	}
	pool, reason := db.ReadPool()
	if pool == db.Primary {
		db.reads.add(reason)
		return fn(pool)
	}
	err := fn(pool)
	if err == nil || errors.Is(err, pgx.ErrNoRows) || ctx.Err() != nil {
		db.reads.add(ReadReplica)
		return err
	}
	if _, isPg := errors.AsType[*pgconn.PgError](err); !isPg {
		// The connection failed: stop sending reads there until a check
		// reaches the replica again.
		db.replication.up.Store(false)
		db.replication.usable.Store(false)
	}
	db.reads.add(ReadReplicaFailed)
	return fn(db.Primary)
}

// WatchReplica checks the replica until ctx ends; without a replica it
// returns at once. Run it beside the service (serve.Service's Background).
func (db *DB) WatchReplica(ctx context.Context) error {
	if db.replication == nil {
		return nil
	}
	return db.replication.run(ctx)
}

// ReplicaState is what the last check found: whether the replica answered and,
// if so, how far behind the primary it is.
type ReplicaState struct {
	Configured, Up bool
	Lag            time.Duration
}

// ReplicaState reports the last check's findings.
func (db *DB) ReplicaState() ReplicaState {
	r := db.replication
	if r == nil {
		return ReplicaState{}
	}
	return ReplicaState{Configured: true, Up: r.up.Load(), Lag: time.Duration(r.lag.Load())}
}

// WaitReplicaChecked blocks until the replica was checked once (or ctx ends);
// without a replica it returns at once.
func (db *DB) WaitReplicaChecked(ctx context.Context) error {
	if db.replication == nil {
		return nil
	}
	select {
	case <-db.replication.checked:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
