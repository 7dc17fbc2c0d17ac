package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/testenv"
)

// eachRedis runs test against the standalone server and the 6-node cluster.
func eachRedis(t *testing.T, test func(t *testing.T, c redis.UniversalClient, prefix string)) {
	for name, cfg := range map[string]redisx.Config{
		"standalone": {Addrs: []string{testenv.RedisAddr(t)}},
		"cluster":    {Addrs: testenv.RedisClusterAddrs(t), Cluster: true},
	} {
		t.Run(name, func(t *testing.T) {
			c := redisx.NewClient(cfg)
			t.Cleanup(func() { _ = c.Close() })
			if err := redisx.Ready(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			test(t, c, "test:"+testenv.RandomSuffix()+":")
		})
	}
}

func TestLockIsExclusive(t *testing.T) {
	eachRedis(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		ctx := context.Background()
		lock, err := redisx.Acquire(ctx, c, prefix+"order", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := redisx.Acquire(ctx, c, prefix+"order", 10*time.Second); !errors.Is(err, redisx.ErrLocked) {
			t.Fatalf("second Acquire: err = %v, want ErrLocked", err)
		}
		if ok, err := lock.Release(ctx); !ok || err != nil {
			t.Fatalf("Release = %v, %v", ok, err)
		}
		if _, err := redisx.Acquire(ctx, c, prefix+"order", 10*time.Second); err != nil {
			t.Fatalf("Acquire after release: %v", err)
		}
	})
}

func TestNonHolderCannotRelease(t *testing.T) {
	eachRedis(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		ctx := context.Background()
		lock, err := redisx.Acquire(ctx, c, prefix+"order", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Someone holding another lock, pointed at this key: its token is not
		// the holder's.
		intruder, err := redisx.Acquire(ctx, c, prefix+"elsewhere", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		intruder.Key = prefix + "order"
		if ok, err := intruder.Release(ctx); ok || err != nil {
			t.Fatalf("intruder Release = %v, %v; want false", ok, err)
		}
		if got, _ := c.Get(ctx, prefix+"order").Result(); got != lock.Token {
			t.Fatalf("lock value %q after the intruder, want the holder's token", got)
		}
	})
}

func TestExpiredHolderCannotReleaseTheNextHoldersLock(t *testing.T) {
	eachRedis(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		ctx := context.Background()
		first, err := redisx.Acquire(ctx, c, prefix+"order", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var second *redisx.Lock
		deadline := time.Now().Add(5 * time.Second)
		for second == nil {
			second, err = redisx.Acquire(ctx, c, prefix+"order", 10*time.Second)
			if err != nil && !errors.Is(err, redisx.ErrLocked) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the lock never expired")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ok, err := first.Release(ctx); ok || err != nil {
			t.Fatalf("expired holder's Release = %v, %v; want false", ok, err)
		}
		if got, _ := c.Get(ctx, prefix+"order").Result(); got != second.Token {
			t.Fatal("the expired holder removed the new holder's lock")
		}
	})
}

func TestOneWinnerAmongRacers(t *testing.T) {
	eachRedis(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		var winners atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := redisx.Acquire(context.Background(), c, prefix+"race", 10*time.Second); err == nil {
					winners.Add(1)
				} else if !errors.Is(err, redisx.ErrLocked) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := winners.Load(); n != 1 {
			t.Fatalf("%d winners, want 1", n)
		}
	})
}

// TestClusterLocksSpreadOverMasters takes locks whose keys hash to slots owned by
// different masters: the scripts must run on whichever node owns the key.
func TestClusterLocksSpreadOverMasters(t *testing.T) {
	ctx := context.Background()
	c := redisx.NewClient(redisx.Config{Addrs: testenv.RedisClusterAddrs(t), Cluster: true})
	defer c.Close()
	cluster := c.(*redis.ClusterClient)
	prefix := "test:" + testenv.RandomSuffix() + ":"
	masters := map[string]bool{}
	for i := range 20 {
		key := fmt.Sprintf("%sorder:%d", prefix, i)
		lock, err := redisx.Acquire(ctx, c, key, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		node, err := cluster.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr] = true
		if ok, err := lock.Release(ctx); !ok || err != nil {
			t.Fatalf("Release %s = %v, %v", key, ok, err)
		}
	}
	if len(masters) < 2 {
		t.Fatalf("20 keys landed on %d master(s), want several", len(masters))
	}
}

func TestRedisDownIsNotReady(t *testing.T) {
	c := redisx.NewClient(redisx.Config{Addrs: []string{"127.0.0.1:1"}})
	defer c.Close()
	if err := redisx.Ready(context.Background(), c); err == nil {
		t.Fatal("Ready = nil without Redis")
	}
	if _, err := redisx.Acquire(context.Background(), c, "k", time.Second); err == nil || errors.Is(err, redisx.ErrLocked) {
		t.Fatalf("Acquire without Redis: err = %v, want a connection error", err)
	}
}
