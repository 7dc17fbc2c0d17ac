// Command kshop runs the whole platform in one process for `make run`: the
// development Kafka-protocol broker and every service that has landed, each on
// its own port with its own configuration prefix (KSHOP_AUTH_*, ...), exactly as
// the one-service binaries would run them.
//
// `kshop devkafka` runs the development broker alone, so it can be stopped and
// started on its own (make chaos does); with KSHOP_DEV_KAFKA_DATA_DIR set its
// topics and consumer offsets survive the restart.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/cmd/binaries/all"
	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/process"
	"github.com/kshop/kshop/services/platform/telemetry"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/product"
)

func main() {
	all.Kshop.HelpIfAsked(os.Args[1:])
	var cfg binaries.KshopConfig
	if err := config.Load(binaries.KshopPrefix, &cfg); err != nil {
		config.Exit(err)
	}
	if len(os.Args) > 1 {
		if os.Args[1] != "devkafka" {
			config.Exit(fmt.Errorf("usage: kshop [devkafka]   (unknown command %q)", os.Args[1]))
		}
		runDevKafka(cfg)
		return
	}
	var authCfg auth.Config
	if err := config.Load(auth.Prefix, &authCfg); err != nil {
		config.Exit(err)
	}
	var productCfg product.Config
	if err := config.Load(product.Prefix, &productCfg); err != nil {
		config.Exit(err)
	}
	var orderCfg order.Config
	if err := config.Load(order.Prefix, &orderCfg); err != nil {
		config.Exit(err)
	}
	var mailCfg mail.Config
	if err := config.Load(mail.Prefix, &mailCfg); err != nil {
		config.Exit(err)
	}
	var gatewayCfg gateway.Config
	if err := config.Load(gateway.Prefix, &gatewayCfg); err != nil {
		config.Exit(err)
	}
	p := process.Start("kshop", binaries.KshopPrefix, cfg.Log, cfg.OTel)
	defer p.Close()
	logger := p.Logger
	if err := shareIdentityKeys(&gatewayCfg.Identity, &productCfg.Identity, &orderCfg.Identity); err != nil {
		p.Fail("make the gateway's identity keys", err)
	}

	broker, err := startDevKafka(p.Context, cfg.DevKafka, logger)
	if err != nil {
		p.Fail("start the development Kafka broker", err)
	}
	defer broker.Close()

	// Each service keeps its own registry, served on its own metrics port, as it
	// would be in its own pod (with the process's runtime metrics in each).
	authApp, err := auth.New(authCfg, logx.New(os.Stdout, "auth", p.Level), serviceRegistry())
	if err != nil {
		config.Exit(err)
	}
	productApp, err := product.New(productCfg, logx.New(os.Stdout, "product", p.Level), serviceRegistry())
	if err != nil {
		config.Exit(err)
	}
	orderApp, err := order.New(orderCfg, logx.New(os.Stdout, "order", p.Level), serviceRegistry())
	if err != nil {
		config.Exit(err)
	}
	mailApp, err := mail.New(mailCfg, logx.New(os.Stdout, "mail", p.Level), serviceRegistry())
	if err != nil {
		config.Exit(err)
	}
	gatewayApp, err := gateway.New(gatewayCfg, logx.New(os.Stdout, "gateway", p.Level), serviceRegistry())
	if err != nil {
		config.Exit(err)
	}

	g, ctx := errgroup.WithContext(p.Context)
	g.Go(func() error { return authApp.Run(ctx) })
	g.Go(func() error { return productApp.Run(ctx) })
	g.Go(func() error { return orderApp.Run(ctx) })
	g.Go(func() error { return mailApp.Run(ctx) })
	g.Go(func() error { return gatewayApp.Run(ctx) })
	logger.Info("platform running", "gateway", gatewayCfg.HTTPAddr, "auth", authCfg.HTTPAddr, "product", productCfg.HTTPAddr, "order", orderCfg.HTTPAddr, "mail", mailCfg.HTTPAddr,
		"metrics", []string{gatewayCfg.MetricsAddr, authCfg.MetricsAddr, productCfg.MetricsAddr, orderCfg.MetricsAddr, mailCfg.MetricsAddr})
	if err := g.Wait(); err != nil {
		p.Fail("a service stopped", err)
	}
	logger.Info("stopped")
}

// shareIdentityKeys gives the gateway, when no key file is set, a key made
// for this run, and the services that have no key file of their own its
// public half: the identities the gateway passes on are signed and checked as
// in Kubernetes, with nothing to set up. A key file set for the gateway is
// used as it is (the services then need theirs).
func shareIdentityKeys(gateway *identity.IssuerConfig, services ...*identity.Config) error {
	if gateway.KeysFile != "" {
		return nil
	}
	keys, err := identity.GenerateKeys()
	if err != nil {
		return err
	}
	gateway.Keys = tokens.Static(keys)
	for _, s := range services {
		if s.KeysFile == "" {
			s.Keys = tokens.Static(keys.Public())
		}
	}
	return nil
}

func serviceRegistry() *prometheus.Registry {
	registry := prometheus.NewRegistry()
	telemetry.RegisterRuntime(registry)
	return registry
}
