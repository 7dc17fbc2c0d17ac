package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

// serviceProcess is one service binary running as its own process, as in its pod.
type serviceProcess struct {
	name        string
	metricsAddr string
	cmd         *exec.Cmd
}

// The load of the process benchmarks: 200 requests a second for 10 minutes,
// unless KSHOP_BENCH_LOAD_RATE and KSHOP_BENCH_LOAD_DURATION say otherwise (a
// quicker look: KSHOP_BENCH_LOAD_DURATION=30s).
const (
	defaultProcessLoadRate     = 200
	defaultProcessLoadDuration = 10 * time.Minute
	// afterTheLoad is how long the processes rest before the "after" figures.
	afterTheLoad = 30 * time.Second
)

func processLoad(b *testing.B) (rate float64, duration time.Duration) {
	rate, duration = defaultProcessLoadRate, defaultProcessLoadDuration
	if v := os.Getenv("KSHOP_BENCH_LOAD_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			b.Fatalf("KSHOP_BENCH_LOAD_RATE=%q: want requests per second, as 200", v)
		}
		rate = r
	}
	if v := os.Getenv("KSHOP_BENCH_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("KSHOP_BENCH_LOAD_DURATION=%q: want a duration, as 10m", v)
		}
		duration = d
	}
	return rate, duration
}

// buildCommands builds services/cmd/<name> for each name as the images build
// them (Dockerfile) and returns the folder holding the binaries.
func buildCommands(b *testing.B, names ...string) string {
	bin := b.TempDir()
	var packages []string
	for _, name := range names {
		packages = append(packages, "github.com/kshop/kshop/services/cmd/"+name)
	}
	build := exec.Command("go", append([]string{"build", "-trimpath", "-tags", "nomsgpack", "-ldflags", "-s -w", "-o", bin}, packages...)...)
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build %v: %v\n%s", names, err, out)
	}
	return bin
}

// platformSetup is what the services of a process benchmark are configured
// with: the servers, each service's address, and the admin loadgen signs in as.
type platformSetup struct {
	kafka, redis, amqpURL string
	smtp                  *smtptest.Server
	addr                  map[string]string
	admin, adminPassword  string
	// privateKeys and publicKeys are the identity key files as Kubernetes
	// mounts them; empty, the all-in-one binary makes its own.
	privateKeys, publicKeys string
	orderDB                 string
	// metrics is each service's metrics address.
	metrics map[string]string
}

var serviceNames = []string{"auth", "product", "order", "mail", "gateway"}

func newPlatformSetup(b *testing.B, kafkaBrokers string) *platformSetup {
	s := &platformSetup{kafka: kafkaBrokers, smtp: smtptest.Start(b), redis: testenv.RedisAddr(b), amqpURL: testenv.OwnAMQPURL(b),
		addr: map[string]string{}, metrics: map[string]string{}, admin: "bench-admin-" + testenv.RandomSuffix() + "@example.com", orderDB: testenv.NewDatabase(b)}
	for _, name := range serviceNames {
		s.addr[name], s.metrics[name] = freeAddr(b), freeAddr(b)
	}
	var err error
	if s.adminPassword, err = loadgen.RandomPassword(); err != nil {
		b.Fatal(err)
	}
	return s
}

