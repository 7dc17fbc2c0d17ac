package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// The rate limit's tokens are leased: a replica takes several tokens of a
// client's bucket from Redis at once (leaseScript) and admits that client's
// next requests from them without a round trip, until they are used up or
// leaseLifetime has passed (what is left is then dropped, never returned).
// Every admitted request spent a token that Redis granted, so all replicas
// together never admit more than the shared limit; what a lease costs is that
// a client refused on one replica may have tokens waiting for it on another
// (docs/gateway.md, Rate limits).
const (
	// leaseLifetime bounds how long leased tokens wait on a replica the client
	// no longer calls: long enough that a busy client's lease is used up before
	// it ends, short enough that stranded tokens return to the bucket's budget
	// within a second.
	leaseLifetime = time.Second
	// leaseShareOfBurst is the largest lease as a share of the burst (1/20):
	// low limits (20 a minute) lease one token at a time, exactly as without
	// leases; 100/s leases up to 5. maxLease caps it for very high limits,
	// whose round trips are already saved 64-fold.
	leaseShareOfBurst = 20
	maxLease          = 64
	// maxLeasedClients bounds the map of leases: beyond it, after expired
	// entries are swept, a new client is checked in Redis request by request.
	maxLeasedClients = 1 << 16
	// redisTimeout bounds one round trip; beyond it the request is let
	// through or refused as RATE_LIMIT_FAIL_CLOSED says.
	redisTimeout = 250 * time.Millisecond
)

// leaseCap is the most tokens one replica leases at once for limit.
func leaseCap(limit redis_rate.Limit) int {
	return min(maxLease, max(1, limit.Burst/leaseShareOfBurst))
}

// leasedLimiter holds this replica's leases, one per limited key.
type leasedLimiter struct {
	redis redis.Scripter
	// leased counts the round trips to Redis (leases and refusals) by key
	// prefix (route group); nil counts nothing.
	leased func(group string)
	// maxKeys bounds the map (maxLeasedClients; smaller in tests).
	maxKeys int

	mu        sync.Mutex
	leases    map[string]*lease
	lastSweep time.Time
}

// lease is one key's tokens on this replica and what Redis said when they
// were taken.
type lease struct {
	mu sync.Mutex
	// tokens are left to admit until expires.
	tokens, granted int
	expires         time.Time
	// want is the size of the next lease: doubled (up to the cap) when a
	// lease is used up before it expires, down to what was used when it
	// expires, so a replica that sees a client rarely leases one token and
	// drops nothing.
	want int
	// redisRemaining and resetAt are Redis' answer at the last lease.
	redisRemaining int
	resetAt        time.Time
	// refusedUntil: Redis has no token for this key before then (its
	// RetryAfter), so the answer is 429 without asking again.
	refusedUntil time.Time
	// refill is the round trip in flight, which everyone else waits for.
	refill *refill
	// swept: the entry left the map; whoever still holds it looks again.
	swept bool
}

type refill struct {
	done chan struct{}
	err  error
}

// rateDecision is the answer to one request and the figures of its headers.
type rateDecision struct {
	allowed    bool
	remaining  int
	resetAfter time.Duration
	retryAfter time.Duration
}

func newLeasedLimiter(client redis.Scripter, leased func(group string)) *leasedLimiter {
	return &leasedLimiter{redis: client, leased: leased, maxKeys: maxLeasedClients, leases: map[string]*lease{}}
}

// allow decides one request of group's key under limit: from the local lease
// when it has a token, else after one round trip to Redis shared by every
// request of the key that arrives meanwhile.
func (l *leasedLimiter) allow(ctx context.Context, group, key string, limit redis_rate.Limit) (rateDecision, error) {
	for {
		entry := l.entry(key)
		if entry == nil {
			return l.exact(ctx, group, key, limit)
		}
		decision, again, err := l.allowFrom(ctx, entry, group, key, limit)
		if !again {
			return decision, err
		}
	}
}

