package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

// dataSnapshot is a fingerprint of every row of every table of the platform's
// databases: "service.table" → row count and a digest of the rows' text.
type dataSnapshot map[string]string

// databaseSet holds one connection to each service's database, for snapshots.
type databaseSet map[string]*pgx.Conn

// openDatabases connects to every database of urls (service → URL) until the
// test ends.
func openDatabases(t *testing.T, urls map[string]string) databaseSet {
	t.Helper()
	set := databaseSet{}
	for service, url := range urls {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatalf("connect to the %s database: %v", service, err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		set[service] = conn
	}
	return set
}

// snapshot fingerprints every table of every service's database, the outboxes,
// inboxes and timers included, so a test can prove that a request changed
// nothing anywhere.
func (set databaseSet) snapshot(t *testing.T) dataSnapshot {
	t.Helper()
	ctx := context.Background()
	snap := dataSnapshot{}
	for service, conn := range set {
		rows, err := conn.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
			WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
		if err != nil {
			t.Fatalf("snapshot %s: %v", service, err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("snapshot %s: %v", service, err)
		}
		if len(tables) == 0 {
			t.Fatalf("snapshot %s: the database has no tables", service)
		}
		for _, table := range tables {
			var count int64
			var digest string
			// Ordering by the row's text makes the digest independent of the
			// physical order, which an UPDATE that changes nothing may still alter.
			err := conn.QueryRow(ctx, fmt.Sprintf(
				`SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM %s r`, table),
			).Scan(&count, &digest)
			if err != nil {
				t.Fatalf("snapshot %s.%s: %v", service, table, err)
			}
			snap[service+"."+table] = fmt.Sprintf("%d rows, md5 %s", count, digest)
		}
	}
	return snap
}

// changes lists the tables whose rows differ between two snapshots.
func (before dataSnapshot) changes(after dataSnapshot) []string {
	var changed []string
	for _, table := range slices.Sorted(maps.Keys(after)) {
		if before[table] != after[table] {
			changed = append(changed, fmt.Sprintf("%s: %s → %s", table, before[table], after[table]))
		}
	}
	for table := range before {
		if _, ok := after[table]; !ok {
			changed = append(changed, table+": dropped")
		}
	}
	return changed
}
