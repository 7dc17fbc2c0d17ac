// Command controller runs the platform controller (services/controller):
// JWT signing-key rotation in a labelled Secret and the Kafka and RabbitMQ
// topology of labelled ConfigMaps, with leader election.
package main

import (
	"fmt"
	"os"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/process"
)

func main() {
	binaries.Controller(controller.Prefix, controller.Config{}).HelpIfAsked(os.Args[1:])
	var cfg controller.Config
	if err := config.Load(controller.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	level, err := logx.ParseLevel(cfg.Log.Level)
	if err != nil {
		config.Exit(fmt.Errorf("config: %s_LOG_LEVEL: %w", controller.Prefix, err))
	}
	// The same JSON lines as every other kshop binary (service, level, msg,
	// trace ids), so one Loki query reads them all; controller-runtime logs
	// through logr, which hands its records to slog.
	logger := logx.New(os.Stderr, "controller", level)
	// Like every kshop binary: the Go heap gets three quarters of the
	// container's limit, the rest is for librdkafka and the binary's pages.
	process.FollowContainerMemory(logger)
	ctrl.SetLogger(logr.FromSlogHandler(logger.Handler()))
	var amqpURL string
	if cfg.AMQP.Configured() {
		url, err := cfg.AMQP.DialURL()
		if err != nil {
			config.Exit(fmt.Errorf("config: %w", err))
		}
		amqpURL = url
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		config.Exit(fmt.Errorf("kubernetes client configuration: %w", err))
	}
	mgr, err := controller.NewManager(restConfig, controller.Options{
		Namespace: cfg.Namespace, JWKSSecretName: cfg.JWKSSecretName, JWKSOwner: cfg.JWKSOwner, Policy: cfg.Policy(),
		IdentitySecretName: cfg.IdentitySecret, IdentityConfigMap: cfg.IdentityConfigMap, IdentityPolicy: cfg.IdentityPolicy(),
		MetricsAddr: cfg.MetricsAddr, ProbeAddr: cfg.ProbeAddr, LeaderElection: cfg.LeaderElection,
		LeaderElectionID: cfg.LeaderElectionID,
		Kafka:            cfg.Kafka, AMQPURL: amqpURL, TopologyResync: cfg.TopologyResync,
		TopologyConfigMaps: cfg.TopologyConfigMaps,
	})
	if err != nil {
		config.Exit(err)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		logger.Error("controller stopped", "error", err)
		os.Exit(1)
	}
}