// allowFrom decides from entry; again means the entry was swept meanwhile.
func (l *leasedLimiter) allowFrom(ctx context.Context, e *lease, group, key string, limit redis_rate.Limit) (_ rateDecision, again bool, _ error) {
	e.mu.Lock()
	for {
		if e.swept {
			e.mu.Unlock()
			return rateDecision{}, true, nil
		}
		now := time.Now()
		if e.tokens > 0 && now.Before(e.expires) {
			e.tokens--
			d := e.admitted(now)
			e.mu.Unlock()
			return d, false, nil
		}
		if now.Before(e.refusedUntil) {
			d := e.refused(now)
			e.mu.Unlock()
			return d, false, nil
		}
		if r := e.refill; r != nil {
			e.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return rateDecision{}, false, ctx.Err()
			}
			if r.err != nil {
				return rateDecision{}, false, r.err
			}
			e.mu.Lock()
			continue
		}
		e.nextSize(now, leaseCap(limit))
		r := &refill{done: make(chan struct{})}
		e.refill = r
		want := e.want
		e.mu.Unlock()

		// The round trip belongs to every request waiting for it, so one
		// client hanging up does not fail the others: only the timeout ends it.
		res, err := l.roundTrip(context.WithoutCancel(ctx), group, key, limit, want)

		e.mu.Lock()
		e.refill, r.err = nil, err
		close(r.done)
		if err != nil {
			e.mu.Unlock()
			return rateDecision{}, false, err
		}
		now = time.Now()
		e.redisRemaining, e.resetAt = res.remaining, now.Add(res.resetAfter)
		if res.granted == 0 {
			e.tokens, e.granted = 0, 0
			e.refusedUntil = now.Add(res.retryAfter)
			d := e.refused(now)
			e.mu.Unlock()
			return d, false, nil
		}
		// This request takes the first token; the others wait for the next.
		e.tokens, e.granted, e.expires = res.granted-1, res.granted, now.Add(leaseLifetime)
		d := e.admitted(now)
		e.mu.Unlock()
		return d, false, nil
	}
}

// nextSize sets want from how the last lease went.
func (e *lease) nextSize(now time.Time, leaseCap int) {
	switch {
	case e.granted == 0:
		e.want = max(1, e.want)
	case e.tokens == 0 && now.Before(e.expires):
		e.want = max(e.want, e.granted) * 2
	default:
		e.want = e.granted - e.tokens
	}
	e.want = min(leaseCap, max(1, e.want))
}

func (e *lease) admitted(now time.Time) rateDecision {
	return rateDecision{allowed: true, remaining: e.redisRemaining + e.tokens, resetAfter: max(0, e.resetAt.Sub(now))}
}

func (e *lease) refused(now time.Time) rateDecision {
	return rateDecision{remaining: 0, resetAfter: max(0, e.resetAt.Sub(now)), retryAfter: e.refusedUntil.Sub(now)}
}

// exact is the request-by-request check, for keys beyond maxLeasedClients.
func (l *leasedLimiter) exact(ctx context.Context, group, key string, limit redis_rate.Limit) (rateDecision, error) {
	res, err := l.roundTrip(ctx, group, key, limit, 1)
	if err != nil {
		return rateDecision{}, err
	}
	return rateDecision{allowed: res.granted > 0, remaining: res.remaining, resetAfter: res.resetAfter, retryAfter: res.retryAfter}, nil
}

// roundTrip takes up to want tokens of key's bucket in one call to Redis,
// bounded by redisTimeout, and counts the call for group.
func (l *leasedLimiter) roundTrip(ctx context.Context, group, key string, limit redis_rate.Limit, want int) (leaseResult, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	res, err := l.take(ctx, key, limit, want)
	if l.leased != nil {
		l.leased(group)
	}
	return res, err
}

