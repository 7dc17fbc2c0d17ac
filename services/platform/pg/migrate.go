package pg

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/retry"
)

// Migrations is one set of SQL files: a service's own, or a platform package's
// table (outbox, inbox). Files are named NNNN_description.sql at the root of FS and
// applied in version order, each in its own transaction.
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
// so replicas starting together never migrate twice. Any fixed number works; this
// one spells "kshop mig" in ASCII.
const migrationLockKey int64 = 0x6b73686f706d6967

var migrationName = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

func (m Migrations) load() ([]migration, error) {
	entries, err := fs.ReadDir(m.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", m.Source, err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		match := migrationName.FindStringSubmatch(e.Name())
		if match == nil {
			return nil, fmt.Errorf("%s migration %q: name must look like 0001_create_users.sql", m.Source, e.Name())
		}
		version, _ := strconv.Atoi(match[1])
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("%s migrations %q and %q share version %d", m.Source, other, e.Name(), version)
		}
		seen[version] = e.Name()
		body, err := fs.ReadFile(m.FS, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s migration %s: %w", m.Source, e.Name(), err)
		}
		out = append(out, migration{version: version, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies every migration not applied yet. It holds a session advisory
// lock meanwhile, so of several processes starting at once one migrates and the
// others wait, then find nothing left to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool, sets ...Migrations) error {
	loaded := make([][]migration, len(sets))
	for i, set := range sets {
		ms, err := set.load()
		if err != nil {
			return err
		}
		loaded[i] = ms
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
	}()
	if _, err := conn.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			source     text        NOT NULL,
			version    integer     NOT NULL,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (source, version)
		)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for i, set := range sets {
		for _, m := range loaded[i] {
			if err := apply(ctx, conn.Conn(), set.Source, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func apply(ctx context.Context, conn *pgx.Conn, source string, m migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s/%s: begin: %w", source, m.name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var applied bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE source = $1 AND version = $2)`,
		source, m.version).Scan(&applied); err != nil {
		return fmt.Errorf("migrate %s/%s: %w", source, m.name, err)
	}
	if applied {
		return nil
	}
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate %s/%s: %w", source, m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (source, version, name) VALUES ($1, $2, $3)`,
		source, m.version, m.name); err != nil {
		return fmt.Errorf("migrate %s/%s: record: %w", source, m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate %s/%s: commit: %w", source, m.name, err)
	}
	return nil
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
