package tokens_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/platform/tokens/tokenstest"
)

// FuzzVerify mutates tokens around a real one: whatever the gateway is handed,
// Verify never panics, and it accepts nothing but what the key signed. A
// signature covers the decoded bytes, so an accepted token carries exactly the
// signed claims. Forged variants (alg none, HMAC keyed with the public key,
// another key under the same kid) are committed under testdata/fuzz/FuzzVerify/.
func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// A fixed key, so the committed seeds stay signed by it.
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "kshop fuzz key: not a secret...")
	key := tokens.Key{ID: "fuzz", Algorithm: tokens.EdDSA, Private: ed25519.NewKeyFromSeed(seed)}
	key.Public = key.Private.Public()
	verifier := &tokens.Verifier{Keys: tokens.KeySetLookup{Source: tokens.Static{Keys: []tokens.Key{key}}},
		Issuer: "kshop-auth", Audience: "kshop", Now: func() time.Time { return now }}
	signed := tokenstest.Claims(now, func(c *tokens.Claims) { c.Subject, c.Email = "42", "fuzz@kshop.dev" })
	f.Add(tokenstest.Sign(f, jwt.SigningMethodEdDSA, signed, key.ID, key.Private))
	f.Add(tokenstest.Sign(f, jwt.SigningMethodNone, signed, key.ID, jwt.UnsafeAllowNoneSignatureType))
	f.Add(tokenstest.Sign(f, jwt.SigningMethodHS256, signed, key.ID, []byte(key.Public.(ed25519.PublicKey))))
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := verifier.Verify(context.Background(), raw)
		if err != nil {
			return
		}
		if claims.Subject != signed.Subject || claims.Email != signed.Email || !slices.Equal(claims.Roles, signed.Roles) ||
			!claims.ExpiresAt.Equal(signed.ExpiresAt.Time) {
			t.Fatalf("accepted %q with claims %+v, which the key never signed", raw, claims)
		}
	})
}

// FuzzParseJWKS reads whatever a mounted Secret or the auth service's JWKS
// endpoint holds: never a panic, and every key it accepts is usable.
func FuzzParseJWKS(f *testing.F) {
	key, err := tokens.GenerateKey(tokens.ES256, time.Now(), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	doc, err := tokens.KeySet{Keys: []tokens.Key{key}}.MarshalJWKS(true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := tokens.ParseJWKS(data)
		if err != nil {
			return
		}
		for _, k := range set.Keys {
			if k.ID == "" || k.Public == nil || (k.Algorithm != tokens.EdDSA && k.Algorithm != tokens.ES256) {
				t.Fatalf("accepted an unusable key %+v from %q", k, data)
			}
		}
		again, err := set.MarshalJWKS(true)
		if err != nil {
			t.Fatalf("accepted %q but cannot write it back: %v", data, err)
		}
		if _, err := tokens.ParseJWKS(again); err != nil {
			t.Fatalf("accepted %q but not its rewrite %s: %v", data, again, err)
		}
	})
}
