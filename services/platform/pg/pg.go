// Package pg opens the PostgreSQL pools a service uses (the primary for writes, a
// replica pool for reads), applies embedded migrations and runs transactions.
package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config names the databases. Services hold it in a field named Database, so
// the variables read KSHOP_<SERVICE>_DATABASE_URL, _DATABASE_REPLICA_URL and
// _DATABASE_MAX_CONNS.
type Config struct {
	URL        string `envconfig:"URL" required:"true" desc:"PostgreSQL URL of the primary, for writes (postgres://user@host:5432/db?sslmode=verify-full); the password may come apart in PGPASSWORD, which the driver reads."`
	ReplicaURL string `envconfig:"REPLICA_URL" desc:"PostgreSQL URL of a streaming replica for reads that tolerate staleness; empty: every read goes to the primary."`
	MaxConns   int32  `envconfig:"MAX_CONNS" default:"10" desc:"Most connections in the pool (each of primary and replica)."`
	// ReplicaMaxLag is how far behind the primary the replica may be and
	// still serve reads that tolerate staleness; beyond it they go to the
	// primary until it catches up.
	ReplicaMaxLag time.Duration `envconfig:"REPLICA_MAX_LAG" default:"2s" desc:"How far behind the primary the replica may be and still serve reads; beyond it they go to the primary."`
	// ReplicaCheckInterval paces the replica's checks (answers? how far
	// behind?): a stopped replica stops serving reads within about this long.
	ReplicaCheckInterval time.Duration `envconfig:"REPLICA_CHECK_INTERVAL" default:"500ms" desc:"How often the replica is checked (reachable? how far behind?)."`
}

// DB holds the pools. Replica is the primary itself when no replica is configured,
// so code can always read from Replica; Read picks the replica only while it
// answers and keeps up (WatchReplica checks it).
type DB struct {
	Primary *pgxpool.Pool
	Replica *pgxpool.Pool

	replication *replication // nil without a replica of its own
	reads       readCounts
}

// Open creates the pools without connecting: a database that is down at start is
// reported by Ready and retried by every query, never a crash.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	primary, err := newPool(ctx, "DATABASE_URL", cfg.URL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	db := &DB{Primary: primary, Replica: primary}
	if cfg.ReplicaURL != "" && cfg.ReplicaURL != cfg.URL {
		replica, err := newPool(ctx, "DATABASE_REPLICA_URL", cfg.ReplicaURL, cfg.MaxConns)
		if err != nil {
			primary.Close()
			return nil, err
		}
		db.Replica = replica
		db.replication = newReplication(primary, replica, cfg)
	}
	return db, nil
}

func newPool(ctx context.Context, setting, url string, maxConns int32) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, fmt.Errorf("%s is empty", setting)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL with its password: name the setting only.
		return nil, fmt.Errorf("%s is not a valid PostgreSQL URL", setting)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	// A span per query, with the db.* attributes of the semantic conventions,
	// under whatever request or message span the context carries.
	cfg.ConnConfig.Tracer = otelpgx.NewTracer()
	cfg.AfterConnect = warmNewConnection
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool for %s: %w", setting, err)
	}
	return pool, nil
}

// Close closes both pools.
func (db *DB) Close() {
	if db.Replica != db.Primary {
		db.Replica.Close()
	}
	db.Primary.Close()
}

// Ready reports whether the primary answers. A replica that does not answer
// leaves the service ready: its reads go to the primary meanwhile
// (kshop_db_replica_up shows it).
func (db *DB) Ready(ctx context.Context) error {
	if err := db.Primary.Ping(ctx); err != nil {
		return fmt.Errorf("primary database: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction on pool: committed when fn returns nil, rolled
// back when it returns an error or panics (the panic continues afterwards).
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) (err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			return errors.Join(err, fmt.Errorf("roll back: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
