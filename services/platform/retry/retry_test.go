package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayGrowsWithinJitterBoundsAndCaps(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Multiplier: 2}
	for attempt, ceiling := range []time.Duration{10, 20, 40, 80, 80, 80} {
		ceiling *= time.Millisecond
		for range 200 {
			d := b.Delay(attempt)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
}

func TestDoStopsOnSuccess(t *testing.T) {
	calls := 0
	err := Do(context.Background(), Backoff{Initial: time.Millisecond}, 5, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err=%v calls=%d, want nil after 3 calls", err, calls)
	}
}

func TestDoGivesUpAfterAttemptsWithLastError(t *testing.T) {
	calls := 0
	err := Do(context.Background(), Backoff{Initial: time.Millisecond}, 4, func(context.Context) error {
		calls++
		return errors.New("still down")
	})
	if calls != 4 || err == nil || err.Error() != "still down" {
		t.Fatalf("err=%v calls=%d, want 'still down' after 4 calls", err, calls)
	}
}

func TestDoStopsAtPermanentError(t *testing.T) {
	calls := 0
	bad := errors.New("malformed")
	err := Do(context.Background(), Backoff{Initial: time.Millisecond}, 10, func(context.Context) error {
		calls++
		return Permanent(bad)
	})
	if calls != 1 || !errors.Is(err, bad) || !IsPermanent(err) {
		t.Fatalf("err=%v calls=%d, want the permanent error after 1 call", err, calls)
	}
}

func TestDoEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := Do(ctx, Backoff{Initial: 5 * time.Millisecond, Max: 5 * time.Millisecond}, 0, func(context.Context) error {
		return errors.New("down")
	})
	if err == nil || err.Error() != "down" {
		t.Fatalf("err=%v, want the last operation error once the context ended", err)
	}
}
