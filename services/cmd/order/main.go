// Command order runs the order service (services/order); configuration
// comes from KSHOP_ORDER_* variables (docs/order.md).
package main

import (
	"os"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/process"
)

func main() {
	binaries.Order(order.Prefix, order.Config{}).HelpIfAsked(os.Args[1:])
	var cfg order.Config
	if err := config.Load(order.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	p := process.Start("order", order.Prefix, cfg.Log, cfg.OTel)
	defer p.Close()

	app, err := order.New(cfg, p.Logger, p.Telemetry.Registry)
	if err != nil {
		config.Exit(err)
	}
	p.Logger.Info("order service starting", "addr", cfg.HTTPAddr)
	if err := app.Run(p.Context); err != nil {
		p.Fail("order service stopped", err)
	}
}
