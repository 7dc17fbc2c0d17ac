package redisx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tlstest"
)

// The password holds characters that quoting or URL building would break.
const aclPassword = `p@ss/w:rd%41 "x"`

// newACLUser creates an ACL user with aclPassword on every node at addrs (ACLs
// are per node, a cluster included) and deletes it when the test ends.
func newACLUser(t *testing.T, addrs ...string) string {
	t.Helper()
	user := "kshop-test-" + testenv.RandomSuffix()
	ctx := context.Background()
	for _, addr := range addrs {
		admin := redis.NewClient(&redis.Options{Addr: addr})
		// The user may use the keys and commands the platform uses, nothing else.
		if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+aclPassword, "resetkeys", "~test:*", "resetchannels",
			"-@all", "+@connection", "+@string", "+@keyspace", "+@scripting", "+cluster|slots", "+cluster|shards", "+info").Err(); err != nil {
			t.Fatalf("ACL SETUSER on %s: %v", addr, err)
		}
		t.Cleanup(func() {
			if err := admin.Do(context.Background(), "ACL", "DELUSER", user).Err(); err != nil {
				t.Logf("ACL DELUSER %s on %s: %v", user, addr, err)
			}
			_ = admin.Close()
		})
	}
	return user
}

func ready(cfg redisx.Config) error {
	c := redisx.NewClient(cfg)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return redisx.Ready(ctx, c)
}

func TestACLUserWorksAndAWrongPasswordIsRefused(t *testing.T) {
	for name, cfg := range map[string]redisx.Config{
		"standalone": {Addrs: []string{testenv.RedisAddr(t)}},
		"cluster":    {Addrs: testenv.RedisClusterAddrs(t), Cluster: true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Username = newACLUser(t, cfg.Addrs...)
			cfg.Password = aclPassword
			c := redisx.NewClient(cfg)
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			if err := redisx.Ready(ctx, c); err != nil {
				t.Fatal(err)
			}
			lock, err := redisx.Acquire(ctx, c, "test:"+testenv.RandomSuffix()+":acl", 10*time.Second)
			if err != nil {
				t.Fatalf("Acquire as the ACL user: %v", err)
			}
			if ok, err := lock.Release(ctx); !ok || err != nil {
				t.Fatalf("Release = %v, %v", ok, err)
			}
			// The user is the ACL user, not the default one: keys outside its
			// pattern are refused.
			if err := c.Set(ctx, "elsewhere:"+testenv.RandomSuffix(), "x", time.Minute).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Fatalf("SET outside the user's keys: err = %v, want NOPERM", err)
			}

			wrong := cfg
			wrong.Password = aclPassword + "x"
			if err := ready(wrong); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("Ready with a wrong password: err = %v, want WRONGPASS", err)
			}
		})
	}
}

// A proxy puts TLS in front of the test Redis. The certificate is checked
// against the host name of the address dialled.
func TestTLSVerifiesTheServerByTheAddressDialled(t *testing.T) {
	ca := tlstest.NewCA(t)
	target := testenv.RedisAddr(t)
	user := newACLUser(t, target)
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":"):] }
	forLocalhost := port(ca.Proxy(t, target, "localhost"))
	forOtherHost := port(ca.Proxy(t, target, "redis.example.com"))
	secured := func(addr string) redisx.Config {
		return redisx.WithRootCAs(redisx.Config{Addrs: []string{addr}, TLS: true, Username: user, Password: aclPassword}, ca.Pool)
	}

	if err := ready(secured("localhost" + forLocalhost)); err != nil {
		t.Fatalf("TLS to localhost with a certificate for localhost: %v", err)
	}
	for name, cfg := range map[string]redisx.Config{
		"certificate for another host": secured("localhost" + forOtherHost),
		"address other than the name":  secured("127.0.0.1" + forLocalhost),
		"CA not trusted":               redisx.WithRootCAs(secured("localhost"+forLocalhost), tlstest.NewCA(t).Pool),
		"system roots only":            {Addrs: []string{"localhost" + forLocalhost}, TLS: true, Username: user, Password: aclPassword},
	} {
		if err := ready(cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: Ready err = %v, want a certificate error", name, err)
		}
	}
	if err := ready(redisx.Config{Addrs: []string{"localhost" + forLocalhost}, Username: user, Password: aclPassword}); err == nil {
		t.Error("a client without TLS got an answer from the TLS port")
	}
}
