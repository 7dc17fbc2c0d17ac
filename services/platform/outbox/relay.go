package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/retry"
)

// Publisher sends a batch to one broker and reports, per message, whether the broker
// confirmed it: errs[i] is nil only for a confirmed msgs[i].
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []Message) []error
}

// RelayConfig tunes a Relay; zero values take the defaults.
type RelayConfig struct {
	// BatchSize is how many rows one transaction claims and publishes (default 200).
	BatchSize int
	// PollInterval is the pause after the outbox was found empty (default 100 ms).
	PollInterval time.Duration
	// Backoff paces retries while the database or a broker is failing.
	Backoff retry.Backoff
	// Retention is how long sent rows are kept before they are pruned (default 24 h).
	Retention time.Duration
	// PublishTimeout bounds the wait for a batch's confirms (default 30 s). While a
	// broker is down its rows are released, counted as failed attempts and retried,
	// instead of holding their transaction open.
	PublishTimeout time.Duration
	// DeleteSent deletes rows once the broker confirmed them instead of keeping
	// them for Retention: for payloads that must not outlive their delivery, such
	// as a verification code that is otherwise only stored hashed.
	DeleteSent bool
	// Registerer receives the relay's metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.BatchSize <= 0 {
		c.BatchSize = 200
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.Backoff == (retry.Backoff{}) {
		c.Backoff = retry.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}
	}
	if c.Retention <= 0 {
		c.Retention = 24 * time.Hour
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
	return c
}

// Relay publishes outbox rows. Any number of relays (one per service replica) may
// run against one table: each batch is claimed with FOR UPDATE SKIP LOCKED inside a
// transaction that stays open until the broker confirmed, so two relays never hold
// the same row at once, and a relay that dies mid-batch releases its rows to the
// others by its transaction rolling back.
//
// Ordering: one relay publishes rows in id order, and a Kafka partition keeps that
// order. With several relays, or when a publish fails and is retried, a later row of
// the same key can overtake an earlier one; consumers that care compare versions.
type Relay struct {
	pool       *pgxpool.Pool
	publishers map[Destination]Publisher
	cfg        RelayConfig
	logger     *slog.Logger
	metrics    *relayMetrics
}

// NewRelay returns a relay that reads pool's outbox table and hands each row to the
// publisher of its destination.
func NewRelay(pool *pgxpool.Pool, publishers map[Destination]Publisher, cfg RelayConfig, logger *slog.Logger) *Relay {
	if logger == nil {
		logger = slog.Default()
	}
	cfg = cfg.withDefaults()
	return &Relay{pool: pool, publishers: publishers, cfg: cfg, logger: logger, metrics: newRelayMetrics(cfg.Registerer)}
}

// Run relays until ctx ends. Database and broker failures are logged and retried
// with backoff; Run returns nil when ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	listening, stopListening := context.WithCancel(ctx)
	defer stopListening()
	go r.listen(listening, wake)
	go r.observeBacklogEvery(listening, backlogInterval)
	failures := 0
	lastPrune := time.Time{}
	for ctx.Err() == nil {
		if time.Since(lastPrune) > time.Minute {
			if _, err := Prune(ctx, r.pool, r.cfg.Retention); err != nil && ctx.Err() == nil {
				r.logger.WarnContext(ctx, "prune sent outbox rows", "error", err)
			}
			lastPrune = time.Now()
		}
		published, err := r.RelayOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.logger.WarnContext(ctx, "relay outbox batch; retrying", "error", err, "attempt", failures+1)
			retry.Sleep(ctx, r.cfg.Backoff.Delay(failures))
			failures++
		case published == r.cfg.BatchSize:
			failures = 0 // more rows are probably waiting
		default:
			failures = 0
			// A commit that added rows wakes the relay at once (Add notifies);
			// the poll interval is the fallback while notifications are not
			// arriving, for example after a database restart.
			timer := time.NewTimer(r.cfg.PollInterval)
			select {
			case <-ctx.Done():
			case <-wake:
			case <-timer.C:
			}
			timer.Stop()
		}
	}
	return nil
}

// notifyChannel is the PostgreSQL channel Add notifies when it commits rows.
const notifyChannel = "kshop_outbox"

// listen forwards the outbox notifications to wake, reconnecting with backoff.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		r.logger.DebugContext(ctx, "outbox notifications interrupted; polling meanwhile", "error", err)
		retry.Sleep(ctx, r.cfg.Backoff.Delay(attempt))
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// LISTEN state belongs to the session: the connection never goes back to the pool.
	raw := conn.Hijack()
	defer raw.Close(context.Background())
	if _, err := raw.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		if _, err := raw.WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

type claimedRow struct {
	id  int64
	msg Message
}

