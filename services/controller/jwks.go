// Package controller is kshop's platform controller, a controller-runtime
// manager without CRDs of its own: it keeps the JWT signing keys rotated in a
// Secret labelled kshop.io/jwks (and, to come, the messaging topology declared
// in labelled ConfigMaps).
package controller

import (
	"fmt"
	"slices"
	"time"

	"github.com/kshop/kshop/services/platform/tokens"
)

// RotationPolicy says how signing keys come and go.
type RotationPolicy struct {
	Algorithm string
	// Period is how often a new key is added.
	Period time.Duration
	// PropagationDelay is how long a new key is only published before it signs,
	// so every verifier has fetched it first.
	PropagationDelay time.Duration
	// TokenLifetime and Grace bound how long a key must keep verifying after a
	// newer key took over signing.
	TokenLifetime, Grace time.Duration
}

// Rotate returns the key set the Secret should hold at now, and whether it
// differs from set. An empty set gets a key that signs at once; a new key is
// added every Period, active after PropagationDelay; a key is removed once a
// newer key has been signing for TokenLifetime + Grace, when no token it signed
// can still be valid. The key that signs at now is never removed.
func Rotate(set tokens.KeySet, now time.Time, p RotationPolicy) (tokens.KeySet, bool, error) {
	now = now.UTC().Truncate(time.Second)
	keys := slices.Clone(set.Keys)
	changed := false
	if len(keys) == 0 {
		k, err := tokens.GenerateKey(p.Algorithm, now, now)
		if err != nil {
			return set, false, err
		}
		return tokens.KeySet{Keys: []tokens.Key{k}}, true, nil
	}
	newest := keys[0]
	for _, k := range keys {
		if createdOrActive(k).After(createdOrActive(newest)) {
			newest = k
		}
	}
	if !now.Before(createdOrActive(newest).Add(p.Period)) {
		k, err := tokens.GenerateKey(p.Algorithm, now, now.Add(p.PropagationDelay))
		if err != nil {
			return set, false, err
		}
		keys = append([]tokens.Key{k}, keys...)
		changed = true
	}
	signing, err := tokens.KeySet{Keys: keys}.SigningKey(now)
	if err != nil {
		return set, false, fmt.Errorf("no key signs at %s: %w", now.Format(time.RFC3339), err)
	}
	kept := keys[:0]
	for _, k := range keys {
		if k.ID != signing.ID && retired(k, keys, now, p) {
			changed = true
			continue
		}
		kept = append(kept, k)
	}
	return tokens.KeySet{Keys: kept}, changed, nil
}

// retired reports whether a newer key has been signing in k's place for longer
// than a token lives, plus grace.
func retired(k tokens.Key, keys []tokens.Key, now time.Time, p RotationPolicy) bool {
	for _, other := range keys {
		if other.ActiveFrom.After(k.ActiveFrom) && !other.ActiveFrom.After(now) &&
			!now.Before(other.ActiveFrom.Add(p.TokenLifetime+p.Grace)) {
			return true
		}
	}
	return false
}

func createdOrActive(k tokens.Key) time.Time {
	if !k.CreatedAt.IsZero() {
		return k.CreatedAt
	}
	return k.ActiveFrom
}

// NextChange is when Rotate will next change set: the next key due, the next
// activation, or the next removal.
func NextChange(set tokens.KeySet, now time.Time, p RotationPolicy) time.Time {
	next := now.Add(p.Period)
	for _, k := range set.Keys {
		candidates := []time.Time{createdOrActive(k).Add(p.Period), k.ActiveFrom, k.ActiveFrom.Add(p.TokenLifetime + p.Grace)}
		for _, c := range candidates {
			if c.After(now) && c.Before(next) {
				next = c
			}
		}
	}
	return next
}
