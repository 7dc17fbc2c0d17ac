// Command kshop runs the whole platform in one process for `make run`: today the
// development Kafka-protocol broker; the services join as they land.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/logx"
)

// Config is read from KSHOP_* environment variables.
type Config struct {
	DevKafka DevKafkaConfig `envconfig:"DEV_KAFKA"`
	Log      logx.Config    `envconfig:"LOG"`
}

func main() {
	var cfg Config
	if err := config.Load("KSHOP", &cfg); err != nil {
		config.Exit(err)
	}
	level, err := logx.ParseLevel(cfg.Log.Level)
	if err != nil {
		config.Exit(fmt.Errorf("config: KSHOP_LOG_LEVEL: %w", err))
	}
	logger := logx.New(os.Stdout, "kshop", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	broker, err := startDevKafka(cfg.DevKafka, logger)
	if err != nil {
		logger.Error("start the development Kafka broker", "error", err)
		os.Exit(1)
	}
	defer broker.Close()

	<-ctx.Done()
	logger.Info("stopping")
}