// leaseScript takes up to ARGV[4] whole tokens from the GCRA bucket KEYS[1]
// (burst ARGV[1], ARGV[2] per ARGV[3] seconds) and answers {granted,
// remaining, retry after, reset after} (seconds as strings). The bucket is
// the theoretical arrival time in seconds since 2017-01-01, the key and format
// go-redis/redis_rate uses, so gateways before and after leases share one
// bucket during a rollout. Unlike redis_rate's AllowAtMost it grants whole
// tokens only and spends exactly what it grants (AllowAtMost spends the
// fraction of a token it cannot grant; at one round trip per millisecond
// against a drained bucket that lost a tenth of the limit), and it stores the
// time to the microsecond (Lua's tostring keeps 14 digits: 0.1 ms, a hundred
// tokens of a limit of a million a second).
var leaseScript = redis.NewScript(`
local burst, rate, period, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local interval = period / rate
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + t[2] / 1000000
local tat = tonumber(redis.call("GET", KEYS[1])) or now
if tat < now then tat = now end
local available = burst - (tat - now) / interval
local granted = math.min(want, math.floor(available))
if granted < 1 then
  return {0, 0, tostring((1 - available) * interval), tostring(tat - now)}
end
tat = tat + granted * interval
redis.call("SET", KEYS[1], string.format("%.6f", tat), "EX", math.ceil(tat - now))
return {granted, math.floor(available - granted), "-1", tostring(tat - now)}
`)

// leaseResult is Redis' answer to leaseScript.
type leaseResult struct {
	granted, remaining     int
	retryAfter, resetAfter time.Duration
}

// take leases up to want tokens of key's bucket.
func (l *leasedLimiter) take(ctx context.Context, key string, limit redis_rate.Limit, want int) (leaseResult, error) {
	v, err := leaseScript.Run(ctx, l.redis, []string{redisRatePrefix + rateLimitPrefix + key}, limit.Burst, limit.Rate, limit.Period.Seconds(), want).Slice()
	if err != nil {
		return leaseResult{}, err
	}
	if len(v) != 4 {
		return leaseResult{}, fmt.Errorf("rate limit lease: unexpected answer %v", v)
	}
	granted, ok1 := v[0].(int64)
	remaining, ok2 := v[1].(int64)
	retryAfter, err1 := seconds(v[2])
	resetAfter, err2 := seconds(v[3])
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return leaseResult{}, fmt.Errorf("rate limit lease: unexpected answer %v", v)
	}
	return leaseResult{granted: int(granted), remaining: int(remaining), retryAfter: retryAfter, resetAfter: resetAfter}, nil
}

// redisRatePrefix is what go-redis/redis_rate puts before its keys.
const redisRatePrefix = "rate:"

func seconds(v any) (time.Duration, error) {
	text, _ := v.(string)
	f, err := strconv.ParseFloat(text, 64)
	return time.Duration(f * float64(time.Second)), err
}

// entry is key's lease, new if need be; nil when the map is full of live
// leases.
func (l *leasedLimiter) entry(key string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.leases[key]; ok {
		return e
	}
	now := time.Now()
	if len(l.leases) >= l.maxKeys || now.Sub(l.lastSweep) >= leaseLifetime {
		l.sweep(now)
	}
	if len(l.leases) >= l.maxKeys {
		return nil
	}
	e := &lease{}
	l.leases[key] = e
	return e
}

// sweep removes the leases with nothing left to remember: expired, no refusal
// pending, no round trip in flight, not just created for a request about to
// use it (want is still 0). Called with l.mu held, at most once per lease
// lifetime unless the map is full.
func (l *leasedLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for key, e := range l.leases {
		e.mu.Lock()
		if e.want > 0 && e.refill == nil && !now.Before(e.expires) && !now.Before(e.refusedUntil) {
			e.swept = true
			delete(l.leases, key)
		}
		e.mu.Unlock()
	}
}

// size is how many keys hold a lease entry.
func (l *leasedLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.leases)
}
