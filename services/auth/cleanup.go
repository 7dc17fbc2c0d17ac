package auth

import (
	"context"
	"fmt"
	"time"
)

// cleanupBatch bounds one DELETE, so a large backlog never holds many rows
// locked in one transaction.
const cleanupBatch = 1000

// expireRegistrations deletes, every CleanupInterval (and once at start),
// the registrations not verified within UnverifiedTTL and the reset codes
// past their expiry. Every replica runs it; the deletes are idempotent. A
// failed round is logged and the next one tries again.
func (s *Service) expireRegistrations(ctx context.Context) error {
	for {
		if n, err := s.cleanUp(ctx); err != nil {
			s.logger.WarnContext(ctx, "delete expired registrations", "error", err)
		} else if n > 0 {
			s.logger.InfoContext(ctx, "deleted registrations not verified in time", "count", n, "older_than", s.cfg.UnverifiedTTL)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.cfg.CleanupInterval):
		}
	}
}

// cleanUp is one round; it returns how many registrations it deleted.
func (s *Service) cleanUp(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.db.Primary.Exec(ctx, `
			DELETE FROM users WHERE id IN (
				SELECT id FROM users WHERE NOT is_verified AND registered_at < now() - make_interval(secs => $1) LIMIT $2)`,
			s.cfg.UnverifiedTTL.Seconds(), cleanupBatch)
		if err != nil {
			return total, fmt.Errorf("delete unverified users: %w", err)
		}
		total += tag.RowsAffected()
		if s.counters.expired != nil {
			s.counters.expired(tag.RowsAffected())
		}
		if tag.RowsAffected() < cleanupBatch {
			break
		}
	}
	if _, err := s.db.Primary.Exec(ctx, `DELETE FROM password_reset_codes WHERE expires_at < now()`); err != nil {
		return total, fmt.Errorf("delete expired reset codes: %w", err)
	}
	return total, nil
}
