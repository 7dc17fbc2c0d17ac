package controller

import (
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/tokens"
)

var policy = RotationPolicy{Algorithm: tokens.EdDSA, Period: 24 * time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Hour, Grace: 5 * time.Minute}

func ids(set tokens.KeySet) []string {
	out := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		out[i] = k.ID
	}
	return out
}

func TestRotationAcrossDays(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	set, changed, err := Rotate(tokens.KeySet{}, t0, policy)
	if err != nil || !changed || len(set.Keys) != 1 {
		t.Fatalf("first key: %v %v %v", ids(set), changed, err)
	}
	first := set.Keys[0]
	if s, _ := set.SigningKey(t0); s.ID != first.ID {
		t.Fatal("the first key does not sign at once")
	}
	// Nothing changes during the day.
	if _, changed, _ := Rotate(set, t0.Add(23*time.Hour), policy); changed {
		t.Fatal("a key was added before the period passed")
	}
	// After a day: a second key, published but not signing yet.
	day1 := t0.Add(24 * time.Hour)
	set, changed, _ = Rotate(set, day1, policy)
	if !changed || len(set.Keys) != 2 {
		t.Fatalf("day 1: %v", ids(set))
	}
	second := set.Keys[0]
	if s, _ := set.SigningKey(day1); s.ID != first.ID {
		t.Fatal("the new key signs before its propagation delay")
	}
	if s, _ := set.SigningKey(day1.Add(10 * time.Minute)); s.ID != second.ID {
		t.Fatal("the new key does not sign after its propagation delay")
	}
	// The old key stays while its tokens can be valid (lifetime + grace after the switch).
	switchAt := day1.Add(10 * time.Minute)
	if set, _, _ = Rotate(set, switchAt.Add(time.Hour), policy); len(set.Keys) != 2 {
		t.Fatalf("the old key left during its tokens' lifetime: %v", ids(set))
	}
	set, changed, _ = Rotate(set, switchAt.Add(time.Hour+5*time.Minute), policy)
	if !changed || len(set.Keys) != 1 || set.Keys[0].ID != second.ID {
		t.Fatalf("after lifetime + grace the old key should be gone: %v", ids(set))
	}
	if next := NextChange(set, switchAt.Add(2*time.Hour), policy); !next.Equal(day1.Add(24 * time.Hour)) {
		t.Fatalf("next change %v, want the next day's key", next)
	}
}

func TestAControllerThatWasDownCatchesUp(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	set, _, _ := Rotate(tokens.KeySet{}, t0, policy)
	// Ten days later: one new key (not ten), the old one still signing until the new one activates.
	later := t0.Add(240 * time.Hour)
	set, _, _ = Rotate(set, later, policy)
	if len(set.Keys) != 2 {
		t.Fatalf("%v", ids(set))
	}
	if s, err := set.SigningKey(later); err != nil || s.ID != set.Keys[1].ID {
		t.Fatal("nothing signs while the new key propagates")
	}
}
