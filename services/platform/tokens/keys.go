// Package tokens signs and verifies kshop's access tokens: JWTs signed with an
// asymmetric key (EdDSA or ES256) named by a kid header, checked against a key set
// that may hold several keys at once so keys can be rotated without a restart and
// without invalidating tokens that are still valid.
package tokens

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The asymmetric algorithms kshop signs with. Anything else, "none" and HMAC
// included, is refused when verifying.
const (
	EdDSA = "EdDSA"
	ES256 = "ES256"
)

// Key is one signing key. Private is nil in a public key set.
type Key struct {
	ID        string
	Algorithm string
	Public    crypto.PublicKey
	Private   crypto.Signer
	// CreatedAt tells key rotation how old the key is; zero when unknown.
	CreatedAt time.Time
	// ActiveFrom is when the key starts signing. A new key is published in the
	// JWKS first and only signs once verifiers have had time to fetch it; zero
	// means active from the start.
	ActiveFrom time.Time
}

// KeySet is a JWKS: every key a token may be signed with.
type KeySet struct {
	Keys []Key
}

// ErrUnknownKey means a token names a kid the key set does not hold.
var ErrUnknownKey = errors.New("unknown signing key")

// Lookup returns the key with the given kid.
func (s KeySet) Lookup(kid string) (Key, error) {
	for _, k := range s.Keys {
		if k.ID == kid {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}

// SigningKey returns the key that signs at now: of the private keys already
// active, the one activated last.
func (s KeySet) SigningKey(now time.Time) (Key, error) {
	var best Key
	found := false
	for _, k := range s.Keys {
		if k.Private == nil || k.ActiveFrom.After(now) {
			continue
		}
		if !found || !k.ActiveFrom.Before(best.ActiveFrom) {
			best, found = k, true
		}
	}
	if !found {
		return Key{}, errors.New("no private key in the key set is active yet")
	}
	return best, nil
}

// Public returns the set without private parts, as served on /.well-known/jwks.json.
func (s KeySet) Public() KeySet {
	out := KeySet{Keys: make([]Key, len(s.Keys))}
	for i, k := range s.Keys {
		k.Private = nil
		out.Keys[i] = k
	}
	return out
}

// GenerateKey makes a new key for alg. Its kid is the key's RFC 7638 thumbprint,
// so the same key always has the same id.
func GenerateKey(alg string, createdAt, activeFrom time.Time) (Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return Key{}, fmt.Errorf("algorithm %q is not one of %s, %s", alg, EdDSA, ES256)
	}
	if err != nil {
		return Key{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	k := Key{Algorithm: alg, Public: priv.Public(), Private: priv, CreatedAt: createdAt.UTC(), ActiveFrom: activeFrom.UTC()}
	j, err := toJWK(k, false)
	if err != nil {
		return Key{}, err
	}
	k.ID = j.thumbprint()
	return k, nil
}

// jwk is one key in JSON Web Key form (RFC 7517, 8037). created_at and
// active_from are kshop's own members for rotation; verifiers ignore them.
type jwk struct {
	Kty        string `json:"kty"`
	Crv        string `json:"crv"`
	X          string `json:"x"`
	Y          string `json:"y,omitempty"`
	D          string `json:"d,omitempty"`
	Kid        string `json:"kid"`
	Alg        string `json:"alg"`
	Use        string `json:"use"`
	CreatedAt  string `json:"created_at,omitempty"`
	ActiveFrom string `json:"active_from,omitempty"`
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

var b64 = base64.RawURLEncoding

// thumbprint is the RFC 7638 SHA-256 thumbprint of the public key.
func (j jwk) thumbprint() string {
	var canonical []byte
	if j.Kty == "OKP" {
		canonical = fmt.Appendf(nil, `{"crv":%q,"kty":%q,"x":%q}`, j.Crv, j.Kty, j.X)
	} else {
		canonical = fmt.Appendf(nil, `{"crv":%q,"kty":%q,"x":%q,"y":%q}`, j.Crv, j.Kty, j.X, j.Y)
	}
	sum := sha256.Sum256(canonical)
	return b64.EncodeToString(sum[:])
}

// MarshalJWKS encodes the set as a JWKS document; private parts only when asked.
func (s KeySet) MarshalJWKS(withPrivate bool) ([]byte, error) {
	doc := jwks{Keys: make([]jwk, 0, len(s.Keys))}
	for _, k := range s.Keys {
		j, err := toJWK(k, withPrivate)
		if err != nil {
			return nil, err
		}
		doc.Keys = append(doc.Keys, j)
	}
	return json.MarshalIndent(doc, "", "  ")
}

func toJWK(k Key, withPrivate bool) (jwk, error) {
	j := jwk{Kid: k.ID, Alg: k.Algorithm, Use: "sig"}
	if !k.CreatedAt.IsZero() {
		j.CreatedAt = k.CreatedAt.UTC().Format(time.RFC3339)
	}
	if !k.ActiveFrom.IsZero() {
		j.ActiveFrom = k.ActiveFrom.UTC().Format(time.RFC3339)
	}
	switch pub := k.Public.(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64.EncodeToString(pub)
		if withPrivate && k.Private != nil {
			priv, ok := k.Private.(ed25519.PrivateKey)
			if !ok {
				return jwk{}, fmt.Errorf("key %q: private key is %T, want ed25519.PrivateKey", k.ID, k.Private)
			}
			j.D = b64.EncodeToString(priv.Seed())
		}
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return jwk{}, fmt.Errorf("key %q: only P-256 is supported", k.ID)
		}
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return jwk{}, fmt.Errorf("key %q: %w", k.ID, err)
		}
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64.EncodeToString(raw[1:33]), b64.EncodeToString(raw[33:])
		if withPrivate && k.Private != nil {
			priv, ok := k.Private.(*ecdsa.PrivateKey)
			if !ok {
				return jwk{}, fmt.Errorf("key %q: private key is %T, want *ecdsa.PrivateKey", k.ID, k.Private)
			}
			d, err := priv.Bytes()
			if err != nil {
				return jwk{}, fmt.Errorf("key %q: %w", k.ID, err)
			}
			j.D = b64.EncodeToString(d)
		}
	default:
		return jwk{}, fmt.Errorf("key %q: unsupported public key type %T", k.ID, k.Public)
	}
	return j, nil
}

// ParseJWKS reads a JWKS document. Every key must carry a unique kid and one of
// the supported algorithms; a private part must match its public part.
func ParseJWKS(data []byte) (KeySet, error) {
	var doc jwks
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return KeySet{}, fmt.Errorf("decode JWKS: %w", err)
	}
	if len(doc.Keys) == 0 {
		return KeySet{}, errors.New("JWKS holds no keys")
	}
	set := KeySet{Keys: make([]Key, 0, len(doc.Keys))}
	seen := map[string]bool{}
	for i, j := range doc.Keys {
		k, err := fromJWK(j)
		if err != nil {
			return KeySet{}, fmt.Errorf("JWKS key %d (kid %q): %w", i, j.Kid, err)
		}
		if seen[k.ID] {
			return KeySet{}, fmt.Errorf("JWKS key %d: kid %q appears twice", i, k.ID)
		}
		seen[k.ID] = true
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

func fromJWK(j jwk) (Key, error) {
	if j.Kid == "" {
		return Key{}, errors.New("kid is missing")
	}
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("use %q is not \"sig\"", j.Use)
	}
	k := Key{ID: j.Kid, Algorithm: j.Alg}
	for _, t := range []struct {
		raw string
		dst *time.Time
		key string
	}{{j.CreatedAt, &k.CreatedAt, "created_at"}, {j.ActiveFrom, &k.ActiveFrom, "active_from"}} {
		if t.raw == "" {
			continue
		}
		parsed, err := time.Parse(time.RFC3339, t.raw)
		if err != nil {
			return Key{}, fmt.Errorf("%s: %w", t.key, err)
		}
		*t.dst = parsed
	}
	x, err := b64.DecodeString(j.X)
	if err != nil {
		return Key{}, fmt.Errorf("x: %w", err)
	}
	var d []byte
	if j.D != "" {
		if d, err = b64.DecodeString(j.D); err != nil {
			return Key{}, fmt.Errorf("d: %w", err)
		}
	}
	switch {
	case j.Alg == EdDSA && j.Kty == "OKP" && j.Crv == "Ed25519":
		if len(x) != ed25519.PublicKeySize {
			return Key{}, fmt.Errorf("x is %d bytes, an Ed25519 public key is %d", len(x), ed25519.PublicKeySize)
		}
		k.Public = ed25519.PublicKey(x)
		if d != nil {
			if len(d) != ed25519.SeedSize {
				return Key{}, fmt.Errorf("d is %d bytes, an Ed25519 seed is %d", len(d), ed25519.SeedSize)
			}
			priv := ed25519.NewKeyFromSeed(d)
			if !priv.Public().(ed25519.PublicKey).Equal(k.Public) {
				return Key{}, errors.New("the private key does not match x")
			}
			k.Private = priv
		}
	case j.Alg == ES256 && j.Kty == "EC" && j.Crv == "P-256":
		y, err := b64.DecodeString(j.Y)
		if err != nil {
			return Key{}, fmt.Errorf("y: %w", err)
		}
		if len(x) != 32 || len(y) != 32 {
			return Key{}, errors.New("x and y of a P-256 key are 32 bytes each")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return Key{}, fmt.Errorf("public key: %w", err)
		}
		k.Public = pub
		if d != nil {
			priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
			if err != nil {
				return Key{}, fmt.Errorf("private key: %w", err)
			}
			if !priv.PublicKey.Equal(pub) {
				return Key{}, errors.New("the private key does not match x and y")
			}
			k.Private = priv
		}
	default:
		return Key{}, fmt.Errorf("alg %q with kty %q and crv %q is not supported (use EdDSA/OKP/Ed25519 or ES256/EC/P-256)", j.Alg, j.Kty, j.Crv)
	}
	return k, nil
}
