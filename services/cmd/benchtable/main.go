// Command benchtable is `make bench`: it runs kshop's benchmarks against the
// private servers named by the KSHOP_TEST_* variables (hack/testenv.sh env),
// pgbench on the same PostgreSQL, and prints one Markdown table of every figure
// beside its comparison or ceiling, after a description of the machine.
// Progress goes to stderr, the table to stdout (docs/benchmarks.md keeps it).
//
//	go run ./services/cmd/benchtable            (from the repository's root)
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// step is one `go test -bench` invocation.
type step struct {
	pkg, pattern, benchtime string
	about                   string // what it does and how long, for the person waiting
}

var steps = []step{
	{"./services/gateway", "^(BenchmarkGatewayVsDirect|BenchmarkBareGin)$", "20000x", "gateway vs direct, and the bare gin ceiling (1-3 min with the build)"},
	{"./services/gateway", "^BenchmarkGatewayAtFixedRate$", "1x", "gateway vs direct at a fixed 800 requests/s (about 35 s)"},
	{"./services/product", "^BenchmarkGetProduct$", "20000x", "GET /products/:id (about 15 s)"},
	{"./services/product", "^BenchmarkReserve$", "3s", "one stock reservation transaction (about 15 s)"},
	{"./services/product", "^BenchmarkOrderCreatedToStockReserved$", "300x", "order-created to stock-reserved latency (about 20 s)"},
	{"./services/e2e", "^BenchmarkOrderPlacement$", "2000x", "order placement through the saga, checking for oversell (about 40 s)"},
	{"./services/e2e", "^BenchmarkProductOrderable$", "100x", "a just-created product orderable: product 201 to order 201, 100 products (about 20 s)"},
	{"./services/order", "^BenchmarkTimerLateness$", "1x", "timer lateness with 10 000 orders pending (about 2 min)"},
	{"./services/e2e", "^BenchmarkServiceProcesses$", "1x", "each service as a process: start to ready, memory idle, under 10 minutes of 200 requests/s and after, CPU per request (about 12 minutes)"},
	{"./services/e2e", "^BenchmarkAllInOneProcess$", "1x", "the all-in-one binary of make run: memory idle, under the same load and after (about 11 minutes)"},
}

func main() {
	ctx := context.Background()
	pgURL := os.Getenv("KSHOP_TEST_POSTGRES_URL")
	if pgURL == "" {
		fail("KSHOP_TEST_POSTGRES_URL is not set: run `make bench`, or `hack/testenv.sh up && eval \"$(hack/testenv.sh env)\"` first")
	}
	results := Results{}
	var failed []string
	began := time.Now()
	for i, s := range steps {
		progress("[%d/%d] %s", i+1, len(steps)+1, s.about)
		if err := runBenchmarks(ctx, s, results); err != nil {
			progress("%v", err)
			failed = append(failed, s.pattern)
		}
	}
	progress("[%d/%d] pgbench: single-row UPDATE by primary key, 8 clients, 10 s", len(steps)+1, len(steps)+1)
	pg, err := runPgbench(ctx, pgURL)
	if err != nil {
		progress("%v", err)
		failed = append(failed, "pgbench")
	}
	progress("done in %v", time.Since(began).Round(time.Second))

	describeMachine(ctx, pgURL)
	WriteTable(os.Stdout, rows(results, pg))
	if len(failed) > 0 {
		fail("%d step(s) failed (%s); their output is above, the table shows them as not measured", len(failed), strings.Join(failed, ", "))
	}
}

// runBenchmarks runs one step and adds its figures to results; on failure the
// error carries go test's output, which says what went wrong.
func runBenchmarks(ctx context.Context, s step, results Results) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", s.pattern, "-benchtime", s.benchtime, "-count", "1", "-timeout", "20m", s.pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench '%s' %s failed (%v):\n%s", s.pattern, s.pkg, err, out.String())
	}
	before := len(results)
	if err := ParseBenchOutput(&out, results); err != nil {
		return err
	}
	if len(results) == before {
		return fmt.Errorf("go test -bench '%s' %s printed no benchmark line:\n%s", s.pattern, s.pkg, out.String())
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: error: "+format+"\n", args...)
	os.Exit(1)
}

