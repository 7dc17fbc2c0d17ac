// Package redisx opens Redis the same way for one local node and for a Redis
// Cluster in Kubernetes, and provides a lock that only its holder can release.
package redisx

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// Config names the Redis nodes and how to reach them. Several addresses, or
// Cluster, select cluster mode. Services hold it in a field named Redis:
// KSHOP_<SERVICE>_REDIS_ADDRS and so on.
type Config struct {
	Addrs   []string `envconfig:"ADDRS" required:"true" desc:"Redis addresses, host:port (one for a single server, several seeds for a cluster)."`
	Cluster bool     `envconfig:"CLUSTER" desc:"Talk to a Redis Cluster instead of a single server."`
	// Username is an ACL user (Redis 6 and later); empty: the default user,
	// which Password alone authenticates.
	Username string `envconfig:"USERNAME" desc:"ACL user (Redis 6 and later); empty: the default user, which the password alone authenticates."`
	Password string `envconfig:"PASSWORD" desc:"Password of the user (a secret: give it from a Secret)."`
	// TLS encrypts every connection and verifies the server's certificate
	// against the system's roots, for the host name of the address dialled
	// (each node's own in a cluster).
	TLS bool `envconfig:"TLS" desc:"Encrypt connections and verify the server certificate against the system roots."`

	// rootCAs replaces the system's roots; only tests set it.
	rootCAs *x509.CertPool
}

// NewClient returns a client for one node or for a cluster; code using it does
// not care which. It connects lazily: Redis being down is an error per command.
func NewClient(cfg Config) redis.UniversalClient {
	opts := options(cfg)
	var client redis.UniversalClient
	if cfg.Cluster || len(cfg.Addrs) > 1 {
		client = redis.NewClusterClient(opts.Cluster())
	} else {
		client = redis.NewClient(opts.Simple())
	}
	// A span per command under the caller's span; the error only says the
	// hook could not be added, which never happens to a fresh client.
	_ = redisotel.InstrumentTracing(client)
	return client
}

func options(cfg Config) *redis.UniversalOptions {
	opts := &redis.UniversalOptions{
		Addrs:        cfg.Addrs,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
	}
	if cfg.TLS {
		// No ServerName: crypto/tls takes it from the address of each dial, so
		// every node of a cluster is checked under its own name.
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.rootCAs}
	}
	return opts
}

// Ready reports whether Redis answers.
func Ready(ctx context.Context, c redis.UniversalClient) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// ErrLocked means someone else holds the lock.
var ErrLocked = errors.New("lock is held by someone else")

// Lock is a held lock: a key set to a random token with an expiry. Only a Lock
// with the same token can release or extend it, so a holder whose lock expired
// cannot remove the lock of whoever took it next.
type Lock struct {
	Key    string
	Token  string
	client redis.UniversalClient
}

// Acquire takes the lock on key for ttl (SET NX PX), or returns ErrLocked.
func Acquire(ctx context.Context, c redis.UniversalClient, key string, ttl time.Duration) (*Lock, error) {
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	ok, err := c.SetNX(ctx, key, token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("acquire lock %s: %w", key, err)
	}
	if !ok {
		return nil, ErrLocked
	}
	return &Lock{Key: key, Token: token, client: c}, nil
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("lock token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// The compare-and-act scripts run atomically on the node owning the key; a single
// key per script keeps them valid on a Redis Cluster.
var (
	releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
)

// Release deletes the lock if it is still ours. It reports false when the lock had
// expired or belongs to someone else by now; their lock is left alone.
func (l *Lock) Release(ctx context.Context) (bool, error) {
	n, err := releaseScript.Run(ctx, l.client, []string{l.Key}, l.Token).Int()
	if err != nil {
		return false, fmt.Errorf("release lock %s: %w", l.Key, err)
	}
	return n == 1, nil
}
