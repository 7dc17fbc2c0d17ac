package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	name string
	addr string
	cmd  *exec.Cmd
}

// BenchmarkServiceProcesses builds the five service binaries, starts each as
// its own process against the real servers (Kafka: an in-process kfake cluster
// of this test), and reports per service the time from exec to the first 200
// on /readyz, the resident memory (VmRSS) idle, and the peak resident memory
// while loadgen sends an open-loop mix (browse, search, order, pay) through the
// gateway. One run whatever b.N.
func BenchmarkServiceProcesses(b *testing.B) {
	bin := b.TempDir()
	names := []string{"auth", "product", "order", "mail", "gateway"}
	var packages []string
	for _, name := range names {
		packages = append(packages, "github.com/kshop/kshop/services/cmd/"+name)
	}
	build := exec.Command("go", append([]string{"build", "-o", bin}, packages...)...)
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build the services: %v\n%s", err, out)
	}

	brokers := kafkatest.NewCluster(b, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))
	smtp := smtptest.Start(b)
	redis, amqpURL := testenv.RedisAddr(b), testenv.OwnAMQPURL(b)
	addr := map[string]string{}
	for _, name := range names {
		addr[name] = freeAddr(b)
	}
	admin := "bench-admin-" + testenv.RandomSuffix() + "@example.com"
	adminPassword, err := loadgen.RandomPassword()
	if err != nil {
		b.Fatal(err)
	}
	// The gateway's identity keys as Kubernetes mounts them: the private set
	// for the gateway, the public one for the services.
	identityKeys, err := identity.GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	privateKeys, publicKeys := filepath.Join(b.TempDir(), "identity.json"), filepath.Join(b.TempDir(), "identity-public.json")
	for path, set := range map[string]struct {
		keys    tokens.KeySet
		private bool
	}{privateKeys: {identityKeys, true}, publicKeys: {identityKeys.Public(), false}} {
		doc, err := set.keys.MarshalJWKS(set.private)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	env := map[string][]string{
		"auth": {"KSHOP_AUTH_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_AUTH_REDIS_ADDRS=" + redis,
			"KSHOP_AUTH_AMQP_URL=" + amqpURL, "KSHOP_AUTH_ADMIN_EMAILS=" + admin},
		"product": {"KSHOP_PRODUCT_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_PRODUCT_KAFKA_BROKERS=" + brokers,
			"KSHOP_PRODUCT_IDENTITY_KEYS_FILE=" + publicKeys},
		"order": {"KSHOP_ORDER_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_ORDER_REDIS_ADDRS=" + redis,
			"KSHOP_ORDER_KAFKA_BROKERS=" + brokers, "KSHOP_ORDER_AMQP_URL=" + amqpURL,
			// 4 customers leave about 50 orders each unpaid in the 20 s of load.
			"KSHOP_ORDER_MAX_PENDING_ORDERS=1000", "KSHOP_ORDER_MAX_PENDING_UNITS=100000",
			"KSHOP_ORDER_IDENTITY_KEYS_FILE=" + publicKeys},
		"mail": {"KSHOP_MAIL_DATABASE_URL=" + testenv.NewDatabase(b), "KSHOP_MAIL_AMQP_URL=" + amqpURL,
			"KSHOP_MAIL_SMTP_HOST=" + smtp.Host, "KSHOP_MAIL_SMTP_PORT=" + strconv.Itoa(smtp.Port), "KSHOP_MAIL_SMTP_TLS=none"},
		"gateway": {"KSHOP_GATEWAY_REDIS_ADDRS=" + redis, "KSHOP_GATEWAY_AUTH_URL=http://" + addr["auth"],
			"KSHOP_GATEWAY_PRODUCT_URL=http://" + addr["product"], "KSHOP_GATEWAY_ORDER_URL=http://" + addr["order"],
			"KSHOP_GATEWAY_RATE_LIMITS=auth=300/m,products=5000/s,orders=1000/s",
			"KSHOP_GATEWAY_IDENTITY_KEYS_FILE=" + privateKeys},
	}

	// One at a time, so each start-up has the machine to itself (the gateway
	// last: it is ready once it can reach the auth service's keys).
	var running []*serviceProcess
	b.Cleanup(func() {
		for _, p := range running {
			p.stop(b)
		}
	})
	for _, name := range names {
		prefix := "KSHOP_" + strings.ToUpper(name) + "_"
		p := &serviceProcess{name: name, addr: addr[name], cmd: exec.Command(filepath.Join(bin, name))}
		p.cmd.Env = append(os.Environ(), append(env[name], prefix+"HTTP_ADDR="+p.addr, prefix+"METRICS_ADDR=127.0.0.1:0", prefix+"LOG_LEVEL=warn")...)
		logFile, err := os.Create(filepath.Join(b.TempDir(), name+".log"))
		if err != nil {
			b.Fatal(err)
		}
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		began := time.Now()
		if err := p.cmd.Start(); err != nil {
			b.Fatalf("start %s: %v", name, err)
		}
		running = append(running, p)
		if err := p.awaitReady(30 * time.Second); err != nil {
			out, _ := os.ReadFile(logFile.Name())
			b.Fatalf("%v; its log:\n%s", err, out)
		}
		b.ReportMetric(float64(time.Since(began).Microseconds())/1000, name+"-ready-ms")
	}

	time.Sleep(3 * time.Second) // background loops settle: consumers joined, relays idle
	for _, p := range running {
		b.ReportMetric(megabytes(p.rss(b)), p.name+"-idle-rss-MB")
	}

	peak := map[string]int64{}
	var mu sync.Mutex
	sampling, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			for _, p := range running {
				rss := p.rss(b)
				mu.Lock()
				peak[p.name] = max(peak[p.name], rss)
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	const rate, duration = 100, 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	report, err := loadgen.Load(ctx, loadgen.LoadConfig{
		Gateway: "http://" + addr["gateway"], Inbox: e2e.Inbox{Server: smtp}, Admin: admin, AdminPassword: adminPassword,
		Rate: rate, Duration: duration, MaxInFlight: 256,
		Mix:   map[string]int{loadgen.OpBrowse: 50, loadgen.OpSearch: 20, loadgen.OpOrder: 20, loadgen.OpPay: 10},
		Users: 4, Products: 20,
	})
	stopSampling()
	<-sampled
	if err != nil {
		b.Fatalf("loadgen: %v", err)
	}
	requests, failed := 0, 0
	for _, op := range report.Ops {
		requests += op.Requests
		failed += op.Requests - op.OK
	}
	for _, p := range running {
		b.ReportMetric(megabytes(peak[p.name]), p.name+"-load-rss-MB")
	}
	b.ReportMetric(float64(requests)/report.Elapsed.Seconds(), "load-req/s")
	b.ReportMetric(float64(failed), "load-failed-requests")
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

func (p *serviceProcess) awaitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if resp, err := client.Get("http://" + p.addr + "/readyz"); err == nil {
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
	return fmt.Errorf("%s not ready on %s after %v", p.name, p.addr, within)
}

// rss is the process's resident set size in bytes, from /proc/<pid>/status.
func (p *serviceProcess) rss(b *testing.B) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Errorf("%s: %v", p.name, err)
		return 0
	}
	kB, err := vmRSS(string(status))
	if err != nil {
		b.Errorf("%s: %v", p.name, err)
	}
	return kB * 1024
}

// vmRSS reads the VmRSS line (in kB) of a /proc/<pid>/status file.
func vmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if value, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS line in /proc status")
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
