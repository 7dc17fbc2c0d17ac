package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/platform/tokens"
)

// revocations tells whether a token's credentials were revoked: auth writes
// tokens.RevokedCredentialKey(id) when a password is reset or an account
// deleted, for as long as a token issued before can live. A "not revoked"
// answer is kept for ttl per credential, so Redis is asked at most once per
// credential per ttl; a revocation is kept until it is swept, since it never
// ends. The cache is bounded: entries past ttl are swept once it holds
// sweepAbove of them.
type revocations struct {
	redis redis.UniversalClient
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]revocationEntry
}

type revocationEntry struct {
	revoked   bool
	checkedAt time.Time
}

const sweepAbove = 100_000

func newRevocations(rdb redis.UniversalClient, ttl time.Duration) *revocations {
	return &revocations{redis: rdb, ttl: ttl, now: time.Now, cache: map[string]revocationEntry{}}
}

// revoked answers for one credential id. Tokens without one (issued before
// auth named credentials) cannot be checked and pass; they expire within the
// token lifetime. When Redis cannot answer, the last answer for the id, however
// old, is used; without one, err is set and the caller decides.
func (r *revocations) revoked(ctx context.Context, credentialID string) (bool, error) {
	if credentialID == "" {
		return false, nil
	}
	now := r.now()
	r.mu.Lock()
	entry, cached := r.cache[credentialID]
	r.mu.Unlock()
	if cached && (entry.revoked || now.Sub(entry.checkedAt) < r.ttl) {
		return entry.revoked, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	n, err := r.redis.Exists(ctx, tokens.RevokedCredentialKey(credentialID)).Result()
	if err != nil {
		if cached {
			return entry.revoked, nil
		}
		return false, err
	}
	if r.ttl > 0 || n > 0 {
		r.remember(credentialID, revocationEntry{revoked: n > 0, checkedAt: now})
	}
	return n > 0, nil
}

func (r *revocations) remember(id string, e revocationEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= sweepAbove {
		for k, old := range r.cache {
			if e.checkedAt.Sub(old.checkedAt) >= r.ttl {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= sweepAbove { // every entry is recent: start over rather than grow
			clear(r.cache)
		}
	}
	r.cache[id] = e
}

// errRevocationUnknown is what a request gets when its token's revocation
// cannot be checked and the gateway fails closed.
var errRevocationUnknown = errors.New("token revocation cannot be checked")
