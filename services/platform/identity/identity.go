// Package identity carries who is calling from the gateway to the services.
//
// The gateway verifies the caller's access token, then sends the services the
// identity twice: readable, in the X-User-ID, X-User-Email and X-User-Roles
// headers (docs/api.md#identity-behind-the-gateway), and signed, in
// X-Identity-Token: a JWT the gateway signs with a key of its own (EdDSA or
// ES256, never a shared secret), addressed to one service (aud) and valid for
// about a minute. A service believes the headers only when the token verifies
// against the gateway's public keys and says the same; any X-User-* header
// without such a token is refused. So a pod that reaches a service directly,
// past the gateway, cannot act as anyone: it holds no gateway key, and a token
// it captured names another service or expires within the minute.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/tokens"
)

// The headers the gateway sets.
const (
	HeaderUserID = "X-User-ID"
	HeaderEmail  = "X-User-Email"
	HeaderRoles  = "X-User-Roles"
	// HeaderToken carries the gateway's signed statement of the other three.
	HeaderToken = "X-Identity-Token"
)

// Headers are every header that speaks for a caller; the gateway removes the
// ones a client sent.
var Headers = []string{HeaderUserID, HeaderEmail, HeaderRoles, HeaderToken}

// TokenIssuer is the iss of identity tokens; auth's access tokens carry
// another issuer and audience, so neither kind passes for the other.
const TokenIssuer = "kshop-gateway"

// Roles granted by the auth service.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// User is the authenticated caller.
type User struct {
	ID    int64
	Email string
	Roles []string
}

// HasRole reports whether the user holds role.
func (u User) HasRole(role string) bool { return slices.Contains(u.Roles, role) }

// Header sets u's X-User-* headers, and nothing that vouches for them: alone,
// they are what a forger sends. Issuer.Header adds the token.
func (u User) Header(h http.Header) {
	h.Set(HeaderUserID, strconv.FormatInt(u.ID, 10))
	h.Set(HeaderEmail, u.Email)
	h.Set(HeaderRoles, strings.Join(u.Roles, ","))
}

// Issuer signs identity tokens: the gateway's side.
type Issuer struct {
	// Keys holds the gateway's private keys; the newest active one signs, so
	// a rotated key set takes over without a restart.
	Keys tokens.KeySource
	// TTL is how long a token stays valid: long enough for one hop and the
	// clocks' skew, short enough that a captured one is soon worthless.
	TTL time.Duration
	// Reuse, when positive, keeps up to that many signed tokens, one per
	// identity and audience, and hands a token out again while more than half
	// of its TTL is left and its key still signs: a client's requests then
	// cost one signature a half-TTL instead of one each, and the services'
	// caches of verified tokens answer them from memory. 0 signs every time.
	Reuse int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	issued map[string]issuedToken
}

type issuedToken struct {
	raw        string
	kid        string
	renewAfter time.Time
}

