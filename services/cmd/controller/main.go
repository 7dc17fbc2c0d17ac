// Command controller runs the platform controller (services/controller):
// JWT signing-key rotation in a labelled Secret and the Kafka and RabbitMQ
// topology of labelled ConfigMaps, with leader election.
package main

import (
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/platform/config"
)

func main() {
	var cfg controller.Config
	if err := config.Load(controller.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	ctrl.SetLogger(zap.New(zap.JSONEncoder(), zap.UseDevMode(cfg.Log.Level == "debug")))
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
		fmt.Fprintln(os.Stderr, "controller stopped:", err)
		os.Exit(1)
	}
}
