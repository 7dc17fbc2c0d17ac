// Package inbox de-duplicates consumed messages: a consumer claims an event id in
// the same transaction as the effect, and skips the effect when the claim was made
// before. Brokers deliver at least once; with the inbox, effects happen once.
package inbox

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/pg"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the inbox table; services apply it with their own migrations.
var Migrations = pg.EmbeddedMigrations("inbox", migrationFiles, "migrations")

// Claim records within tx that consumer processed eventID and reports whether this
// is the first time. Run the effect in the same tx only when first is true. When
// two deliveries of one event race, the second waits for the first transaction
// and then sees first == false; if the first rolls back, the second wins.
func Claim(ctx context.Context, tx pgx.Tx, consumer, eventID string) (first bool, err error) {
	if eventID == "" {
		return false, fmt.Errorf("claim event for %s: empty event id", consumer)
	}
	tag, err := tx.Exec(ctx,
		`INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("claim event %s for %s: %w", eventID, consumer, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ClaimAll is Claim for many events in one statement: it returns the ids of
// eventIDs claimed here for the first time (an id given twice counts once).
func ClaimAll(ctx context.Context, tx pgx.Tx, consumer string, eventIDs []string) (map[string]bool, error) {
	for _, id := range eventIDs {
		if id == "" {
			return nil, fmt.Errorf("claim events for %s: empty event id", consumer)
		}
	}
	rows, err := tx.Query(ctx, `INSERT INTO inbox (consumer, event_id) SELECT DISTINCT $1, unnest($2::text[])
		ON CONFLICT DO NOTHING RETURNING event_id`, consumer, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("claim %d events for %s: %w", len(eventIDs), consumer, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("claim %d events for %s: %w", len(eventIDs), consumer, err)
	}
	first := make(map[string]bool, len(ids))
	for _, id := range ids {
		first[id] = true
	}
	return first, nil
}

// Prune forgets claims older than olderThan. Keep it well above the longest time a
// broker may redeliver (Kafka retention, the longest RabbitMQ delay).
func Prune(ctx context.Context, pool *pgxpool.Pool, olderThan time.Duration) (int64, error) {
	tag, err := pool.Exec(ctx, `DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1)`, olderThan.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
