// Command gateway runs the gateway service (services/gateway); configuration
// comes from KSHOP_GATEWAY_* variables (docs/gateway.md).
package main

import (
	"os"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/process"
)

func main() {
	binaries.Gateway(gateway.Prefix, gateway.Config{}).HelpIfAsked(os.Args[1:])
	var cfg gateway.Config
	if err := config.Load(gateway.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	p := process.Start("gateway", gateway.Prefix, cfg.Log, cfg.OTel)
	defer p.Close()

	app, err := gateway.New(cfg, p.Logger, p.Telemetry.Registry)
	if err != nil {
		config.Exit(err)
	}
	p.Logger.Info("gateway service starting", "addr", cfg.HTTPAddr)
	if err := app.Run(p.Context); err != nil {
		p.Fail("gateway service stopped", err)
	}
}
