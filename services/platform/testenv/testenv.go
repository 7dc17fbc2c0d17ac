// Package testenv hands tests the addresses of the private servers that
// hack/testenv.sh starts (make test starts them for you). A test that needs a
// server it cannot find fails with instructions; it never skips silently.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const howToStart = "start the test servers with `hack/testenv.sh up && eval \"$(hack/testenv.sh env)\"` " +
	"from the repository root, or run everything with `make test`"

// lookup returns the value of an environment variable that hack/testenv.sh exports,
// failing the test when it is missing.
func lookup(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: this test needs a real server; %s", name, howToStart)
	}
	return v
}

// requireReachable fails the test when nothing listens at hostport.
func requireReachable(t testing.TB, what, hostport string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (%v); %s", what, hostport, err, howToStart)
	}
	conn.Close()
}

func hostOf(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("bad server URL %q: %v", rawURL, err)
	}
	return u.Host
}

// PostgresURL is the URL of the private PostgreSQL server's maintenance database.
// Most tests want NewDatabase instead.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := lookup(t, "KSHOP_TEST_POSTGRES_URL")
	requireReachable(t, "PostgreSQL", hostOf(t, u))
	return u
}

// NewDatabase creates an empty database for this test alone, drops it when the
// test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	name := "test_" + RandomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v; %s", err, howToStart)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// RedisAddr is host:port of the private standalone Redis.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := lookup(t, "KSHOP_TEST_REDIS_ADDR")
	requireReachable(t, "Redis", addr)
	return addr
}

// RedisClusterAddrs are the host:port of the six nodes of the private Redis Cluster.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	addrs := strings.Split(lookup(t, "KSHOP_TEST_REDIS_CLUSTER_ADDRS"), ",")
	requireReachable(t, "Redis Cluster", addrs[0])
	return addrs
}

// AMQPURL is the URL of the shared private RabbitMQ node. Tests must not stop it;
// use Restartable for that.
func AMQPURL(t testing.TB) string {
	t.Helper()
	u := lookup(t, "KSHOP_TEST_AMQP_URL")
	requireReachable(t, "RabbitMQ", hostOf(t, u))
	return u
}

var ownVHost struct {
	sync.Once
	url string
	err error
}

// OwnAMQPURL is the URL of a virtual host on the shared RabbitMQ node that belongs
// to this test process alone. Packages that use the contract's fixed exchange and
// queue names (verification, order-success, ...) use it, so packages tested side
// by side do not consume each other's messages.
func OwnAMQPURL(t testing.TB) string {
	t.Helper()
	base := AMQPURL(t)
	script := lookup(t, "KSHOP_TESTENV")
	ownVHost.Do(func() {
		name := "test-" + RandomSuffix()
		out, err := exec.Command(script, "vhost", name).CombinedOutput()
		if err != nil {
			ownVHost.err = fmt.Errorf("create RabbitMQ vhost %s: %v\n%s", name, err, out)
			return
		}
		u, err := url.Parse(base)
		if err != nil {
			ownVHost.err = err
			return
		}
		u.Path = "/" + name
		ownVHost.url = u.String()
	})
	if ownVHost.err != nil {
		t.Fatal(ownVHost.err)
	}
	return ownVHost.url
}

