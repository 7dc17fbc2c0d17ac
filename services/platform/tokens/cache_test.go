package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/tokens"
)

// swappableKeys is a key source whose set the test replaces (auth rotating
// its keys, or withdrawing one).
type swappableKeys struct {
	mu  sync.Mutex
	set tokens.KeySet
}

func (s *swappableKeys) KeySet() tokens.KeySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set
}

func (s *swappableKeys) replace(set tokens.KeySet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = set.Public()
}

type cachedWorld struct {
	now      time.Time
	keys     *swappableKeys
	signer   *tokens.Signer
	verifier *tokens.Verifier
}

func newCachedWorld(tb testing.TB, size int) *cachedWorld {
	w := &cachedWorld{now: time.Now()}
	key, err := tokens.GenerateKey(tokens.EdDSA, w.now.Add(-time.Minute), w.now.Add(-time.Minute))
	if err != nil {
		tb.Fatal(err)
	}
	set := tokens.KeySet{Keys: []tokens.Key{key}}
	w.keys = &swappableKeys{set: set.Public()}
	w.signer = signerFor(set, w.now)
	w.verifier = &tokens.Verifier{Keys: tokens.KeySetLookup{Source: w.keys}, Issuer: issuer, Audience: audience,
		Now: func() time.Time { return w.now }, Cache: tokens.NewVerifiedCache(size)}
	return w
}

func (w *cachedWorld) token(t testing.TB, subject string) string {
	t.Helper()
	token, _, err := w.signer.Sign(tokens.Identity{Subject: subject, Email: subject + "@example.com", Roles: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestCachedTokensAreRefusedOnceExpiredOrTheirKeyIsWithdrawn(t *testing.T) {
	w := newCachedWorld(t, 16)
	ctx := context.Background()
	token := w.token(t, "7")
	for range 2 { // a miss, then a hit
		claims, err := w.verifier.Verify(ctx, token)
		if err != nil || claims.Subject != "7" || !claims.HasRole("customer") {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		claims.Roles[0] = "admin" // a caller that changes what it got
	}
	if claims, _ := w.verifier.Verify(ctx, token); claims.HasRole("admin") {
		t.Fatal("a caller changed the cached claims")
	}
	if n := w.verifier.Cache.Len(); n != 1 {
		t.Fatalf("%d tokens cached, want 1", n)
	}

	w.now = w.now.Add(time.Hour + time.Second) // past the token's expiry
	if _, err := w.verifier.Verify(ctx, token); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("an expired cached token: %v, want ErrExpired", err)
	}

	w.now = w.now.Add(-time.Hour)
	other := w.token(t, "8")
	if _, err := w.verifier.Verify(ctx, other); err != nil {
		t.Fatal(err)
	}
	w.keys.replace(tokens.KeySet{Keys: []tokens.Key{newKey(t, tokens.EdDSA, w.now)}}) // its key withdrawn
	if _, err := w.verifier.Verify(ctx, other); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("a cached token whose key was withdrawn: %v, want ErrInvalid", err)
	}
}

func TestRefusedTokensAreNotCachedAndTheCacheIsBounded(t *testing.T) {
	w := newCachedWorld(t, 20)
	ctx := context.Background()
	forged := w.token(t, "9")
	forged = forged[:len(forged)-4] + "AAAA"
	for range 3 {
		if _, err := w.verifier.Verify(ctx, forged); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("forged token: %v", err)
		}
	}
	if n := w.verifier.Cache.Len(); n != 0 {
		t.Fatalf("%d refused tokens cached", n)
	}
	for i := range 100 {
		if _, err := w.verifier.Verify(ctx, w.token(t, fmt.Sprint(1000+i))); err != nil {
			t.Fatal(err)
		}
		if n := w.verifier.Cache.Len(); n > 20 {
			t.Fatalf("%d tokens cached, more than the 20 allowed", n)
		}
	}
}

// BenchmarkVerify: the full check against a cache hit, one token per client.
func BenchmarkVerify(b *testing.B) {
	for _, size := range []int{0, 4096} {
		b.Run(fmt.Sprintf("cache=%d", size), func(b *testing.B) {
			w := newCachedWorld(b, size)
			token := w.token(b, "1")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.verifier.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
