//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/product"
)

// Shape of the run; the environment can change the first two.
const (
	defaultDuration = 60 * time.Second
	defaultSettle   = 4 * time.Minute
	outage          = 5 * time.Second // how long each server stays down
	products        = 8
	stockPerProduct = 80 // scarce: the run sells out, so overselling would show
	expiryDelay     = 20 * time.Second
)

var reminderDelays = []time.Duration{5 * time.Second, 10 * time.Second}

func TestOrdersSurviveRestartsOfRabbitMQKafkaAndPostgreSQL(t *testing.T) {
	if os.Getenv("KSHOP_CHAOS_OWN_SERVERS") != "1" {
		t.Fatal("this test stops and starts its servers: run it with `make chaos` (hack/chaos.sh), " +
			"which starts servers of its own, never against the shared test servers")
	}
	duration := envDuration(t, "KSHOP_CHAOS_DURATION", defaultDuration)
	settle := envDuration(t, "KSHOP_CHAOS_SETTLE", defaultSettle)
	started := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("chaos %6.1fs  %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}

	servers := ownServers{script: lookup(t, "KSHOP_TESTENV")}
	broker := startBrokerProcess(t, say)
	say("Kafka broker process %d on %s, data in %s", broker.cmd.Process.Pid, broker.addr, broker.dataDir)
	platform := startPlatform(t, broker.addr)
	say("services running in this process; gateway %s", platform.gateway)

	var (
		mu       sync.Mutex
		accepted []loadgen.Accepted
	)
	loadStarted := make(chan struct{})
	faultsDone := make(chan error, 1)
	go func() {
		select {
		case <-loadStarted:
		case <-time.After(5 * time.Minute):
			faultsDone <- fmt.Errorf("the load never started")
			return
		}
		faultsDone <- injectFaults(duration, servers, broker, say)
	}()

	say("load: %v of browse/order/pay through the gateway; %d products of %d units each", duration, products, stockPerProduct)
	ctx, cancel := context.WithTimeout(context.Background(), duration+5*time.Minute)
	defer cancel()
	report, err := loadgen.Load(ctx, loadgen.LoadConfig{
		Gateway: platform.gateway, Inbox: platform.inbox, Admin: admin, AdminPassword: "admin-password",
		Rate: envFloat(t, "KSHOP_CHAOS_RATE", 30), Duration: duration, MaxInFlight: 128,
		Mix:   map[string]int{loadgen.OpBrowse: 20, loadgen.OpOrder: 50, loadgen.OpPay: 30},
		Users: 10, Products: products, Stock: stockPerProduct,
		Accepted: func(a loadgen.Accepted) {
			mu.Lock()
			accepted = append(accepted, a)
			mu.Unlock()
		},
		OnStart:  func() { close(loadStarted) },
		Progress: os.Stdout,
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	report.Print(os.Stdout)
	if err := <-faultsDone; err != nil {
		t.Fatalf("fault injection: %v", err)
	}

	world := connect(t, platform, broker.addr)
	say("settling: waiting (at most %v) for every order to end COMPLETED or CANCELLED, outboxes and queues to drain", settle)
	world.waitUntilSettled(t, settle, say)

	mu.Lock()
	defer mu.Unlock()
	table := world.reconcile(t, accepted)
	say("reconciliation")
	table.print(os.Stdout)
	for _, row := range table {
		if !row.ok() {
			t.Errorf("%s: expected %d, found %d", row.check, row.expected, row.found)
		}
	}
}

// injectFaults stops and starts RabbitMQ, the Kafka broker and PostgreSQL once
// each, spread over the load's duration.
func injectFaults(duration time.Duration, servers ownServers, broker *brokerProcess, say func(string, ...any)) error {
	faults := []struct {
		name        string
		stop, start func() error
	}{
		{"RabbitMQ", func() error { return servers.run("stop", "rabbitmq") }, func() error { return servers.run("start", "rabbitmq") }},
		{"the Kafka broker process", broker.stop, broker.start},
		{"PostgreSQL", func() error { return servers.run("stop", "postgres") }, func() error { return servers.run("start", "postgres") }},
	}
	begin := time.Now()
	for i, f := range faults {
		at := duration * time.Duration(2*i+1) / time.Duration(2*len(faults)+1)
		time.Sleep(time.Until(begin.Add(at)))
		say("FAULT  stopping %s", f.name)
		if err := f.stop(); err != nil {
			return fmt.Errorf("stop %s: %w", f.name, err)
		}
		say("FAULT  %s is down; starting it again in %v", f.name, outage)
		time.Sleep(outage)
		if err := f.start(); err != nil {
			return fmt.Errorf("start %s: %w", f.name, err)
		}
		say("FAULT  %s is back", f.name)
	}
	return nil
}

// ownServers drives hack/testenv.sh for the servers hack/chaos.sh started (its
// KSHOP_TESTENV_* variables are in this process's environment).
type ownServers struct{ script string }

func (s ownServers) run(verb, name string) error {
	out, err := exec.Command(s.script, verb, name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s %s: %v\n%s", s.script, verb, name, err, out)
	}
	return nil
}

// brokerProcess is `kshop devkafka`: the development Kafka broker in a process
// of its own, its log kept in a data directory across restarts.
type brokerProcess struct {
	bin, addr, dataDir, logFile string
	cmd                         *exec.Cmd
}

func startBrokerProcess(t *testing.T, say func(string, ...any)) *brokerProcess {
	t.Helper()
	dir := t.TempDir()
	b := &brokerProcess{
		bin:     filepath.Join(dir, "kshop"),
		addr:    "127.0.0.1:" + envOr("KSHOP_CHAOS_KAFKA_PORT", "13092"),
		dataDir: filepath.Join(dir, "kafka-data"),
		logFile: filepath.Join(dir, "devkafka.log"),
	}
	say("building the kshop binary for its devkafka command")
	if out, err := exec.Command("go", "build", "-o", b.bin, "../cmd/kshop").CombinedOutput(); err != nil {
		t.Fatalf("build kshop: %v\n%s", err, out)
	}
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.stop(); err != nil {
			t.Log(err)
		}
		if log, err := os.ReadFile(b.logFile); err == nil && t.Failed() {
			t.Logf("broker log:\n%s", log)
		}
	})
	return b
}

func (b *brokerProcess) start() error {
	log, err := os.OpenFile(b.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(b.bin, "devkafka")
	cmd.Env = append(os.Environ(), "KSHOP_DEV_KAFKA_ADDR="+b.addr, "KSHOP_DEV_KAFKA_DATA_DIR="+b.dataDir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the Kafka broker process: %w", err)
	}
	b.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Kafka broker did not listen on %s within 30 s; see %s", b.addr, b.logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop asks the broker to end (SIGTERM: it writes its state and exits), as a
// broker's service manager would.
func (b *brokerProcess) stop() error {
	if b.cmd == nil {
		return nil
	}
	cmd := b.cmd
	b.cmd = nil
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the Kafka broker: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("the Kafka broker exited with %v; see %s", err, b.logFile)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("the Kafka broker did not stop within 30 s of SIGTERM; killed it; see %s", b.logFile)
	}
}

const admin = "admin@kshop.local"

// platform is every service, run in this test process against the servers.
type platform struct {
	gateway                       string
	inbox                         smtpInbox
	smtp                          *smtptest.Server
	orderDB, productDB, mailDB    string
	amqpURL                       string
	authAPI, productAPI, orderAPI *apitest.Client
}

// smtpInbox lets the load generator read verification codes from the test's SMTP server.
type smtpInbox struct{ server *smtptest.Server }

func (i smtpInbox) Messages(_ context.Context, to string) ([]loadgen.Mail, error) {
	var out []loadgen.Mail
	for _, m := range i.server.To(to) {
		out = append(out, loadgen.Mail{To: m.To, Subject: m.Subject})
	}
	return out, nil
}

func startPlatform(t *testing.T, brokers string) platform {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("KSHOP_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p := platform{amqpURL: testenv.AMQPURL(t), smtp: smtptest.Start(t)}
	p.inbox = smtpInbox{p.smtp}
	redis := redisx.Config{Addrs: []string{testenv.RedisAddr(t)}}
	authDB := testenv.NewDatabase(t)
	p.productDB, p.orderDB, p.mailDB = testenv.NewDatabase(t), testenv.NewDatabase(t), testenv.NewDatabase(t)

	authApp, err := auth.New(auth.Config{
		ShutdownTimeout: 5 * time.Second, Database: pg.Config{URL: authDB, MaxConns: 10},
		Redis: redis, AMQPURL: p.amqpURL, BcryptCost: bcrypt.MinCost, AdminEmails: []string{admin},
		CodeTTL: 10 * time.Minute, CodeMaxAttempts: 5, ResendCooldown: time.Minute,
		JWKSReload: time.Second, JWKSAlgorithm: tokens.EdDSA, TokenTTL: time.Hour, TokenIssuer: "kshop-auth", TokenAudience: "kshop",
	}, log.With("service", "auth"), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.authAPI = apitest.Start(t, authApp.Serve)

	// Every retry budget is the production default: the faults must be ridden out as they would be.
	productApp, err := product.New(product.Config{
		ShutdownTimeout: 5 * time.Second, Database: pg.Config{URL: p.productDB, MaxConns: 10},
		KafkaBrokers: brokers, ConsumerMaxAttempts: 5, ConsumerRetry: retry.Pace{Initial: time.Second, Max: time.Minute},
	}, log.With("service", "product"), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.productAPI = apitest.Start(t, productApp.Serve)

	orderApp, err := order.New(order.Config{
		ShutdownTimeout: 5 * time.Second, Database: pg.Config{URL: p.orderDB, MaxConns: 10},
		Redis: redis, KafkaBrokers: brokers, AMQPURL: p.amqpURL,
		ReminderDelays: reminderDelays, ExpiryDelay: expiryDelay, LockTTL: 10 * time.Second,
		ConsumerMaxAttempts: 5, ConsumerRetry: retry.Pace{Initial: time.Second, Max: time.Minute},
	}, log.With("service", "order"), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.orderAPI = apitest.Start(t, orderApp.Serve)

	mailApp, err := mail.New(mail.Config{
		ShutdownTimeout: 5 * time.Second, Database: pg.Config{URL: p.mailDB, MaxConns: 10}, AMQPURL: p.amqpURL,
		SMTP:        mail.SMTPConfig{Host: p.smtp.Host, Port: p.smtp.Port, TLS: mail.TLSNone, From: "kshop <no-reply@kshop.local>", Timeout: 5 * time.Second},
		MaxAttempts: 5, Retry: retry.Pace{Initial: time.Second, Max: time.Minute}, Concurrency: 4,
	}, log.With("service", "mail"), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, mailApp.Serve)

	gatewayCfg := gateway.Config{
		ShutdownTimeout: 5 * time.Second, Redis: redis,
		AuthURL: p.authAPI.Base, ProductURL: p.productAPI.Base, OrderURL: p.orderAPI.Base,
		AuthTimeout: 5 * time.Second, ProductTimeout: 5 * time.Second, OrderTimeout: 10 * time.Second,
		TokenIssuer: "kshop-auth", TokenAudience: "kshop",
		RateLimits: "auth=1000/m,products=5000/s,orders=5000/s", BodyLimit: 1 << 20,
	}
	if err := gatewayCfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gatewayApp, err := gateway.New(gatewayCfg, log.With("service", "gateway"), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.gateway = apitest.Start(t, gatewayApp.Serve).Base
	return p
}

func lookup(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the chaos test with `make chaos`", name)
	}
	return v
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func envDuration(t *testing.T, name string, fallback time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return fallback
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 60s", name, v)
	}
	return d
}

func envFloat(t *testing.T, name string, fallback float64) float64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return fallback
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

// queueNames lists every RabbitMQ queue the platform declares, with their
// dead-letter queues and the order timers' delay queues.
func queueNames() []string {
	var names []string
	for _, r := range append(append([]events.Route{}, events.MailRoutes...), events.TimerRoutes...) {
		names = append(names, r.Queue, events.DeadLetterQueue(r.Queue))
	}
	for _, d := range append(append([]time.Duration{}, reminderDelays...), expiryDelay) {
		names = append(names, events.DelayQueueName(d))
	}
	return names
}
