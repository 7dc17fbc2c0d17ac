package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a kshop access token (docs/api.md#authentication).
type Claims struct {
	Email string   `json:"email"`
	Roles []string `json:"roles"`
	// CredentialID names the password the token was obtained with: a random id
	// that a password reset or an account deletion revokes, and with it every
	// token that carries it (the gateway checks the revocation list).
	CredentialID string `json:"credential_id,omitempty"`
	jwt.RegisteredClaims
}

// HasRole reports whether the token grants role.
func (c *Claims) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// KeySource hands out the current key set; a KeyFile reloads it as it changes.
type KeySource interface {
	KeySet() KeySet
}

// Static is a key set that never changes.
type Static KeySet

// KeySet returns the set.
func (s Static) KeySet() KeySet { return KeySet(s) }

// Signer issues access tokens with the newest active key of its source.
type Signer struct {
	Keys     KeySource
	Issuer   string
	Audience string
	TTL      time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Identity is whom a token is issued to.
type Identity struct {
	Subject      string
	Email        string
	Roles        []string
	CredentialID string
}

// Sign issues a token for the user; it returns the token and when it expires.
func (s *Signer) Sign(id Identity) (string, time.Time, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	key, err := s.Keys.KeySet().SigningKey(now)
	if err != nil {
		return "", time.Time{}, err
	}
	method, err := signingMethod(key.Algorithm)
	if err != nil {
		return "", time.Time{}, err
	}
	expires := now.Add(s.TTL).Truncate(time.Second)
	token := jwt.NewWithClaims(method, Claims{
		Email:        id.Email,
		Roles:        id.Roles,
		CredentialID: id.CredentialID,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   id.Subject,
			Issuer:    s.Issuer,
			Audience:  jwt.ClaimStrings{s.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	})
	token.Header["kid"] = key.ID
	signed, err := token.SignedString(key.Private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token with key %q: %w", key.ID, err)
	}
	return signed, expires, nil
}

func signingMethod(alg string) (jwt.SigningMethod, error) {
	switch alg {
	case EdDSA:
		return jwt.SigningMethodEdDSA, nil
	case ES256:
		return jwt.SigningMethodES256, nil
	}
	return nil, fmt.Errorf("algorithm %q is not one of %s, %s", alg, EdDSA, ES256)
}

// PublicKeys finds the key a token names. A KeySet answers from memory; the
// gateway's remote JWKS fetches the document again when a kid is unknown.
type PublicKeys interface {
	Lookup(ctx context.Context, kid string) (Key, error)
}

// KeySetLookup adapts a KeySource to PublicKeys.
type KeySetLookup struct{ Source KeySource }

// Lookup finds kid in the source's current set.
func (l KeySetLookup) Lookup(_ context.Context, kid string) (Key, error) {
	return l.Source.KeySet().Lookup(kid)
}

// Verifier checks access tokens: signature by a known key whose algorithm the
// token's alg header must match (no "none", no HMAC, no switching algorithms),
// issuer, audience, expiry (required) and issued-at.
type Verifier struct {
	Keys     PublicKeys
	Issuer   string
	Audience string
	// Leeway absorbs clock skew between the signer and the verifier.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Cache, when set, remembers verified tokens (see VerifiedCache).
	Cache *VerifiedCache
}

// Verification failures callers may want to tell apart (an expired token
// deserves a different log line than a forged one; clients get 401 for all).
var (
	ErrExpired = errors.New("token expired")
	ErrInvalid = errors.New("token invalid")
)

// Verify parses and checks raw, returning its claims.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if v.Cache == nil {
		claims, _, err := v.verify(ctx, raw)
		return claims, err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if hit, ok := v.Cache.get(raw, now); ok {
		if _, err := v.Keys.Lookup(ctx, hit.kid); err == nil {
			claims := hit.claims // a copy: callers cannot change the cached one
			claims.Roles = slices.Clone(hit.claims.Roles)
			claims.Audience = slices.Clone(hit.claims.Audience)
			return &claims, nil
		}
	}
	claims, kid, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	// Kept until the moment the parser would call it expired.
	v.Cache.put(raw, verified{claims: *claims, kid: kid, until: claims.ExpiresAt.Add(v.Leeway)}, now)
	cached := *claims
	cached.Roles = slices.Clone(claims.Roles)
	cached.Audience = slices.Clone(claims.Audience)
	return &cached, nil
}

// verify is the full check: signature, algorithm, issuer, audience, times.
// It returns the kid of the key that signed raw.
func (v *Verifier) verify(ctx context.Context, raw string) (*Claims, string, error) {
	var kid string
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{EdDSA, ES256}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.Leeway),
	}
	if v.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.Now))
	}
	claims := &Claims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid header")
		}
		key, err := v.Keys.Lookup(ctx, kid)
		if err != nil {
			return nil, err
		}
		if t.Method.Alg() != key.Algorithm {
			return nil, fmt.Errorf("token alg %q does not match key %q's %q", t.Method.Alg(), kid, key.Algorithm)
		}
		return key.Public, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, "", fmt.Errorf("%w: %v", ErrExpired, err)
	default:
		return nil, "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if claims.Subject == "" {
		return nil, "", fmt.Errorf("%w: no subject", ErrInvalid)
	}
	return claims, kid, nil
}
