// Package retry computes exponential backoff with jitter and retries an operation
// until it succeeds, the attempts run out, or the context ends.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff describes exponential backoff with full jitter: the n-th wait is a random
// duration in [Initial·Multiplier^n / 2, Initial·Multiplier^n], capped at Max. Jitter
// keeps many clients that failed together from retrying together.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
}

// Default suits reconnecting to a local dependency: 100 ms, doubling, at most 10 s.
var Default = Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}

// Redelivery paces the retries of one message whose handler failed: 200 ms,
// doubling, at most 5 s, so a few attempts span a short outage of a dependency.
var Redelivery = Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}

// Delay returns how long to wait before retry number attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	ceiling := float64(b.Initial)
	for i := 0; i < attempt && ceiling < float64(b.Max); i++ {
		ceiling *= b.Multiplier
	}
	if ceiling > float64(b.Max) {
		ceiling = float64(b.Max)
	}
	half := ceiling / 2
	return time.Duration(half + rand.Float64()*half)
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = Default.Initial
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = Default.Multiplier
	}
	return b
}

// Sleep waits for d or until ctx ends, and reports whether the full wait happened.
func Sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// permanentError marks an error that no retry can fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that Do stops retrying at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Do calls op until it returns nil, returns a Permanent error, has been called
// attempts times (attempts <= 0 means until ctx ends), or ctx ends. It returns the
// last error op returned, or ctx's error if ctx ended before op ever ran to completion.
func Do(ctx context.Context, b Backoff, attempts int, op func(context.Context) error) error {
	var last error
	for attempt := 0; attempts <= 0 || attempt < attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return last
			}
			return err
		}
		last = op(ctx)
		if last == nil || IsPermanent(last) {
			return last
		}
		if attempts > 0 && attempt == attempts-1 {
			break
		}
		if !Sleep(ctx, b.Delay(attempt)) {
			return last
		}
	}
	return last
}

// Pace is a doubling Backoff as a service's configuration reads it:
// <PREFIX>_INITIAL and <PREFIX>_MAX. The defaults let five attempts span about
// 15 s, longer than a restart of PostgreSQL or a broker, so a short outage
// dead-letters nothing.
type Pace struct {
	Initial time.Duration `envconfig:"INITIAL" default:"1s" desc:"Wait before the second try, doubling (with jitter) up to _MAX; with the defaults the tries span about 15s, longer than a database or broker restart."`
	Max     time.Duration `envconfig:"MAX" default:"1m" desc:"Longest delay between two retries."`
}

// Backoff is the pace as a Backoff; a zero Initial gives the zero Backoff,
// which consumers read as their default (Redelivery).
func (p Pace) Backoff() Backoff {
	if p.Initial <= 0 {
		return Backoff{}
	}
	return Backoff{Initial: p.Initial, Max: max(p.Max, p.Initial), Multiplier: 2}
}