// describeMachine prints what the figures were measured on, as a Markdown list.
func describeMachine(ctx context.Context, pgURL string) {
	first := func(output, prefix string) string {
		for _, line := range strings.Split(output, "\n") {
			if value, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(value), ":"))
			}
		}
		return "unknown"
	}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	meminfo, _ := os.ReadFile("/proc/meminfo")
	fmt.Printf("- Date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Printf("- CPU: %s, %s cores (nproc)\n", first(string(cpuinfo), "model name"), command(ctx, "nproc"))
	fmt.Printf("- Memory: %s\n", gibibytes(first(string(meminfo), "MemTotal")))
	fmt.Printf("- Kernel: %s\n", command(ctx, "uname", "-sr"))
	fmt.Printf("- Go: %s\n", command(ctx, "go", "env", "GOVERSION"))
	fmt.Printf("- PostgreSQL: %s\n", command(ctx, "psql", pgURL, "-Atc", "SHOW server_version"))
	redisVersion, _, _ := strings.Cut(first(command(ctx, "redis-server", "--version"), "Redis server v="), " ")
	fmt.Printf("- Redis: %s\n", redisVersion)
	fmt.Printf("- RabbitMQ: %s (Debian package)\n", command(ctx, "dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"))
	fmt.Println("- Kafka: franz-go kfake in the benchmark's process")
	fmt.Println()
}

// gibibytes turns /proc/meminfo's "24684084 kB" into "23.5 GiB".
func gibibytes(meminfo string) string {
	kB, err := strconv.ParseFloat(strings.TrimSuffix(meminfo, " kB"), 64)
	if err != nil {
		return meminfo
	}
	return fmt.Sprintf("%.1f GiB", kB/(1<<20))
}

func command(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "unknown (" + name + ": " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// pgbenchResult is the database ceiling: single-row updates by primary key.
type pgbenchResult struct{ tps, latencyMs float64 }

// runPgbench creates a scratch database with 100 000 rows, runs one
// single-row UPDATE by primary key as fast as 8 clients can for 10 s, and drops
// the database again.
func runPgbench(ctx context.Context, pgURL string) (*pgbenchResult, error) {
	pgbench, err := findPgbench()
	if err != nil {
		return nil, err
	}
	db := fmt.Sprintf("bench_pgbench_%d", time.Now().UnixNano())
	if out, err := exec.CommandContext(ctx, "psql", pgURL, "-qc", "CREATE DATABASE "+db).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("create database %s: %v\n%s", db, err, out)
	}
	defer func() {
		if out, err := exec.Command("psql", pgURL, "-qc", "DROP DATABASE "+db).CombinedOutput(); err != nil {
			progress("could not drop database %s (drop it by hand): %v\n%s", db, err, out)
		}
	}()
	dbURL, err := withDatabase(pgURL, db)
	if err != nil {
		return nil, err
	}
	// One -c each: psql runs a multi-statement -c in one transaction, where VACUUM may not run.
	if out, err := exec.CommandContext(ctx, "psql", dbURL, "-q", "-v", "ON_ERROR_STOP=1",
		"-c", "CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL)",
		"-c", "INSERT INTO accounts SELECT i, 0 FROM generate_series(1, 100000) AS i",
		"-c", "VACUUM ANALYZE accounts").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fill %s: %v\n%s", db, err, out)
	}
	script := filepath.Join(os.TempDir(), db+".sql")
	if err := os.WriteFile(script, []byte("\\set id random(1, 100000)\nUPDATE accounts SET balance = balance + 1 WHERE id = :id;\n"), 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(script)
	out, err := exec.CommandContext(ctx, pgbench, "-n", "-f", script, "-c", "8", "-j", "2", "-T", "10", dbURL).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	tps, latency, err := ParsePgbenchTPS(string(out))
	if err != nil {
		return nil, err
	}
	return &pgbenchResult{tps: tps, latencyMs: latency}, nil
}

// findPgbench prefers the PATH, then the newest Debian PostgreSQL's bin folder.
func findPgbench() (string, error) {
	if path, err := exec.LookPath("pgbench"); err == nil {
		return path, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(found) == 0 {
		return "", fmt.Errorf("pgbench not found: run hack/install-deps.sh (it comes with Debian's postgresql package)")
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// withDatabase swaps the database of a postgres:// URL.
func withDatabase(pgURL, db string) (string, error) {
	scheme, rest, ok := strings.Cut(pgURL, "://")
	if !ok {
		return "", fmt.Errorf("KSHOP_TEST_POSTGRES_URL=%q is not a postgres:// URL", pgURL)
	}
	query := ""
	if i := strings.Index(rest, "?"); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/" + db + query, nil
}
