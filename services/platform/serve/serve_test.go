package serve_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/serve"
	"github.com/kshop/kshop/services/platform/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestWorkStartsAfterMigrationsAndStopsWithTheProcess(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	migrations := pg.Migrations{Source: "lifecycle_test", FS: fstest.MapFS{
		"0001_marks.sql": {Data: []byte("-- +goose Up\nCREATE TABLE marks (name text);")},
	}}
	closed := make(chan struct{})
	s := &serve.Service{
		Handler: http.NotFoundHandler(), ShutdownTimeout: time.Second, Logger: quiet,
		DB: pool, Migrations: []pg.Migrations{migrations},
		AfterMigrations: []func(context.Context) error{func(ctx context.Context) error {
			// The table exists when this runs.
			if _, err := pool.Exec(ctx, `INSERT INTO marks VALUES ('worker')`); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err() // stopping is not an error
		}},
		Close: func() { close(closed) },
	}
	if s.MigrationsApplied(context.Background()) == nil {
		t.Fatal("ready before migrating")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	testenv.WaitFor(t, 10*time.Second, "the worker's mark", func() bool {
		var n int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM marks`).Scan(&n)
		return n == 1
	})
	if err := s.MigrationsApplied(context.Background()); err != nil {
		t.Fatalf("not ready after migrating: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil on a normal stop", err)
	}
	<-closed
}

func TestAFailingPartStopsTheService(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	broken := errors.New("broker topology refused")
	s := &serve.Service{
		Handler: http.NotFoundHandler(), ShutdownTimeout: time.Second, Logger: quiet, DB: pool,
		Background: []func(context.Context) error{func(context.Context) error { return broken }},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), ln); !errors.Is(err, broken) {
		t.Fatalf("Serve = %v, want the failing part's error", err)
	}
}

// Run serves the metrics handler on the metrics address beside the API, and
// a metrics address that cannot be had stops the start, naming its setting.
func TestRunServesTheMetricsPortBesideTheAPI(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "the metrics") })
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := &serve.Service{Handler: http.NotFoundHandler(), ShutdownTimeout: time.Second, Logger: quiet, DB: pool,
		Metrics: metrics, MetricsAddr: busy.Addr().String(), MetricsAddrVar: "KSHOP_TEST_METRICS_ADDR"}
	api := free()
	if err := s.Run(context.Background(), api, "KSHOP_TEST_HTTP_ADDR"); err == nil || !strings.Contains(err.Error(), "KSHOP_TEST_METRICS_ADDR") {
		t.Fatalf("Run with a busy metrics address = %v, want an error naming KSHOP_TEST_METRICS_ADDR", err)
	}
	// The API port it had opened is free again.
	if ln, err := net.Listen("tcp", api); err != nil {
		t.Fatalf("the API port stayed taken: %v", err)
	} else {
		ln.Close()
	}

	s = &serve.Service{Handler: http.NotFoundHandler(), ShutdownTimeout: time.Second, Logger: quiet, DB: pool,
		Metrics: metrics, MetricsAddr: free(), MetricsAddrVar: "KSHOP_TEST_METRICS_ADDR"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, api, "KSHOP_TEST_HTTP_ADDR") }()
	get := func(addr string) (int, string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v", addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if status, body := get(s.MetricsAddr); status != http.StatusOK || body != "the metrics" {
		t.Errorf("the metrics port answered %d %q", status, body)
	}
	if status, _ := get(api); status != http.StatusNotFound {
		t.Errorf("the API port answered %d to /metrics, want its own handler's 404", status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after the context ended", err)
	}
}
