package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// RemoteKeySet is the public key set served by the auth service
// (/.well-known/jwks.json), cached in memory for the gateway.
//
// No request ever fetches the document itself. A fetch runs in a goroutine of
// its own, bounded by Timeout, so a client that hangs up cannot cancel it; the
// cache's lock is never held while it runs, so requests whose key is known are
// answered from memory meanwhile; and an attempt counts once it has ended, so
// the pace below is measured between real answers from auth (or real failures).
//
//   - Refresh: a key set older than this is fetched again in the background on
//     the next lookup (which is answered from the cache), so a key auth stops
//     publishing is refused about Refresh later.
//   - MinRefresh: the least time between the end of one attempt and the start
//     of the next. A token naming an unknown kid (a key just rotated in, or a
//     made-up one) waits for the attempt in flight, or starts one when the pace
//     allows, never longer than its own request lasts; otherwise it is refused
//     at once. Made-up kids therefore cost auth at most one fetch per MinRefresh.
//   - MaxStale: keys not confirmed by a successful fetch for this long are no
//     longer trusted, and every token is refused until a fetch succeeds (fail
//     closed). A key removed from the set while auth cannot be reached is so
//     accepted at most MaxStale after the last fetch that still had it.
//
// Use NewRemoteKeySet for the defaults.
type RemoteKeySet struct {
	URL        string
	Client     *http.Client
	Refresh    time.Duration
	MinRefresh time.Duration
	MaxStale   time.Duration
	Timeout    time.Duration
	// Observe, when set, is told the outcome of every attempt once it has
	// ended, before anyone waiting for the attempt goes on (nil: the key set
	// was fetched). It must be quick: waiters wait for it.
	Observe func(error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu          sync.Mutex // guards what follows; never held during a fetch
	set         KeySet
	fetchedAt   time.Time     // the last successful fetch
	attemptedAt time.Time     // the end of the last attempt, successful or not
	lastErr     error         // the last attempt's failure, nil after a success
	inFlight    chan struct{} // closed when the running attempt ends; nil when none runs
}

// NewRemoteKeySet returns a cache of the JWKS at url: refreshed every minute,
// at most every 10 seconds for unknown kids or after a failure, trusted for 15
// minutes without a successful fetch, each fetch bounded by 5 seconds.
func NewRemoteKeySet(url string) *RemoteKeySet {
	return &RemoteKeySet{URL: url, Refresh: time.Minute, MinRefresh: 10 * time.Second, MaxStale: 15 * time.Minute, Timeout: 5 * time.Second,
		Client: &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport)}}
}

// ErrStaleKeys means the key set could not be confirmed for longer than
// MaxStale (or was never fetched), so no token is trusted.
var ErrStaleKeys = errors.New("the key set is not confirmed recently enough to trust")

// Lookup finds kid. A known kid is answered from memory (starting a
// background refresh when the set is older than Refresh); an unknown kid, or a
// set too stale to trust, waits for a refresh when the pace allows one, as
// long as ctx lasts.
func (r *RemoteKeySet) Lookup(ctx context.Context, kid string) (Key, error) {
	for waited := false; ; waited = true {
		r.mu.Lock()
		now := r.now()
		trusted := r.trustedLocked(now)
		key, err := r.set.Lookup(kid)
		if trusted && err == nil {
			if now.Sub(r.fetchedAt) >= r.Refresh {
				r.startLocked(now) // answer now; the next lookups get the new set
			}
			r.mu.Unlock()
			return key, nil
		}
		var wait chan struct{}
		if !waited {
			wait = r.startLocked(now)
		}
		refusal := r.refusalLocked(now, trusted, err)
		r.mu.Unlock()
		if wait == nil {
			return Key{}, refusal
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Key{}, fmt.Errorf("%w (gave up waiting for the key set: %v)", refusal, ctx.Err())
		}
	}
}

// Ready reports whether keys were ever fetched, starting a fetch (and waiting
// for it, as long as ctx lasts) when none were and the pace allows.
func (r *RemoteKeySet) Ready(ctx context.Context) error {
	r.mu.Lock()
	if !r.fetchedAt.IsZero() {
		r.mu.Unlock()
		return nil
	}
	wait := r.startLocked(r.now())
	r.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fetchedAt.IsZero() {
		if r.lastErr != nil {
			return r.lastErr
		}
		return errors.New("the JWKS has not been fetched yet")
	}
	return nil
}

// FetchedAt is when the key set was last fetched successfully (zero: never).
func (r *RemoteKeySet) FetchedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetchedAt
}

func (r *RemoteKeySet) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RemoteKeySet) trustedLocked(now time.Time) bool {
	return !r.fetchedAt.IsZero() && (r.MaxStale <= 0 || now.Sub(r.fetchedAt) <= r.MaxStale)
}

func (r *RemoteKeySet) refusalLocked(now time.Time, trusted bool, unknown error) error {
	switch {
	case trusted:
		return unknown
	case r.fetchedAt.IsZero():
		return fmt.Errorf("%w: the JWKS has not been fetched yet (last attempt: %v)", ErrStaleKeys, r.lastErr)
	default:
		return fmt.Errorf("%w: the JWKS was last fetched %s ago, more than %s (last attempt: %v)",
			ErrStaleKeys, now.Sub(r.fetchedAt).Round(time.Second), r.MaxStale, r.lastErr)
	}
}

// startLocked returns the channel of the attempt in flight, starting one if
// none runs and the last ended at least MinRefresh ago; nil when the pace
// allows none now.
func (r *RemoteKeySet) startLocked(now time.Time) chan struct{} {
	if r.inFlight != nil {
		return r.inFlight
	}
	if !r.attemptedAt.IsZero() && now.Sub(r.attemptedAt) < r.MinRefresh {
		return nil
	}
	done := make(chan struct{})
	r.inFlight = done
	go r.attempt(done)
	return done
}

// attempt fetches the document on a context of its own, records the outcome
// and wakes whoever waits.
func (r *RemoteKeySet) attempt(done chan struct{}) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	set, err := r.fetch(ctx)
	cancel()
	r.mu.Lock()
	now := r.now()
	if err == nil {
		r.set, r.fetchedAt = set, now
	}
	r.attemptedAt, r.lastErr, r.inFlight = now, err, nil
	r.mu.Unlock()
	// Observed before the waiters wake, so that whoever waited for this
	// attempt finds its outcome counted (a test saw a waiter finish its whole
	// run before a late Observe).
	if r.Observe != nil {
		r.Observe(err)
	}
	close(done)
}

func (r *RemoteKeySet) fetch(ctx context.Context) (KeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return KeySet{}, err
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return KeySet{}, fmt.Errorf("fetch JWKS %s: %w", r.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return KeySet{}, fmt.Errorf("fetch JWKS %s: status %d", r.URL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return KeySet{}, fmt.Errorf("read JWKS %s: %w", r.URL, err)
	}
	set, err := ParseJWKS(body)
	if err != nil {
		return KeySet{}, fmt.Errorf("JWKS %s: %w", r.URL, err)
	}
	return set.Public(), nil
}
