// Command auth runs the auth service (services/auth); configuration comes from
// KSHOP_AUTH_* variables (README, "Configuration").
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/telemetry"
)

func main() {
	var cfg auth.Config
	if err := config.Load(auth.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	level, err := logx.ParseLevel(cfg.Log.Level)
	if err != nil {
		config.Exit(fmt.Errorf("config: %s_LOG_LEVEL: %w", auth.Prefix, err))
	}
	logger := logx.New(os.Stdout, "auth", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg.OTel.ServiceName = "auth"
	tel, err := telemetry.Setup(ctx, cfg.OTel)
	if err != nil {
		config.Exit(err)
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(shutdownCtx)
	}()

	app, err := auth.New(cfg, logger, tel.Registry)
	if err != nil {
		config.Exit(err)
	}
	logger.Info("auth service starting", "addr", cfg.HTTPAddr)
	if err := app.Run(ctx); err != nil {
		logger.Error("auth service stopped", "error", err)
		os.Exit(1)
	}
}
