package tokens

import (
	"sync"
	"time"
)

// VerifiedCache remembers tokens that verified, so the next requests carrying
// the same token skip the signature check (Ed25519 verification is the largest
// cost of a request through the gateway, and a client sends one token for as
// long as it lives). Only tokens that passed every check are kept, each until
// the moment the full check would refuse it as expired; a hit still requires
// the token's key to be in the current key set, so a key withdrawn from the
// JWKS stops its tokens as soon as the verifier stops knowing it. The cache is
// bounded: when full, expired entries go first, then arbitrary ones.
//
// The zero value is not usable; use NewVerifiedCache.
type VerifiedCache struct {
	max     int
	mu      sync.Mutex
	entries map[string]verified
}

type verified struct {
	claims Claims
	kid    string
	until  time.Time
}

// NewVerifiedCache returns a cache of at most max tokens (a verified token
// costs about 1 KB). max < 1 returns nil: a Verifier without a cache.
func NewVerifiedCache(max int) *VerifiedCache {
	if max < 1 {
		return nil
	}
	return &VerifiedCache{max: max, entries: make(map[string]verified, max)}
}

// Len is the number of tokens remembered.
func (c *VerifiedCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *VerifiedCache) get(raw string, now time.Time) (verified, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.entries[raw]
	if ok && !now.Before(v.until) {
		delete(c.entries, raw)
		return verified{}, false
	}
	return v, ok
}

func (c *VerifiedCache) put(raw string, v verified, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[raw]; !ok && len(c.entries) >= c.max {
		c.makeRoomLocked(now)
	}
	c.entries[raw] = v
}

// makeRoomLocked drops the expired entries, and if none had expired about a
// tenth of the others (Go's map order is random enough for an eviction that an
// attacker holding only valid tokens of their own cannot aim).
func (c *VerifiedCache) makeRoomLocked(now time.Time) {
	for raw, v := range c.entries {
		if !now.Before(v.until) {
			delete(c.entries, raw)
		}
	}
	for raw := range c.entries {
		if len(c.entries) < c.max-c.max/10 {
			break
		}
		delete(c.entries, raw)
	}
}
