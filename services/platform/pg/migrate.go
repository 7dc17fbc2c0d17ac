package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path"
	"regexp"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"

	"github.com/kshop/kshop/services/platform/retry"
)

// Migrations is one set of SQL files: a service's own, or a platform package's
// table (outbox, inbox). Files are named NNNN_description.sql at the root of FS,
// begin with goose's "-- +goose Up" line, end each statement with a semicolon, and
// are applied in version order, each in its own transaction. Source names the set; its history is kept in its
// own goose table, so sets number their files independently.
type Migrations struct {
	Source string
	FS     fs.FS
}

// EmbeddedMigrations is a Migrations of the files in folder dir of an embedded
// file system (//go:embed migrations/*.sql). A missing folder is a build mistake,
// so it panics at init instead of failing at run time.
func EmbeddedMigrations(source string, fsys fs.FS, dir string) Migrations {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("pg: migrations of %s: %v", source, err))
	}
	return Migrations{Source: source, FS: sub}
}

// migrationLockKey is the advisory lock every kshop process takes while migrating,
// so replicas starting together never migrate twice. It is the key the runner
// before goose took, so during a rolling upgrade old and new processes exclude
// each other too. It spells "kshop mig" in ASCII.
const migrationLockKey int64 = 0x6b73686f706d6967

// legacyTable is where the runner before goose recorded applied migrations
// (source, version, name, applied_at). It is read once per set, to adopt what it
// applied, and left in place: a process of the older release still reads it.
const legacyTable = "schema_migrations"

var (
	// goose would silently skip a file without a numeric prefix; a misnamed
	// migration is refused instead, so it cannot go unapplied unnoticed.
	migrationName = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.sql$`)
	// The source becomes part of a table name.
	sourceName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// versionTable is the goose table recording the set's applied migrations.
func (m Migrations) versionTable() string { return "goose_db_version_" + m.Source }

// check refuses what goose would not: an unusable source, and a misnamed file,
// which goose would skip silently. goose refuses duplicate versions and files
// without their "-- +goose Up" line itself.
func (m Migrations) check() error {
	if !sourceName.MatchString(m.Source) {
		return fmt.Errorf("migrations source %q: must look like order or outbox_test", m.Source)
	}
	entries, err := fs.ReadDir(m.FS, ".")
	if err != nil {
		return fmt.Errorf("read %s migrations: %w", m.Source, err)
	}
	for _, e := range entries {
		if !e.IsDir() && !migrationName.MatchString(e.Name()) {
			return fmt.Errorf("%s migration %q: name must look like 0001_create_users.sql", m.Source, e.Name())
		}
	}
	return nil
}

// Migrate applies every migration not applied yet, with goose, one set after
// the other. Each set runs under the advisory lock, so of several processes
// starting at once one migrates and the others wait, then find nothing left to
// do. Sets recorded by the runner before goose are adopted first.
func Migrate(ctx context.Context, pool *pgxpool.Pool, sets ...Migrations) error {
	for _, set := range sets {
		if err := set.check(); err != nil {
			return err
		}
	}
	db := stdlib.OpenDBFromPool(pool)
	defer func() { _ = db.Close() }()
	if err := adoptLegacyHistory(ctx, db, sets); err != nil {
		return err
	}
	for _, set := range sets {
		if err := up(ctx, db, set); err != nil {
			return err
		}
	}
	return nil
}

func up(ctx context.Context, db *sql.DB, set Migrations) error {
	// The lock is polled once a second until ctx ends: a waiting process
	// waits as long as the migration takes, as it did with pg_advisory_lock.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockKey), lock.WithLockTimeout(1, math.MaxUint64))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Source, err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, set.FS,
		goose.WithTableName(set.versionTable()),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		// A migration merged after one with a higher version is applied too,
		// as every runner of this project always did.
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Source, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		if partial, ok := errors.AsType[*goose.PartialError](err); ok && partial.Failed != nil {
			return fmt.Errorf("migrate %s/%s: %w", set.Source, path.Base(partial.Failed.Source.Path), partial.Err)
		}
		return fmt.Errorf("migrate %s: %w", set.Source, err)
	}
	return nil
}

// adoptLegacyHistory gives each set that has no goose table yet, in a database
// the runner before goose migrated, a goose table holding the versions that
// runner applied, so goose applies only the later ones. It runs under the
// migration lock (for the transaction), so concurrent processes adopt once.
func adoptLegacyHistory(ctx context.Context, db *sql.DB, sets []Migrations) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: adopt %s: %w", legacyTable, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	legacy, err := tableExists(ctx, tx, legacyTable)
	if err != nil || !legacy {
		return err
	}
	for _, set := range sets {
		store, err := database.NewStore(database.DialectPostgres, set.versionTable())
		if err != nil {
			return fmt.Errorf("migrate %s: %w", set.Source, err)
		}
		adopted, err := tableExists(ctx, tx, store.Tablename())
		if err != nil {
			return err
		}
		if adopted {
			continue
		}
		versions, err := legacyVersions(ctx, tx, set.Source)
		if err != nil {
			return err
		}
		if err := store.CreateVersionTable(ctx, tx); err != nil {
			return fmt.Errorf("migrate %s: create %s: %w", set.Source, store.Tablename(), err)
		}
		// Version 0 is the row goose writes when it creates the table itself.
		for _, v := range append([]int64{0}, versions...) {
			if err := store.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
				return fmt.Errorf("migrate %s: adopt version %d: %w", set.Source, v, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: adopt %s: %w", legacyTable, err)
	}
	return nil
}

func tableExists(ctx context.Context, tx *sql.Tx, name string) (bool, error) {
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("migrate: look for table %s: %w", name, err)
	}
	return exists, nil
}

func legacyVersions(ctx context.Context, tx *sql.Tx, source string) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM `+legacyTable+` WHERE source = $1 ORDER BY version`, source)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: read %s: %w", source, legacyTable, err)
	}
	defer func() { _ = rows.Close() }()
	var versions []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate %s: read %s: %w", source, legacyTable, err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate %s: read %s: %w", source, legacyTable, err)
	}
	return versions, nil
}

// MigrateWithRetry is Migrate for process start: while the database cannot be
// reached it retries with backoff until ctx ends. A failing migration is not
// retried: it would fail again.
func MigrateWithRetry(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger, sets ...Migrations) error {
	attempt := 0
	return retry.Do(ctx, retry.Default, 0, func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			attempt++
			logger.WarnContext(ctx, "database not reachable; will migrate when it is", "error", err, "attempt", attempt)
			return err
		}
		if err := Migrate(ctx, pool, sets...); err != nil {
			return retry.Permanent(err)
		}
		return nil
	})
}
