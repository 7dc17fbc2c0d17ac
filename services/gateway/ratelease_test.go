package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/testenv"
)

func newTestLimiter(t *testing.T) (*leasedLimiter, *atomic.Int64) {
	t.Helper()
	client := redisx.NewClient(redisx.Config{Addrs: []string{testenv.RedisAddr(t)}})
	t.Cleanup(func() { _ = client.Close() })
	var roundTrips atomic.Int64
	return newLeasedLimiter(client, func(string) { roundTrips.Add(1) }), &roundTrips
}

// Many requests of one client arriving at once share one round trip at a
// time: the first leases one token, and each lease used up before it expires
// doubles the next (1, 2, 4, … up to the cap), so 64 requests take at most 7
// round trips (1+2+4+8+16+32+50 ≥ 64), where a round trip per request would
// take 64.
func TestOneRefillPerKeyAtATime(t *testing.T) {
	limiter, roundTrips := newTestLimiter(t)
	limit := redis_rate.PerSecond(1000) // a lease cap of 50
	key := "products:ip:test-" + testenv.RandomSuffix()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := limiter.allow(context.Background(), "products", key, limit)
			if err != nil {
				t.Error(err)
				return
			}
			if d.allowed {
				admitted.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if admitted.Load() != 64 {
		t.Fatalf("%d of 64 admitted under a limit of 1000/s", admitted.Load())
	}
	if n := roundTrips.Load(); n > 7 {
		t.Fatalf("%d round trips to Redis for 64 requests of one client; want at most 7", n)
	}
}

// Low limits lease one token at a time: the same answers, request for
// request, as a check in Redis per request.
func TestLowLimitsLeaseOneTokenAtATime(t *testing.T) {
	for limit, want := range map[redis_rate.Limit]int{
		redis_rate.PerMinute(20): 1, redis_rate.PerSecond(20): 1, redis_rate.PerSecond(100): 5,
		redis_rate.PerSecond(1000): 50, redis_rate.PerSecond(1_000_000): 64,
	} {
		if got := leaseCap(limit); got != want {
			t.Errorf("lease cap of %v: %d, want %d", limit, got, want)
		}
	}
	limiter, roundTrips := newTestLimiter(t)
	key := "auth:ip:test-" + testenv.RandomSuffix()
	for i := range 25 {
		d, err := limiter.allow(context.Background(), "auth", key, redis_rate.PerMinute(20))
		if err != nil {
			t.Fatal(err)
		}
		if d.allowed != (i < 20) {
			t.Fatalf("request %d: allowed %v", i+1, d.allowed)
		}
		if d.allowed && d.remaining != 19-i {
			t.Fatalf("request %d: remaining %d, want %d", i+1, d.remaining, 19-i)
		}
		if !d.allowed && (d.retryAfter <= 0 || d.remaining != 0) {
			t.Fatalf("request %d refused with retry after %v, remaining %d", i+1, d.retryAfter, d.remaining)
		}
	}
	// 20 leases of one token, then one refusal remembered until Redis has a
	// token again (3 s at 20 a minute): the four refusals after it are local.
	if n := roundTrips.Load(); n != 21 {
		t.Fatalf("%d round trips for 25 requests, want 21", n)
	}
}

// The map of leases is bounded: beyond its size new clients are checked in
// Redis request by request, and expired leases are swept to make room.
func TestLeaseMapIsBoundedAndSwept(t *testing.T) {
	limiter, _ := newTestLimiter(t)
	limiter.maxKeys = 8
	limit := redis_rate.PerSecond(1000)
	prefix := "products:ip:test-" + testenv.RandomSuffix() + "-"
	for i := range 20 {
		d, err := limiter.allow(context.Background(), "products", prefix+string(rune('a'+i)), limit)
		if err != nil || !d.allowed {
			t.Fatalf("client %d: %+v %v", i, d, err)
		}
	}
	if n := limiter.size(); n != 8 {
		t.Fatalf("%d leases held, want the bound 8", n)
	}
	time.Sleep(leaseLifetime + 50*time.Millisecond)
	if _, err := limiter.allow(context.Background(), "products", prefix+"new", limit); err != nil {
		t.Fatal(err)
	}
	if n := limiter.size(); n != 1 {
		t.Fatalf("%d leases held after the others expired, want 1", n)
	}
}

// Leases and go-redis/redis_rate (the gateway before leases) spend one
// bucket: during a rollout old and new replicas share the limit.
func TestLeasesShareTheBucketOfRedisRate(t *testing.T) {
	limiter, _ := newTestLimiter(t)
	client := redisx.NewClient(redisx.Config{Addrs: []string{testenv.RedisAddr(t)}})
	t.Cleanup(func() { _ = client.Close() })
	old := redis_rate.NewLimiter(client)
	limit := redis_rate.PerMinute(10)
	key := "orders:user:test-" + testenv.RandomSuffix()
	ctx := context.Background()
	for range 3 {
		if res, err := old.Allow(ctx, rateLimitPrefix+key, limit); err != nil || res.Allowed != 1 {
			t.Fatalf("redis_rate: %+v %v", res, err)
		}
	}
	got, err := limiter.take(ctx, key, limit, 5)
	if err != nil || got.granted != 5 || got.remaining != 2 {
		t.Fatalf("lease after 3 of redis_rate's: %+v %v, want 5 granted and 2 remaining", got, err)
	}
	if got, err = limiter.take(ctx, key, limit, 5); err != nil || got.granted != 2 {
		t.Fatalf("second lease: %+v %v, want the 2 left", got, err)
	}
	res, err := old.Allow(ctx, rateLimitPrefix+key, limit)
	if err != nil || res.Allowed != 0 || res.RetryAfter <= 0 {
		t.Fatalf("redis_rate after the leases: %+v %v, want a refusal", res, err)
	}
	if got, err = limiter.take(ctx, key, limit, 5); err != nil || got.granted != 0 || got.retryAfter <= 0 || got.retryAfter > 6*time.Second {
		t.Fatalf("lease of an empty bucket: %+v %v, want a refusal with a retry within 6 s", got, err)
	}
}