// writeIdentityKeys writes the gateway's identity keys as Kubernetes mounts
// them: the private set for the gateway, the public one for the services.
func (s *platformSetup) writeIdentityKeys(b *testing.B) {
	identityKeys, err := identity.GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	s.privateKeys, s.publicKeys = filepath.Join(b.TempDir(), "identity.json"), filepath.Join(b.TempDir(), "identity-public.json")
	for path, set := range map[string]struct {
		keys    tokens.KeySet
		private bool
	}{s.privateKeys: {identityKeys, true}, s.publicKeys: {identityKeys.Public(), false}} {
		doc, err := set.keys.MarshalJWKS(set.private)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// env is each service's environment, by service name.
func (s *platformSetup) env(b *testing.B) map[string][]string {
	addr := s.addr
	env := map[string][]string{
		"auth": {"KSHOP_AUTH_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_AUTH_REDIS_ADDRS=" + s.redis,
			"KSHOP_AUTH_AMQP_URL=" + s.amqpURL, "KSHOP_AUTH_ADMIN_EMAILS=" + s.admin},
		"product": {"KSHOP_PRODUCT_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_PRODUCT_KAFKA_BROKERS=" + s.kafka},
		"order": {"KSHOP_ORDER_DATABASE_URL=" + s.orderDB, "KSHOP_ORDER_REDIS_ADDRS=" + s.redis,
			"KSHOP_ORDER_KAFKA_BROKERS=" + s.kafka, "KSHOP_ORDER_AMQP_URL=" + s.amqpURL,
			// 4 customers leave thousands of orders unpaid in 10 minutes of load.
			"KSHOP_ORDER_MAX_PENDING_ORDERS=1000000", "KSHOP_ORDER_MAX_PENDING_UNITS=100000000"},
		"mail": {"KSHOP_MAIL_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_MAIL_AMQP_URL=" + s.amqpURL,
			"KSHOP_MAIL_SMTP_HOST=" + s.smtp.Host, "KSHOP_MAIL_SMTP_PORT=" + strconv.Itoa(s.smtp.Port), "KSHOP_MAIL_SMTP_TLS=none"},
		"gateway": {"KSHOP_GATEWAY_REDIS_ADDRS=" + s.redis, "KSHOP_GATEWAY_AUTH_URL=http://" + addr["auth"],
			"KSHOP_GATEWAY_PRODUCT_URL=http://" + addr["product"], "KSHOP_GATEWAY_ORDER_URL=http://" + addr["order"],
			"KSHOP_GATEWAY_RATE_LIMITS=auth=300/m,products=5000/s,orders=1000/s"},
	}
	if s.privateKeys != "" {
		env["gateway"] = append(env["gateway"], "KSHOP_GATEWAY_IDENTITY_KEYS_FILE="+s.privateKeys)
		for _, name := range []string{"product", "order"} {
			env[name] = append(env[name], "KSHOP_"+strings.ToUpper(name)+"_IDENTITY_KEYS_FILE="+s.publicKeys)
		}
	}
	for name := range env {
		prefix := "KSHOP_" + strings.ToUpper(name) + "_"
		env[name] = append(env[name], prefix+"HTTP_ADDR="+addr[name], prefix+"METRICS_ADDR="+s.metrics[name], prefix+"LOG_LEVEL=warn")
	}
	return env
}

// startProcess starts the binary with env added to this process's own and
// waits until it answers 200 on /readyz at every address of readyAt. Its
// output goes to a log file that a failure prints.
func startProcess(b *testing.B, name, binary string, env []string, metricsAddr string, readyAt ...string) *serviceProcess {
	p := &serviceProcess{name: name, metricsAddr: metricsAddr, cmd: exec.Command(binary)}
	p.cmd.Env = append(os.Environ(), env...)
	logFile, err := os.Create(filepath.Join(b.TempDir(), name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// A benchmark stopped from outside (Ctrl-C, a timeout) skips its cleanups:
	// the kernel then stops the service with it instead of leaving it running.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() { p.stop(b) })
	for _, addr := range readyAt {
		if err := awaitReady(p, addr, 30*time.Second); err != nil {
			out, _ := os.ReadFile(logFile.Name())
			b.Fatalf("%v; its log:\n%s", err, out)
		}
	}
	b.ReportMetric(float64(time.Since(began).Microseconds())/1000, name+"-ready-ms")
	return p
}

// reportMemory reports each process's memory now, its metrics named
// <process>-<when>-{rss,anon,heap}-MB.
func reportMemory(b *testing.B, running []*serviceProcess, when string) {
	for _, p := range running {
		reportMemoryFigures(b, p.name, when, p.memory(b))
	}
}

func reportMemoryFigures(b *testing.B, name, when string, m processMemory) {
	b.ReportMetric(megabytes(m.rss), name+"-"+when+"-rss-MB")
	b.ReportMetric(megabytes(m.anon), name+"-"+when+"-anon-MB")
	b.ReportMetric(megabytes(m.liveHeap), name+"-"+when+"-heap-MB")
}

// samplePeaks samples the processes' memory until the returned function is
// called, which returns each one's peak: the resident memory every 250 ms,
// the live heap (an HTTP scrape) every second.
func samplePeaks(b *testing.B, running []*serviceProcess) (stop func() map[string]processMemory) {
	peak := map[string]processMemory{}
	sampling, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for tick := 0; sampling.Err() == nil; tick++ {
			for _, p := range running {
				rss, anon := p.resident(b)
				var heap int64
				if tick%4 == 0 {
					heap = p.liveHeap(b)
				}
				m := peak[p.name]
				peak[p.name] = processMemory{rss: max(m.rss, rss), anon: max(m.anon, anon), liveHeap: max(m.liveHeap, heap)}
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return func() map[string]processMemory {
		stopSampling()
		<-sampled
		return peak
	}
}

// mixedLoad is the open-loop mix both process benchmarks send through the
// gateway: browse, search, order, pay.
func mixedLoad(s *platformSetup, rate float64, duration time.Duration, onStart func()) loadgen.LoadConfig {
	return loadgen.LoadConfig{
		Gateway: "http://" + s.addr["gateway"], Inbox: e2e.Inbox{Server: s.smtp}, Admin: s.admin, AdminPassword: s.adminPassword,
		Rate: rate, Duration: duration, MaxInFlight: 256,
		Mix:   map[string]int{loadgen.OpBrowse: 50, loadgen.OpSearch: 20, loadgen.OpOrder: 20, loadgen.OpPay: 10},
		Users: 4, Products: 20,
		OnStart:  onStart,
		Progress: progressEvery(time.Minute),
	}
}

// measureUnderLoad reports the processes' memory idle, at its peak under the
// mixed load and after the load; onStart runs when the timed load starts and
// onEnd, given the requests sent, as soon as it ends.
func measureUnderLoad(b *testing.B, setup *platformSetup, running []*serviceProcess, rate float64, duration time.Duration, onStart func(), onEnd func(requests int)) {
	time.Sleep(3 * time.Second) // background loops settle: consumers joined, relays idle
	reportMemory(b, running, "idle")
	stopSampling := samplePeaks(b, running)
	ctx, cancel := context.WithTimeout(context.Background(), duration+5*time.Minute)
	defer cancel()
	report, err := loadgen.Load(ctx, mixedLoad(setup, rate, duration, onStart))
	peak := stopSampling()
	if err != nil {
		b.Fatalf("loadgen: %v", err)
	}
	requests := reportLoad(b, &report)
	for _, p := range running {
		reportMemoryFigures(b, p.name, "load", peak[p.name])
	}
	if onEnd != nil {
		onEnd(requests)
	}
	time.Sleep(afterTheLoad)
	reportMemory(b, running, "after")
}

// reportLoad reports the requests per second, the duration and the failed
// requests of a load, and returns how many requests it sent.
func reportLoad(b *testing.B, report *loadgen.Report) (requests int) {
	failed := 0
	for _, op := range report.Ops {
		requests += op.Requests
		failed += op.Requests - op.OK
	}
	b.ReportMetric(float64(requests)/report.Elapsed.Seconds(), "load-req/s")
	b.ReportMetric(report.Elapsed.Seconds(), "load-s")
	b.ReportMetric(float64(failed), "load-failed-requests")
	return requests
}

// BenchmarkServiceProcesses builds the five service binaries, starts each as
// its own process against the real servers (Kafka: an in-process kfake cluster
// of this test), and reports per service the time from exec to the first 200
// on /readyz, then its memory idle, at its peak while loadgen sends an
// open-loop mix (browse, search, order, pay) through the gateway, and after
// the load: the resident set (VmRSS), its anonymous part (RssAnon: heap,
// stacks, the C libraries' allocations; the rest is the binary's own pages,
// shared and dropped by the kernel at will) and the Go live heap
// (go_gc_heap_live_bytes from its /metrics; 0 before the first collection).
// It also reports each process's CPU time per request of the load. One run
// whatever b.N.
func BenchmarkServiceProcesses(b *testing.B) {
	rate, duration := processLoad(b)
	bin := buildCommands(b, serviceNames...)
	brokers := kafkatest.NewCluster(b, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))
	setup := newPlatformSetup(b, brokers)
	setup.writeIdentityKeys(b)
	env := setup.env(b)

	// One at a time, so each start-up has the machine to itself (the gateway
	// last: it is ready once it can reach the auth service's keys).
	var running []*serviceProcess
	for _, name := range serviceNames {
		running = append(running, startProcess(b, name, filepath.Join(bin, name), env[name], setup.metrics[name], setup.addr[name]))
	}

	// CPU is counted from the timed run's start, after loadgen registered its
	// users and created its products: each service's, PostgreSQL's and Redis's.
	servers := serverProcesses(b, setup.orderDB)
	var cpuBefore map[string]time.Duration
	countCPU := func() { cpuBefore = cpuByProcess(b, running, servers) }
	measureUnderLoad(b, setup, running, rate, duration, countCPU, func(requests int) {
		for name, after := range cpuByProcess(b, running, servers) {
			b.ReportMetric(float64((after-cpuBefore[name]).Microseconds())/1000/float64(max(1, requests)), name+"-cpu-ms/req")
		}
	})

	placeOrdersFlatOut(b, running, servers, setup.orderDB, loadgen.LoadConfig{
		Gateway: "http://" + setup.addr["gateway"], Inbox: e2e.Inbox{Server: setup.smtp}, Admin: setup.admin, AdminPassword: setup.adminPassword,
	})
}

// The orders phase of BenchmarkServiceProcesses: 16 clients place and pay
// orders through the gateway as fast as they are answered for a minute.
const (
	orderClients  = 16
	orderDuration = time.Minute
)

// placeOrdersFlatOut has orderClients clients place and pay orders through
// the gateway for orderDuration, each sending its next request as soon as the
// last is answered, and reports the orders accepted per second, the orders decided (stock
// reserved or rejected by the saga) per second meanwhile, the undecided
// backlog halfway and at the end (it must not grow), how long it took to drain
// after the load, and the CPU per accepted order of the service processes,
// PostgreSQL and Redis together (Kafka, in this process, and RabbitMQ are not
// counted), the payments made included.
func placeOrdersFlatOut(b *testing.B, running []*serviceProcess, servers func() map[string][]int, orderDB string, cfg loadgen.LoadConfig) {
	ctx := context.Background()
	db, err := pgxpool.New(ctx, orderDB)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	undecided := func() int64 {
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE stock_status = 'pending'`).Scan(&n); err != nil {
			b.Error(err)
		}
		return n
	}
	decided := func() int64 {
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE stock_status <> 'pending'`).Scan(&n); err != nil {
			b.Error(err)
		}
		return n
	}
	cpu := func() map[string]time.Duration { return cpuByProcess(b, running, servers) }

	var cpuBefore map[string]time.Duration
	var decidedBefore int64
	var halfway atomic.Int64
	var began time.Time
	// An arrival rate no client keeps up with, capped at orderClients in
	// flight: each client sends its next order as soon as one is answered.
	cfg.Rate, cfg.Duration, cfg.MaxInFlight = 20000, orderDuration, orderClients
	// Orders are paid once they are half a second old, as customers do, which
	// keeps each customer's pending orders (which the pending-limit check
	// counts) fewer; a payment not yet due places an order instead (loadgen).
	cfg.Mix = map[string]int{loadgen.OpOrder: 1, loadgen.OpPay: 1}
	cfg.Users, cfg.Products = 16, 20
	cfg.OnStart = func() {
		began = time.Now()
		cpuBefore, decidedBefore = cpu(), decided()
		time.AfterFunc(orderDuration/2, func() { halfway.Store(undecided()) })
	}
	report, err := loadgen.Load(ctx, cfg)
	if err != nil {
		b.Fatalf("loadgen: %v", err)
	}
	elapsed := time.Since(began)
	cpuAfter, decidedDuring, atTheEnd := cpu(), decided()-decidedBefore, undecided()
	accepted := report.Ops[loadgen.OpOrder].OK
	var cpuUsed time.Duration
	for name, after := range cpuAfter {
		used := after - cpuBefore[name]
		cpuUsed += used
		b.ReportMetric(float64(used.Microseconds())/1000/float64(max(1, accepted)), name+"-cpu-ms/order")
	}
	drained := time.Now()
	for undecided() > 0 && time.Since(drained) < 5*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(accepted)/elapsed.Seconds(), "orders-accepted/s")
	b.ReportMetric(float64(decidedDuring)/elapsed.Seconds(), "orders-decided/s")
	b.ReportMetric(float64(halfway.Load()), "orders-undecided-halfway")
	b.ReportMetric(float64(atTheEnd), "orders-undecided-at-end")
	b.ReportMetric(time.Since(drained).Seconds(), "orders-drain-s")
	b.ReportMetric(float64(report.Ops[loadgen.OpOrder].Requests-accepted), "orders-failed")
	if paid := report.Ops[loadgen.OpPay]; paid != nil {
		b.ReportMetric(float64(paid.OK), "orders-paid")
	}
	b.ReportMetric(float64(cpuUsed.Microseconds())/1000/float64(max(1, accepted)), "cpu-ms/order")
}

// serverProcesses finds the PostgreSQL of databaseURL (its postmaster, from
// the data directory's postmaster.pid, and every child of it) and the Redis
// the services use, and returns a function listing their processes now, by
// server ("postgres", "redis").
func serverProcesses(b *testing.B, databaseURL string) func() map[string][]int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		b.Fatal(err)
	}
	var dataDir string
	err = conn.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = 'data_directory'`).Scan(&dataDir)
	conn.Close(ctx)
	if err != nil {
		b.Fatal(err)
	}
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		b.Fatalf("PostgreSQL's pid: %v", err)
	}
	postmaster, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		b.Fatalf("PostgreSQL's pid in %s: %v", dataDir, err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: testenv.RedisAddr(b)})
	info, err := rdb.Info(ctx, "server").Result()
	rdb.Close()
	if err != nil {
		b.Fatal(err)
	}
	var redisPID int
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			redisPID, _ = strconv.Atoi(v)
		}
	}
	return func() map[string][]int {
		pids := []int{postmaster}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil && strings.Contains(string(status), fmt.Sprintf("\nPPid:\t%d\n", postmaster)) {
				pids = append(pids, pid)
			}
		}
		return map[string][]int{"postgres": pids, "redis": {redisPID}}
	}
}

// cpuByProcess is the CPU used so far by each service process, by name, and
// by each server of servers (serverProcesses), all its processes together.
func cpuByProcess(b *testing.B, running []*serviceProcess, servers func() map[string][]int) map[string]time.Duration {
	used := map[string]time.Duration{}
	for _, p := range running {
		used[p.name] = p.cpuTime(b)
	}
	for name, pids := range servers() {
		for _, pid := range pids {
			used[name] += cpuTimeOf(pid)
		}
	}
	return used
}

// cpuTimeOf is a process's CPU time so far (user and system, its exited
// children not included), 0 when it is gone.
func cpuTimeOf(pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(fields[11], 10, 64)
	system, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(user+system) * 10 * time.Millisecond
}

// progressEvery passes loadgen's progress lines on to stderr once per
// interval, so a ten-minute load shows it is alive.
func progressEvery(interval time.Duration) io.Writer {
	return &throttledLines{interval: interval}
}

type throttledLines struct {
	interval time.Duration
	last     time.Time
}

func (w *throttledLines) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(w.last) >= w.interval {
		w.last = now
		fmt.Fprintf(os.Stderr, "load: %s", p)
	}
	return len(p), nil
}

// processMemory is one look at a process's memory, in bytes.
type processMemory struct{ rss, anon, liveHeap int64 }

func (p *serviceProcess) memory(b *testing.B) processMemory {
	rss, anon := p.resident(b)
	return processMemory{rss: rss, anon: anon, liveHeap: p.liveHeap(b)}
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// awaitReady waits until the service on addr, served by p, answers 200 on /readyz.
func awaitReady(p *serviceProcess, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if resp, err := client.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.cmd.ProcessState != nil {
			return fmt.Errorf("%s exited before it was ready", p.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready on %s after %v", p.name, addr, within)
}

// resident is the process's resident set size and its anonymous part in
// bytes, from /proc/<pid>/status.
func (p *serviceProcess) resident(b *testing.B) (rss, anon int64) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Errorf("%s: %v", p.name, err)
		return 0, 0
	}
	rss, err = statusKB(string(status), "VmRSS")
	if err != nil {
		b.Errorf("%s: %v", p.name, err)
	}
	anon, err = statusKB(string(status), "RssAnon")
	if err != nil {
		b.Errorf("%s: %v", p.name, err)
	}
	return rss * 1024, anon * 1024
}

// statusKB reads one "Name:   1234 kB" line of a /proc/<pid>/status file.
func statusKB(status, name string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if value, ok := strings.CutPrefix(line, name+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s line in /proc status", name)
}

// cpuTime is the CPU the process used so far (user and system), from
// /proc/<pid>/stat, whose times are in clock ticks of 1/100 s on Linux.
func (p *serviceProcess) cpuTime(b *testing.B) time.Duration {
	if p.cmd.ProcessState != nil {
		b.Errorf("%s exited", p.name)
	}
	return cpuTimeOf(p.cmd.Process.Pid)
}

// liveHeap is go_gc_heap_live_bytes from the process's /metrics: the heap
// its last garbage collection found reachable.
func (p *serviceProcess) liveHeap(b *testing.B) int64 {
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		b.Errorf("%s metrics: %v", p.name, err)
		return 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Errorf("%s metrics: %v", p.name, err)
		return 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, "go_gc_heap_live_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				b.Errorf("%s: go_gc_heap_live_bytes %q", p.name, value)
			}
			return int64(f)
		}
	}
	b.Errorf("%s: no go_gc_heap_live_bytes on its /metrics", p.name)
	return 0
}

func (p *serviceProcess) stop(b *testing.B) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		b.Errorf("%s did not stop within 20 s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func megabytes(bytes int64) float64 { return float64(bytes) / (1 << 20) }