// NewAMQPVHost creates a virtual host on the shared RabbitMQ node for one
// test alone, and returns its URL. A test whose messages outlive it (order
// timers still waiting in their delay queues when it ends) uses it, so they
// cannot reach a later test's consumers in the process's own virtual host.
func NewAMQPVHost(t testing.TB) string {
	t.Helper()
	base := AMQPURL(t)
	name := "test-" + RandomSuffix()
	if out, err := exec.Command(lookup(t, "KSHOP_TESTENV"), "vhost", name).CombinedOutput(); err != nil {
		t.Fatalf("create RabbitMQ vhost %s: %v\n%s", name, err, out)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewAMQPUser creates a RabbitMQ user on the shared node, allowed everything on
// this process's own virtual host (OwnAMQPURL), and returns that virtual host's
// URL without credentials: the test puts user and password in itself. The
// password may hold any character except a leading '-'.
func NewAMQPUser(t testing.TB, user, password string) string {
	t.Helper()
	own, err := url.Parse(OwnAMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	vhost := strings.TrimPrefix(own.Path, "/")
	out, err := exec.Command(lookup(t, "KSHOP_TESTENV"), "user", user, password, vhost).CombinedOutput()
	if err != nil {
		t.Fatalf("create RabbitMQ user %s: %v\n%s", user, err, out)
	}
	own.User = nil
	return own.String()
}

// NewAMQPUserWithPermissions is NewAMQPUser with RabbitMQ's configure, write
// and read patterns of a deployment instead of every right.
func NewAMQPUserWithPermissions(t testing.TB, user, password, configure, write, read string) string {
	t.Helper()
	own, err := url.Parse(OwnAMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	vhost := strings.TrimPrefix(own.Path, "/")
	out, err := exec.Command(lookup(t, "KSHOP_TESTENV"), "user", user, password, vhost, configure, write, read).CombinedOutput()
	if err != nil {
		t.Fatalf("create RabbitMQ user %s: %v\n%s", user, err, out)
	}
	own.User = nil
	return own.String()
}

// RandomSuffix returns 12 hex characters for names (databases, queues, keys) that
// must not collide between tests running at the same time.
func RandomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RestartableRabbitMQ is a RabbitMQ node that a test may stop and start. Holding it
// excludes every other test process from it until the test ends.
type RestartableRabbitMQ struct {
	URL    string
	script string
}

// Restartable takes the restartable RabbitMQ node for the rest of the test. Tests in
// other packages (other processes) that want it wait; the node is started again at
// cleanup if the test left it stopped.
func Restartable(t testing.TB) *RestartableRabbitMQ {
	t.Helper()
	u := lookup(t, "KSHOP_TEST_AMQP_RESTARTABLE_URL")
	script := lookup(t, "KSHOP_TESTENV")
	dir := lookup(t, "KSHOP_TESTENV_DIR")
	lock, err := os.OpenFile(dir+"/rabbitmq-restartable.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("open the restartable RabbitMQ lock: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock the restartable RabbitMQ: %v", err)
	}
	r := &RestartableRabbitMQ{URL: u, script: script}
	t.Cleanup(func() {
		if conn, err := net.DialTimeout("tcp", hostOf(t, u), time.Second); err == nil {
			conn.Close()
		} else {
			r.Start(t)
		}
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	})
	// Only the lock's holder stops the node, so a node found down here was left
	// down by a test process that was killed before its cleanup: start it.
	if conn, err := net.DialTimeout("tcp", hostOf(t, u), time.Second); err == nil {
		conn.Close()
	} else {
		t.Logf("the restartable RabbitMQ was left stopped by an earlier, interrupted test; starting it")
		r.Start(t)
	}
	requireReachable(t, "the restartable RabbitMQ", hostOf(t, u))
	return r
}

// Stop stops the node and returns once it is down.
func (r *RestartableRabbitMQ) Stop(t testing.TB) { t.Helper(); r.run(t, "stop") }

// Start starts the node and returns once it accepts connections.
func (r *RestartableRabbitMQ) Start(t testing.TB) { t.Helper(); r.run(t, "start") }

func (r *RestartableRabbitMQ) run(t testing.TB, verb string) {
	t.Helper()
	out, err := exec.Command(r.script, verb, "rabbitmq-restartable").CombinedOutput()
	if err != nil {
		t.Fatalf("%s the restartable RabbitMQ: %v\n%s", verb, err, out)
	}
}

// String names the node for messages.
func (r *RestartableRabbitMQ) String() string {
	return fmt.Sprintf("restartable RabbitMQ at %s", r.URL)
}

// WaitFor polls done every 20 ms until it reports true, failing the test with
// what it was waiting for once timeout has passed. Tests of asynchronous effects
// (a relay publishing, a consumer catching up) wait with it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Replica is the private PostgreSQL streaming replica of the test server
// (hack/testenv.sh starts it beside the primary).
type Replica struct {
	script string
	addr   string
}

// replicaLock is shared by the tests that read from the replica and taken
// alone by a test that stops it, so that one package stopping it never
// surprises another package's test counting on it.
func replicaLock(t testing.TB, how int) {
	t.Helper()
	dir := lookup(t, "KSHOP_TESTENV_DIR")
	lock, err := os.OpenFile(dir+"/postgres-replica.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("open the replica lock: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), how); err != nil {
		t.Fatalf("lock the replica: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	})
}

// ReplicaURL returns the URL of the database at primaryURL (from NewDatabase)
// on the streaming replica, once the replica has replayed its creation. The
// replica stays up until the test ends.
func ReplicaURL(t testing.TB, primaryURL string) string {
	t.Helper()
	base := lookup(t, "KSHOP_TEST_POSTGRES_REPLICA_URL")
	requireReachable(t, "the PostgreSQL replica", hostOf(t, base))
	replicaLock(t, syscall.LOCK_SH)
	return replicaOf(t, base, primaryURL)
}

func replicaOf(t testing.TB, base, primaryURL string) string {
	t.Helper()
	p, err := url.Parse(primaryURL)
	if err != nil {
		t.Fatalf("bad database URL %q: %v", primaryURL, err)
	}
	u, _ := url.Parse(base)
	u.Path = p.Path
	WaitFor(t, 30*time.Second, "the replica to have database "+p.Path, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return false
		}
		conn.Close(ctx)
		return true
	})
	return u.String()
}

// RestartableReplica takes the streaming replica for the rest of the test,
// alone: tests of other packages that read from it wait. It is started again
// at cleanup if the test left it stopped.
func RestartableReplica(t testing.TB, primaryURL string) (*Replica, string) {
	t.Helper()
	base := lookup(t, "KSHOP_TEST_POSTGRES_REPLICA_URL")
	r := &Replica{script: lookup(t, "KSHOP_TESTENV"), addr: hostOf(t, base)}
	replicaLock(t, syscall.LOCK_EX)
	t.Cleanup(func() {
		if !r.Reachable() {
			r.Start(t)
		}
	})
	if !r.Reachable() {
		t.Logf("the replica was left stopped by an earlier, interrupted test; starting it")
		r.Start(t)
	}
	// Nor may its replay stay paused by such a test.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the PostgreSQL replica: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_wal_replay_resume() WHERE pg_is_wal_replay_paused()`); err != nil {
		t.Fatalf("resume the replica's replay: %v", err)
	}
	return r, replicaOf(t, base, primaryURL)
}

// Reachable reports whether the replica accepts connections.
func (r *Replica) Reachable() bool {
	conn, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Stop stops the replica and returns once it is down.
func (r *Replica) Stop(t testing.TB) { t.Helper(); r.run(t, "stop") }

// Start starts the replica and returns once it accepts connections; it
// catches up with the primary from where it stopped.
func (r *Replica) Start(t testing.TB) { t.Helper(); r.run(t, "start") }

func (r *Replica) run(t testing.TB, verb string) {
	t.Helper()
	out, err := exec.Command(r.script, verb, "postgres-replica").CombinedOutput()
	if err != nil {
		t.Fatalf("%s the PostgreSQL replica: %v\n%s", verb, err, out)
	}
}
