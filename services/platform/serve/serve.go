// Package serve runs one service's own parts in the order that keeps it
// available: the HTTP server at once (so probes answer and say what is missing),
// the database migrations in the background with retries, and the work that
// needs the tables (relays, consumers) only once they are applied. What the
// binary does around it (logger, signals, telemetry) is package process.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/pg"
)

// Service describes the parts of one service process.
type Service struct {
	Handler         http.Handler
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// DB receives Migrations, applied under the advisory lock with retries.
	DB         *pgxpool.Pool
	Migrations []pg.Migrations
	// Background work starts at once (declaring broker topology, for example).
	Background []func(context.Context) error
	// AfterMigrations work starts once the migrations are applied.
	AfterMigrations []func(context.Context) error
	// Close releases connections when Serve returns.
	Close func()
	// Metrics is served on MetricsAddr (MetricsAddrVar names the setting in
	// errors) beside the API; an empty address serves no metrics port.
	Metrics                     http.Handler
	MetricsAddr, MetricsAddrVar string

	migrated atomic.Bool
}

// MigrationsApplied is a readiness check: not ready until the tables exist.
func (s *Service) MigrationsApplied(context.Context) error {
	if !s.migrated.Load() {
		return errors.New("database migrations not applied yet")
	}
	return nil
}

// Run listens on addr (and the metrics port) and serves until ctx ends;
// addrVar names the setting in errors.
func (s *Service) Run(ctx context.Context, addr, addrVar string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", addrVar, addr, err)
	}
	if s.MetricsAddr == "" {
		return s.Serve(ctx, ln)
	}
	metrics, err := net.Listen("tcp", s.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("%s=%s: %w", s.MetricsAddrVar, s.MetricsAddr, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.ServeMetrics(ctx, metrics) })
	g.Go(func() error { return s.Serve(ctx, ln) })
	return g.Wait()
}

// ServeMetrics serves the metrics port on a listener the caller opened until ctx ends.
func (s *Service) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return httpx.ServeListener(ctx, ln, s.Metrics, s.ShutdownTimeout, s.Logger)
}

// Serve runs every part until ctx ends or one fails, then stops the others
// (the HTTP server gracefully) and calls Close.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	if s.Close != nil {
		defer s.Close()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpx.ServeListener(ctx, ln, s.Handler, s.ShutdownTimeout, s.Logger) })
	for _, work := range s.Background {
		g.Go(func() error { return ignoreCancel(ctx, work(ctx)) })
	}
	g.Go(func() error {
		if err := pg.MigrateWithRetry(ctx, s.DB, s.Logger, s.Migrations...); err != nil {
			return ignoreCancel(ctx, err)
		}
		s.migrated.Store(true)
		after, ctx := errgroup.WithContext(ctx)
		for _, work := range s.AfterMigrations {
			after.Go(func() error { return ignoreCancel(ctx, work(ctx)) })
		}
		return after.Wait()
	})
	return g.Wait()
}

// ignoreCancel drops the errors that only say the process is stopping.
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
