// Command kshop runs the whole platform in one process for `make run`: the
// development Kafka-protocol broker and every service that has landed, each on
// its own port with its own configuration prefix (KSHOP_AUTH_*, ...), exactly as
// the one-service binaries would run them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Config is read from KSHOP_* environment variables.
type Config struct {
	DevKafka DevKafkaConfig   `envconfig:"DEV_KAFKA"`
	Log      logx.Config      `envconfig:"LOG"`
	OTel     telemetry.Config `envconfig:"OTEL"`
}

func main() {
	var cfg Config
	if err := config.Load("KSHOP", &cfg); err != nil {
		config.Exit(err)
	}
	var authCfg auth.Config
	if err := config.Load(auth.Prefix, &authCfg); err != nil {
		config.Exit(err)
	}
	level, err := logx.ParseLevel(cfg.Log.Level)
	if err != nil {
		config.Exit(fmt.Errorf("config: KSHOP_LOG_LEVEL: %w", err))
	}
	logger := logx.New(os.Stdout, "kshop", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg.OTel.ServiceName = "kshop"
	tel, err := telemetry.Setup(ctx, cfg.OTel)
	if err != nil {
		config.Exit(err)
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(shutdownCtx)
	}()

	broker, err := startDevKafka(cfg.DevKafka, logger)
	if err != nil {
		logger.Error("start the development Kafka broker", "error", err)
		os.Exit(1)
	}
	defer broker.Close()

	// Each service keeps its own registry, served on its own /metrics, as it
	// would be in its own pod.
	authApp, err := auth.New(authCfg, serviceLogger(level, "auth"), prometheus.NewRegistry())
	if err != nil {
		config.Exit(err)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return authApp.Run(ctx) })
	logger.Info("platform running", "auth", authCfg.HTTPAddr)
	if err := g.Wait(); err != nil {
		logger.Error("a service stopped", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}

func serviceLogger(level slog.Level, service string) *slog.Logger {
	return logx.New(os.Stdout, service, level)
}
