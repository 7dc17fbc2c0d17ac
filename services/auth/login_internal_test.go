package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

// queryCounter counts the statements a pool sends.
type queryCounter struct{ n *atomic.Int64 }

func (q queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestLoginDoesTheSameWorkForEveryAddress: whether the address has no
// account, an account and a wrong password, an unverified account or a
// verified one, a login is one query (and one bcrypt comparison, the dummy
// hash's for an unknown address: BenchmarkLogin shows the times). Before, an
// unknown or unverified address cost a second query, on the primary, which a
// stopwatch could tell apart.
func TestLoginDoesTheSameWorkForEveryAddress(t *testing.T) {
	ctx := context.Background()
	poolConfig, err := pgxpool.ParseConfig(testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	var queries atomic.Int64
	poolConfig.ConnConfig.Tracer = queryCounter{&queries}
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool, Migrations, outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	key, err := tokens.GenerateKey(tokens.EdDSA, time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	signer := &tokens.Signer{Keys: tokens.Static(tokens.KeySet{Keys: []tokens.Key{key}}), Issuer: "kshop-auth", Audience: "kshop", TTL: time.Hour}
	svc, err := newService(&pg.DB{Primary: pool, Replica: pool}, rdb, signer, Config{BcryptCost: bcrypt.MinCost,
		// Fixed addresses on a Redis shared by every run: no limit in the way.
		LoginFailuresPerAddress: 1_000_000, LoginFailuresPerClient: 1_000_000}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("password123"), bcrypt.MinCost)
	if _, err := pool.Exec(ctx, `INSERT INTO users (email, password_hash, is_verified) VALUES ('known@example.com', $1, true), ('pending@example.com', $1, false)`, hash); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, email, password string
		want                  error
	}{
		{"unknown address", "nobody@example.com", "password123", ErrBadCredentials},
		{"wrong password", "known@example.com", "password124", ErrBadCredentials},
		{"not verified", "pending@example.com", "password123", ErrNotVerified},
		{"success", "known@example.com", "password123", nil},
	} {
		queries.Store(0)
		_, err := svc.Login(ctx, c.email, c.password, "")
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if n := queries.Load(); n != 1 {
			t.Errorf("%s: %d queries, want 1", c.name, n)
		}
	}
}