func (i *Issuer) now() time.Time {
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

// Token signs u for the service audience (or hands out the token signed
// for them a moment ago, see Reuse).
func (i *Issuer) Token(u User, audience string) (string, error) {
	now := i.now()
	var key string
	var signing tokens.Key
	if i.Reuse > 0 {
		k, err := i.Keys.KeySet().SigningKey(now)
		if err != nil {
			return "", fmt.Errorf("sign the identity of user %d for %s: %w", u.ID, audience, err)
		}
		signing = k
		key = audience + "\x00" + strconv.FormatInt(u.ID, 10) + "\x00" + u.Email + "\x00" + strings.Join(u.Roles, ",")
		i.mu.Lock()
		t, ok := i.issued[key]
		i.mu.Unlock()
		// A token of a key that no longer signs is not handed out again: the
		// key may be on its way out of the services' key sets.
		if ok && now.Before(t.renewAfter) && t.kid == signing.ID {
			return t.raw, nil
		}
	}
	signer := tokens.Signer{Keys: i.Keys, Issuer: TokenIssuer, Audience: audience, TTL: i.TTL, Now: func() time.Time { return now }}
	token, _, err := signer.Sign(tokens.Identity{Subject: strconv.FormatInt(u.ID, 10), Email: u.Email, Roles: u.Roles})
	if err != nil {
		return "", fmt.Errorf("sign the identity of user %d for %s: %w", u.ID, audience, err)
	}
	if i.Reuse > 0 {
		i.remember(key, issuedToken{raw: token, kid: signing.ID, renewAfter: now.Add(i.TTL / 2)}, now)
	}
	return token, nil
}

// remember keeps t under key, making room when Reuse tokens are kept: the
// ones due for renewal go first, then arbitrary ones (map order), so the
// memory stays bounded whatever the number of users.
func (i *Issuer) remember(key string, t issuedToken, now time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.issued == nil {
		i.issued = make(map[string]issuedToken, i.Reuse)
	}
	if _, ok := i.issued[key]; !ok && len(i.issued) >= i.Reuse {
		for k, old := range i.issued {
			if !now.Before(old.renewAfter) {
				delete(i.issued, k)
			}
		}
		for k := range i.issued {
			if len(i.issued) < i.Reuse {
				break
			}
			delete(i.issued, k)
		}
	}
	i.issued[key] = t
}

// Header sets u's X-User-* headers and the token that vouches for them to audience.
func (i *Issuer) Header(h http.Header, u User, audience string) error {
	token, err := i.Token(u, audience)
	if err != nil {
		return err
	}
	u.Header(h)
	h.Set(HeaderToken, token)
	return nil
}

// Config is a service's side of the identity tokens (KSHOP_<SERVICE>_IDENTITY_*).
type Config struct {
	// KeysFile is the gateway's public key set (a JWKS document, e.g. the
	// ConfigMap the controller keeps beside the gateway's Secret), re-read as
	// it changes.
	KeysFile string `envconfig:"KEYS_FILE" desc:"File of the gateway's public identity keys (a JWKS document; the chart mounts the controller's ConfigMap), re-read every 10s. Required, except in the all-in-one binary, which shares a key made at start."`
	// Keys, when set, is used instead of KeysFile: the all-in-one binary and
	// tests hand the key set over in memory.
	Keys   tokens.KeySource `ignored:"true"`
	Leeway time.Duration    `envconfig:"LEEWAY" default:"5s" desc:"Clock skew tolerated when checking an identity token."`
	// Cache is how many verified identity tokens are remembered (the gateway
	// reuses a token for half its TTL), so a client's later requests skip the
	// signature check; a remembered token is refused as soon as it expires or
	// its key leaves the key set. 0: verify every request in full.
	Cache int `envconfig:"CACHE" default:"4096" desc:"Verified identity tokens remembered until they expire or their key is withdrawn; 0: verify every request in full."`
}

// KeysReload is how often a key file is looked at again. A rotated key is
// published long before it signs (the controller's propagation delay), so
// this only needs to be well below that.
const KeysReload = 10 * time.Second

// Source returns the configured key set: Keys, or KeysFile loaded. prefix
// names the settings in errors (KSHOP_PRODUCT_IDENTITY).
func (c Config) Source(prefix string, logger *slog.Logger) (tokens.KeySource, error) {
	return keySource(c.Keys, c.KeysFile, prefix, logger)
}

func keySource(keys tokens.KeySource, file, prefix string, logger *slog.Logger) (tokens.KeySource, error) {
	if keys != nil {
		return keys, nil
	}
	if file == "" {
		return nil, fmt.Errorf("%s_KEYS_FILE is required: the gateway's identity keys (a JWKS file), without which no caller can be trusted", prefix)
	}
	f, err := tokens.LoadKeyFile(file, KeysReload, logger)
	if err != nil {
		return nil, fmt.Errorf("%s_KEYS_FILE: %w", prefix, err)
	}
	return f, nil
}

// IssuerConfig is the gateway's side (KSHOP_GATEWAY_IDENTITY_*).
type IssuerConfig struct {
	// KeysFile is the gateway's private key set (a JWKS document with private
	// parts, e.g. the Secret the controller rotates), re-read as it changes.
	KeysFile string `envconfig:"KEYS_FILE" desc:"File of the gateway's private identity keys (a JWKS document; the chart mounts the controller's Secret), re-read every 10s. Required, except in the all-in-one binary, which makes a key at start."`
	// Keys, when set, is used instead of KeysFile.
	Keys  tokens.KeySource `ignored:"true"`
	TTL   time.Duration    `envconfig:"TTL" default:"1m" desc:"Lifetime of a signed identity token."`
	Reuse int              `envconfig:"REUSE" default:"4096" desc:"Signed identity tokens kept, one per identity and upstream, handed out again for half their lifetime while their key signs; 0: sign every request."`
}

// NewIssuer returns the issuer the configuration describes.
func (c IssuerConfig) NewIssuer(prefix string, logger *slog.Logger) (*Issuer, error) {
	if c.TTL <= 0 {
		return nil, fmt.Errorf("%s_TTL=%v must be positive", prefix, c.TTL)
	}
	keys, err := keySource(c.Keys, c.KeysFile, prefix, logger)
	if err != nil {
		return nil, err
	}
	if _, err := keys.KeySet().SigningKey(time.Now()); err != nil {
		return nil, fmt.Errorf("%s_KEYS_FILE: %w (it must hold the private keys)", prefix, err)
	}
	return &Issuer{Keys: keys, TTL: c.TTL, Reuse: c.Reuse}, nil
}

// GenerateKeys makes a key set of one Ed25519 key that signs at once, for a
// process that runs the gateway and the services together (make run).
func GenerateKeys() (tokens.KeySet, error) {
	now := time.Now()
	k, err := tokens.GenerateKey(tokens.EdDSA, now, now)
	if err != nil {
		return tokens.KeySet{}, err
	}
	return tokens.KeySet{Keys: []tokens.Key{k}}, nil
}

// Verifier checks identities on a service: the audience is the service's name.
type Verifier struct {
	tokens *tokens.Verifier
	logger *slog.Logger
}

// NewVerifier returns the verifier for audience (the service's name, as the
// gateway addresses it).
func NewVerifier(cfg Config, audience, prefix string, logger *slog.Logger) (*Verifier, error) {
	keys, err := cfg.Source(prefix, logger)
	if err != nil {
		return nil, err
	}
	return &Verifier{logger: logger, tokens: &tokens.Verifier{Keys: tokens.KeySetLookup{Source: keys},
		Issuer: TokenIssuer, Audience: audience, Leeway: cfg.Leeway, Cache: tokens.NewVerifiedCache(cfg.Cache)}}, nil
}

// errMismatch means the headers say something the token does not.
var errMismatch = errors.New("the X-User-* headers differ from the identity token")

// verify returns the identity the request proves; ok is false when it claims
// none at all.
func (v *Verifier) verify(ctx context.Context, r *http.Request) (u User, ok bool, err error) {
	claimed := false
	for _, h := range Headers {
		if len(r.Header.Values(h)) > 0 {
			claimed = true
		}
	}
	if !claimed {
		return User{}, false, nil
	}
	raw := r.Header.Values(HeaderToken)
	if len(raw) != 1 || raw[0] == "" {
		return User{}, true, errors.New("identity headers without exactly one identity token")
	}
	claims, err := v.tokens.Verify(ctx, raw[0])
	if err != nil {
		return User{}, true, err
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 {
		return User{}, true, fmt.Errorf("identity token subject %q is not a user id", claims.Subject)
	}
	u = User{ID: id, Email: claims.Email, Roles: claims.Roles}
	// The readable headers are optional, but when present they must say what
	// the token says: nothing downstream may read a different identity.
	for _, check := range []struct{ header, want string }{
		{HeaderUserID, claims.Subject}, {HeaderEmail, claims.Email}, {HeaderRoles, strings.Join(claims.Roles, ",")},
	} {
		if got := r.Header.Values(check.header); len(got) > 1 || (len(got) == 1 && got[0] != check.want) {
			return User{}, true, fmt.Errorf("%w (%s)", errMismatch, check.header)
		}
	}
	return u, true, nil
}

const contextKey = "kshop.identity"

// Authenticate runs on every route of a service: a request that claims an
// identity (any X-User-* or identity-token header) is refused 401 unless the
// gateway's token proves it; a proven identity is kept for Require and
// FromContext. Requests that claim none pass as anonymous.
func (v *Verifier) Authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		u, claimed, err := v.verify(c.Request.Context(), c.Request)
		if err != nil {
			v.logger.WarnContext(c.Request.Context(), "identity refused", "error", err, "remote", c.Request.RemoteAddr)
			httpx.Fail(c, http.StatusUnauthorized, httpx.MsgUnauthorized)
			c.Abort()
			return
		}
		if claimed {
			c.Set(contextKey, u)
		}
		c.Next()
	}
}

// Require lets a request through only with an identity Authenticate proved
// (else 401 unauthorized) and, when roles are given, only if the user holds
// one of them (else 403 forbidden). Without Authenticate before it, nobody
// passes. Handlers read the user with FromContext.
func Require(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		v, ok := c.Get(contextKey)
		u, isUser := v.(User)
		if !ok || !isUser {
			httpx.Fail(c, http.StatusUnauthorized, httpx.MsgUnauthorized)
			c.Abort()
			return
		}
		if len(roles) > 0 && !slices.ContainsFunc(roles, u.HasRole) {
			httpx.Fail(c, http.StatusForbidden, httpx.MsgForbidden)
			c.Abort()
			return
		}
		c.Next()
	}
}

// FromContext returns the user Authenticate proved.
func FromContext(c *gin.Context) User {
	u, _ := c.Get(contextKey)
	user, _ := u.(User)
	return user
}
