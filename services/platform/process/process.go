// Package process is the start and the end every kshop binary shares: a JSON
// logger at the configured level, a context cancelled by SIGINT or SIGTERM, the
// OpenTelemetry providers, flushed on the way out, and a Go memory limit that
// follows the container's. It knows nothing of what
// the binary runs; a service's HTTP server, migrations and workers are package
// serve.
package process

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Process is a started binary.
type Process struct {
	// Context ends when the process is asked to stop.
	Context   context.Context
	Logger    *slog.Logger
	Level     slog.Level
	Telemetry *telemetry.Telemetry
	stop      context.CancelFunc
}

// Start sets the process up for service; configuration mistakes end it with
// the one-line message of config.Exit. prefix names the variables in messages.
func Start(service, prefix string, logCfg logx.Config, otel telemetry.Config) *Process {
	level, err := logx.ParseLevel(logCfg.Level)
	if err != nil {
		config.Exit(fmt.Errorf("config: %s_LOG_LEVEL: %w", prefix, err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	otel.ServiceName = service
	tel, err := telemetry.Setup(ctx, otel)
	if err != nil {
		stop()
		config.Exit(fmt.Errorf("config: %s_OTEL_*: %w", prefix, err))
	}
	logger := logx.New(os.Stdout, service, level)
	FollowContainerMemory(logger)
	return &Process{Context: ctx, Logger: logger, Level: level, Telemetry: tel, stop: stop}
}

// Close flushes telemetry (for at most 5 s) and releases the signal handler.
func (p *Process) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Telemetry.Shutdown(ctx); err != nil {
		p.Logger.Warn("flush telemetry", "error", err)
	}
	p.stop()
}

// Fail logs err and ends the process with status 1; deferred Close calls do
// not run, so Fail flushes telemetry itself.
func (p *Process) Fail(msg string, err error) {
	p.Logger.Error(msg, "error", err)
	p.Close()
	os.Exit(1)
}
