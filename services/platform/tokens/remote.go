package tokens

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// RemoteKeySet is the public key set served by the auth service
// (/.well-known/jwks.json), cached. It is fetched again when it is older than
// MaxAge and when a token names a kid the cache does not know (a key that was
// just rotated in), but at most once per MinRefresh, so a stream of tokens with
// made-up kids cannot turn the gateway into a load generator against auth.
type RemoteKeySet struct {
	URL        string
	Client     *http.Client
	MaxAge     time.Duration
	MinRefresh time.Duration

	mu        sync.Mutex
	set       KeySet
	fetchedAt time.Time
	triedAt   time.Time
}

// NewRemoteKeySet returns a cache of the JWKS at url with sensible defaults:
// refreshed every 5 minutes, on unknown kids at most every 10 seconds.
func NewRemoteKeySet(url string) *RemoteKeySet {
	return &RemoteKeySet{URL: url, MaxAge: 5 * time.Minute, MinRefresh: 10 * time.Second,
		// Fetches are spans of the request that needed the keys.
		Client: &http.Client{Timeout: 5 * time.Second, Transport: otelhttp.NewTransport(http.DefaultTransport)}}
}

// Lookup finds kid, fetching the document when the cache is stale or lacks kid.
func (r *RemoteKeySet) Lookup(ctx context.Context, kid string) (Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stale := time.Since(r.fetchedAt) > r.MaxAge
	key, err := r.set.Lookup(kid)
	if err == nil && !stale {
		return key, nil
	}
	if time.Since(r.triedAt) < r.MinRefresh && !r.fetchedAt.IsZero() {
		return key, err // refreshed moments ago: the kid really is unknown
	}
	r.triedAt = time.Now()
	if ferr := r.fetch(ctx); ferr != nil {
		if err == nil {
			return key, nil // keep serving the cached key while auth is unreachable
		}
		return Key{}, fmt.Errorf("%w (and the JWKS could not be refreshed: %v)", err, ferr)
	}
	return r.set.Lookup(kid)
}

// Ready reports whether keys have been fetched, fetching them if not.
func (r *RemoteKeySet) Ready(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.fetchedAt.IsZero() {
		return nil
	}
	return r.fetch(ctx)
}

func (r *RemoteKeySet) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return err
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS %s: %w", r.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS %s: status %d", r.URL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read JWKS %s: %w", r.URL, err)
	}
	set, err := ParseJWKS(body)
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", r.URL, err)
	}
	r.set, r.fetchedAt = set.Public(), time.Now()
	return nil
}
