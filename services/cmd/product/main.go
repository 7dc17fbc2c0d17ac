// Command product runs the product service (services/product); configuration
// comes from KSHOP_PRODUCT_* variables (docs/product.md).
package main

import (
	"os"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/process"
	"github.com/kshop/kshop/services/product"
)

func main() {
	binaries.Product(product.Prefix, product.Config{}).HelpIfAsked(os.Args[1:])
	var cfg product.Config
	if err := config.Load(product.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	p := process.Start("product", product.Prefix, cfg.Log, cfg.OTel)
	defer p.Close()

	app, err := product.New(cfg, p.Logger, p.Telemetry.Registry)
	if err != nil {
		config.Exit(err)
	}
	p.Logger.Info("product service starting", "addr", cfg.HTTPAddr)
	if err := app.Run(p.Context); err != nil {
		p.Fail("product service stopped", err)
	}
}
