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
	"github.com/kshop/kshop/services/platform/tokens"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "generate-jwks" {
		generateJWKS(os.Args[2:])
		return
	}
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

// generateJWKS prints a private JWKS with one new key, for a Secret where the
// controller does not manage keys: auth generate-jwks [EdDSA|ES256].
func generateJWKS(args []string) {
	alg := tokens.EdDSA
	if len(args) > 0 {
		alg = args[0]
	}
	now := time.Now()
	key, err := tokens.GenerateKey(alg, now, now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "generate-jwks:", err)
		os.Exit(2)
	}
	doc, err := tokens.KeySet{Keys: []tokens.Key{key}}.MarshalJWKS(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "generate-jwks:", err)
		os.Exit(1)
	}
	fmt.Println(string(doc))
}
