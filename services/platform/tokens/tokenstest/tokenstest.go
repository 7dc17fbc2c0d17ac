// Package tokenstest forges tokens for tests of what must refuse them: tokens
// with the wrong key, algorithm, audience, issuer or lifetime.
package tokenstest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kshop/kshop/services/platform/tokens"
)

// Claims returns valid claims for user 1 (issuer kshop-auth, audience kshop,
// an hour to live from now, admin role), changed by mutate when given.
func Claims(now time.Time, mutate func(*tokens.Claims)) tokens.Claims {
	c := tokens.Claims{Email: "x@example.com", Roles: []string{"customer", "admin"}, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "1", Issuer: "kshop-auth", Audience: jwt.ClaimStrings{"kshop"},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	if mutate != nil {
		mutate(&c)
	}
	return c
}

// Sign signs claims with method and secret under kid, whatever the combination:
// jwt.SigningMethodNone with jwt.UnsafeAllowNoneSignatureType, HMAC keyed with a
// public key, a key the verifier does not know.
func Sign(t testing.TB, method jwt.SigningMethod, c tokens.Claims, kid string, secret any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatalf("tokenstest: sign: %v", err)
	}
	return s
}
