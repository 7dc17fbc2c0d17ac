package tokens_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/tokens"
)

// jwksServer serves a key set that the test changes, counts the fetches, and
// can be made to hold every answer until released or to fail.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	set     tokens.KeySet
	fetches int
	fail    bool
	hold    chan struct{} // when set, each answer waits until it is closed
	arrived chan struct{} // told of every request, when set
}

func newJWKSServer(t *testing.T, keys ...tokens.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{set: tokens.KeySet{Keys: keys}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.fetches++
		hold, arrived, fail := s.hold, s.arrived, s.fail
		doc, _ := s.set.Public().MarshalJWKS(false)
		s.mu.Unlock()
		if arrived != nil {
			arrived <- struct{}{}
		}
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			http.Error(w, "auth is down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(keys ...tokens.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = tokens.KeySet{Keys: keys}
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// clock is a settable time for the key set's refresh rules.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lookupWithin runs Lookup and fails the test if it has not returned after a
// long time: a lookup that blocks behind a fetch hangs, it does not fail.
func lookupWithin(t *testing.T, remote *tokens.RemoteKeySet, ctx context.Context, kid string) (tokens.Key, error) {
	t.Helper()
	type result struct {
		key tokens.Key
		err error
	}
	done := make(chan result, 1)
	go func() {
		key, err := remote.Lookup(ctx, kid)
		done <- result{key, err}
	}()
	select {
	case r := <-done:
		return r.key, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("Lookup(%q) is stuck", kid)
		return tokens.Key{}, nil
	}
}

func TestRemoteKeySetFetchesOnUnknownKidButNotTooOften(t *testing.T) {
	now := time.Now()
	first := newKey(t, tokens.EdDSA, now.Add(-time.Hour))
	server := newJWKSServer(t, first)
	clk := &clock{now: now}
	remote := tokens.NewRemoteKeySet(server.URL)
	remote.Now = clk.Now
	ctx := context.Background()

	if _, err := remote.Lookup(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	second := newKey(t, tokens.ES256, now)
	server.serve(second, first)
	// Moments after a fetch, an unknown kid does not trigger another.
	if _, err := remote.Lookup(ctx, "made-up"); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Fatalf("a made-up kid: %v, want ErrUnknownKey", err)
	}
	clk.advance(remote.MinRefresh)
	key, err := remote.Lookup(ctx, second.ID)
	if err != nil || key.Private != nil || key.Algorithm != tokens.ES256 {
		t.Fatalf("rotated key: %+v, %v", key, err)
	}
	for range 20 {
		_, _ = remote.Lookup(ctx, "made-up-again")
	}
	if n := server.count(); n != 2 {
		t.Fatalf("%d fetches, want 2 (start, then the rotated kid); unknown kids must not hammer auth", n)
	}
}

// TestRemoteKeySetRefreshOutlivesTheClientThatAskedForIt proves that a client
// naming an unknown kid and hanging up cannot cancel the refresh it caused:
// the fetch finishes on its own, and the rotated key it brings is accepted at
// once. (Before, the fetch ran on the client's context, the attempt counted as
// made, and the real key stayed unknown for MinRefresh after every hang-up.)
func TestRemoteKeySetRefreshOutlivesTheClientThatAskedForIt(t *testing.T) {
	now := time.Now()
	old := newKey(t, tokens.EdDSA, now.Add(-time.Hour))
	server := newJWKSServer(t, old)
	remote := tokens.NewRemoteKeySet(server.URL)
	remote.MinRefresh = time.Second
	if _, err := remote.Lookup(context.Background(), old.ID); err != nil {
		t.Fatal(err)
	}
	// Past MinRefresh, an unknown kid may cause one refresh; the next is a
	// second away, so only the hang-up's refresh can teach the rotated key.
	time.Sleep(remote.MinRefresh + 100*time.Millisecond)

	rotated := newKey(t, tokens.EdDSA, now)
	server.serve(rotated, old)
	hold, arrived := make(chan struct{}), make(chan struct{}, 1)
	server.mu.Lock()
	server.hold, server.arrived = hold, arrived
	server.mu.Unlock()

	ctx, hangUp := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := remote.Lookup(ctx, "made-up"); done <- err }()
	select {
	case <-arrived: // the refresh has reached auth
		hangUp()
		if err := <-done; err == nil {
			t.Fatal("a made-up kid was accepted")
		}
	case err := <-done:
		t.Fatalf("a made-up kid past MinRefresh did not cause a refresh: %v", err)
	}
	close(hold) // auth answers after the client is gone

	key, err := lookupWithin(t, remote, context.Background(), rotated.ID)
	if err != nil || key.ID != rotated.ID {
		t.Fatalf("the rotated key after a client hung up: %v", err)
	}
	if n := server.count(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// TestRemoteKeySetAnswersKnownKidsWhileAFetchHangs proves no request waits
// for a fetch it does not need: while auth sits on a refresh, tokens signed by
// a key already known verify. (Before, the fetch ran under the cache's lock.)
func TestRemoteKeySetAnswersKnownKidsWhileAFetchHangs(t *testing.T) {
	now := time.Now()
	known := newKey(t, tokens.EdDSA, now.Add(-time.Hour))
	server := newJWKSServer(t, known)
	remote := tokens.NewRemoteKeySet(server.URL)
	remote.Client = &http.Client{} // the fetch below hangs until the test ends
	if _, err := remote.Lookup(context.Background(), known.ID); err != nil {
		t.Fatal(err)
	}
	hold, arrived := make(chan struct{}), make(chan struct{}, 1)
	server.mu.Lock()
	server.hold, server.arrived = hold, arrived
	server.mu.Unlock()
	defer close(hold)

	remote.MinRefresh = 0
	asking, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _, _ = remote.Lookup(asking, "unknown-kid") }()
	<-arrived
	for range 5 {
		if _, err := lookupWithin(t, remote, context.Background(), known.ID); err != nil {
			t.Fatalf("a known key while a fetch hangs: %v", err)
		}
	}
}

// TestRemoteKeySetForgetsARemovedKeyWithinTheRefreshPeriod: once the key set
// is older than Refresh, the next lookup answers from the cache and fetches in
// the background; a key auth no longer publishes is refused from then on.
func TestRemoteKeySetForgetsARemovedKeyWithinTheRefreshPeriod(t *testing.T) {
	now := time.Now()
	removed, kept := newKey(t, tokens.EdDSA, now.Add(-2*time.Hour)), newKey(t, tokens.EdDSA, now.Add(-time.Hour))
	server := newJWKSServer(t, kept, removed)
	clk := &clock{now: now}
	remote := tokens.NewRemoteKeySet(server.URL)
	remote.Now = clk.Now
	ctx := context.Background()
	if _, err := remote.Lookup(ctx, removed.ID); err != nil {
		t.Fatal(err)
	}
	server.serve(kept)
	clk.advance(remote.Refresh / 2)
	if _, err := remote.Lookup(ctx, removed.ID); err != nil || server.count() != 1 {
		t.Fatalf("within the refresh period: %v after %d fetches, want the cached key and no fetch", err, server.count())
	}
	clk.advance(remote.Refresh)
	waitUntil(t, "the removed key to be refused", func() bool {
		_, err := remote.Lookup(ctx, removed.ID)
		return errors.Is(err, tokens.ErrUnknownKey)
	})
	if _, err := remote.Lookup(ctx, kept.ID); err != nil {
		t.Fatalf("the key still published: %v", err)
	}
}

// TestRemoteKeySetFailsClosedAfterMaxStale: while auth cannot be reached the
// cached keys keep verifying, for at most MaxStale after the last successful
// fetch; then every token is refused until a fetch succeeds again. A key
// removed from the set while auth is unreachable is accepted at most that long.
func TestRemoteKeySetFailsClosedAfterMaxStale(t *testing.T) {
	now := time.Now()
	key := newKey(t, tokens.EdDSA, now.Add(-time.Hour))
	server := newJWKSServer(t, key)
	clk := &clock{now: now}
	remote := tokens.NewRemoteKeySet(server.URL)
	remote.Now = clk.Now
	var mu sync.Mutex
	var outcomes []error
	remote.Observe = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		outcomes = append(outcomes, err)
	}
	attempts := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(outcomes)
	}
	ctx := context.Background()
	if _, err := remote.Lookup(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	server.mu.Lock()
	server.fail = true
	server.mu.Unlock()

	clk.advance(remote.Refresh + time.Second)
	if _, err := remote.Lookup(ctx, key.ID); err != nil {
		t.Fatalf("auth just went down: %v, want the cached key", err)
	}
	waitUntil(t, "the failed background refresh", func() bool { return attempts() == 2 })
	clk.advance(remote.MaxStale - remote.Refresh - 2*time.Second)
	if _, err := remote.Lookup(ctx, key.ID); err != nil {
		t.Fatalf("just under MaxStale: %v, want the cached key", err)
	}
	clk.advance(2 * time.Second)
	if _, err := lookupWithin(t, remote, ctx, key.ID); err == nil {
		t.Fatal("a key not confirmed for longer than MaxStale was accepted")
	}

	server.mu.Lock()
	server.fail = false
	server.mu.Unlock()
	clk.advance(remote.MinRefresh)
	if _, err := lookupWithin(t, remote, ctx, key.ID); err != nil {
		t.Fatalf("auth is back: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if outcomes[0] != nil || outcomes[1] == nil || outcomes[len(outcomes)-1] != nil {
		t.Fatalf("observed outcomes %v", outcomes)
	}
}

func waitUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