// RelayOnce claims one batch of unsent rows, publishes it and marks the confirmed
// rows sent, all in one transaction. It returns how many rows were confirmed. An
// error means some rows stay unsent for a later attempt; none is lost.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	var confirmed int
	var publishErr error
	err := pg.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		rows, err := claim(ctx, tx, r.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		sent, failed := r.publish(ctx, rows)
		if len(sent) > 0 {
			markSent := `UPDATE outbox SET sent_at = now() WHERE id = ANY($1)`
			if r.cfg.DeleteSent {
				markSent = `DELETE FROM outbox WHERE id = ANY($1)`
			}
			if _, err := tx.Exec(ctx, markSent, sent); err != nil {
				return fmt.Errorf("mark %d outbox rows sent: %w", len(sent), err)
			}
		}
		if len(failed) > 0 {
			ids := make([]int64, 0, len(failed))
			reasons := make([]string, 0, len(failed))
			for id, reason := range failed {
				ids = append(ids, id)
				reasons = append(reasons, reason)
			}
			if _, err := tx.Exec(ctx, `
				UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.reason
				FROM unnest($1::bigint[], $2::text[]) AS f(id, reason) WHERE o.id = f.id`, ids, reasons); err != nil {
				return fmt.Errorf("record %d failed outbox rows: %w", len(failed), err)
			}
			publishErr = fmt.Errorf("%d of %d outbox messages were not confirmed; first: %s", len(failed), len(rows), firstReason(failed))
		}
		confirmed = len(sent)
		return nil
	})
	if err != nil {
		// The transaction rolled back: rows a broker did confirm will be published
		// again, which consumers absorb by event id.
		return 0, fmt.Errorf("relay outbox: %w", err)
	}
	r.metrics.addConfirmed(confirmed)
	return confirmed, publishErr
}

func claim(ctx context.Context, tx pgx.Tx, limit int) ([]claimedRow, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, event_id::text, destination, topic, key, headers, payload, due_at
		FROM outbox WHERE sent_at IS NULL
		ORDER BY id LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	defer rows.Close()
	var claimed []claimedRow
	for rows.Next() {
		var row claimedRow
		var destination string
		var headers []byte
		var dueAt *time.Time
		if err := rows.Scan(&row.id, &row.msg.EventID, &destination, &row.msg.Topic, &row.msg.Key, &headers, &row.msg.Payload, &dueAt); err != nil {
			return nil, fmt.Errorf("read outbox row: %w", err)
		}
		row.msg.Destination = Destination(destination)
		if dueAt != nil {
			row.msg.DueAt = *dueAt
		}
		if err := json.Unmarshal(headers, &row.msg.Headers); err != nil {
			return nil, fmt.Errorf("decode headers of outbox row %d: %w", row.id, err)
		}
		claimed = append(claimed, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	return claimed, nil
}

// publish sends rows grouped by destination and splits their ids into confirmed
// ones and failed ones with the reason.
func (r *Relay) publish(ctx context.Context, rows []claimedRow) (sent []int64, failed map[int64]string) {
	failed = map[int64]string{}
	byDestination := map[Destination][]claimedRow{}
	for _, row := range rows {
		byDestination[row.msg.Destination] = append(byDestination[row.msg.Destination], row)
	}
	for destination, group := range byDestination {
		publisher, ok := r.publishers[destination]
		if !ok {
			for _, row := range group {
				failed[row.id] = fmt.Sprintf("no publisher for destination %q", destination)
			}
			continue
		}
		msgs := make([]Message, len(group))
		for i, row := range group {
			msgs[i] = row.msg
		}
		publishCtx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		errs := publisher.PublishBatch(publishCtx, msgs)
		cancel()
		for i, row := range group {
			var err error
			if i < len(errs) {
				err = errs[i]
			} else {
				err = errors.New("publisher returned no result")
			}
			if err != nil {
				failed[row.id] = err.Error()
				r.metrics.addFailure(destination)
				continue
			}
			sent = append(sent, row.id)
		}
	}
	return sent, failed
}

func firstReason(failed map[int64]string) string {
	var firstID int64 = -1
	for id := range failed {
		if firstID < 0 || id < firstID {
			firstID = id
		}
	}
	return failed[firstID]
}

// Backlog reports how many rows wait to be published and the age of the oldest.
func Backlog(ctx context.Context, pool *pgxpool.Pool) (unsent int64, oldest time.Duration, err error) {
	var oldestAt *time.Time
	err = pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent, &oldestAt)
	if err != nil {
		return 0, 0, fmt.Errorf("measure outbox backlog: %w", err)
	}
	if oldestAt != nil {
		oldest = time.Since(*oldestAt)
	}
	return unsent, oldest, nil
}

// backlogInterval is how often the backlog gauges are measured, on a clock of
// their own rather than after the relay's rounds: a round waits for the
// broker's confirms up to its publish timeout, so while a broker is away (when
// the gauges matter) no round ends; and measuring after every round would add
// a query to each commit's wake-up.
const backlogInterval = 2 * time.Second

func (r *Relay) observeBacklogEvery(ctx context.Context, interval time.Duration) {
	if r.metrics == nil {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		r.observeBacklog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (r *Relay) observeBacklog(ctx context.Context) {
	if r.metrics == nil {
		return
	}
	unsent, oldest, err := Backlog(ctx, r.pool)
	if err != nil {
		return // the database being down is reported by the caller
	}
	r.metrics.setBacklog(unsent, oldest)
}

// Prune deletes rows that were sent longer than olderThan ago.
func Prune(ctx context.Context, pool *pgxpool.Pool, olderThan time.Duration) (int64, error) {
	tag, err := pool.Exec(ctx, `DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)`, olderThan.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
