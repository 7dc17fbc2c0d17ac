package controller

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kshop/kshop/services/platform/kafka"
)

// Options place the manager.
type Options struct {
	Namespace      string
	JWKSSecretName string
	// JWKSOwner names the Deployment that owns the Secret it creates (empty: none).
	JWKSOwner string
	Policy    RotationPolicy
	// IdentitySecretName and IdentityConfigMap, when set, are where the
	// gateway's identity keys and their public half are kept, rotated by
	// IdentityPolicy.
	IdentitySecretName, IdentityConfigMap string
	IdentityPolicy                        RotationPolicy
	// MetricsAddr and ProbeAddr serve /metrics and /healthz, /readyz ("0" turns one off).
	MetricsAddr, ProbeAddr string
	// LeaderElection makes one replica of several do the work, holding the
	// Lease LeaderElectionID (default kshop-controller).
	LeaderElection   bool
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election (zero: defaults).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Now is the clock of the key rotation; nil means time.Now.
	Now func() time.Time
	// Kafka and AMQPURL (credentials included) reach the brokers whose
	// topology the labelled ConfigMaps describe; an empty one leaves that kind
	// unmanaged.
	Kafka   kafka.Connection
	AMQPURL string
	// TopologyResync is how often every topology is checked again (zero: 5 min).
	TopologyResync time.Duration
	// TopologyConfigMaps names the topology documents the controller keeps
	// (the chart's); empty: every ConfigMap labelled TopologyLabel in
	// Namespace, which needs list and watch on all its ConfigMaps.
	TopologyConfigMaps []string
	// SeveralPerProcess allows more than one manager in a process (tests run
	// two to watch the election); their controllers then share metric names.
	SeveralPerProcess bool
}

// NewManager builds the manager: the JWKS rotation (auth's keys, and the
// gateway's identity keys when named) and the messaging topology registered,
// health checks and metrics, leader election by a Lease. It watches the
// Secrets and ConfigMaps it keeps by name and label, and reads them by name:
// no other Secret of the namespace ever reaches its memory.
func NewManager(cfg *rest.Config, o Options) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	opts := ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{o.Namespace: {}},
			// The reconcilers watch through informers of their own
			// (watchScoped) and read uncached; should anything still ask the
			// manager's cache for these kinds, it holds labelled objects only.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}:    {Label: labelled(JWKSLabel)},
				&corev1.ConfigMap{}: {Label: labelled(TopologyLabel)},
			},
		},
		Client:                  client.Options{Cache: &client.CacheOptions{DisableFor: uncached}},
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        cmp.Or(o.LeaderElectionID, "kshop-controller"),
		LeaderElectionNamespace: o.Namespace,
		// A new leader starts at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	}
	if o.SeveralPerProcess {
		skip := true
		opts.Controller = config.Controller{SkipNameValidation: &skip}
	}
	if o.LeaseDuration > 0 {
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	r := &JWKSReconciler{Client: mgr.GetClient(), Namespace: o.Namespace, SecretName: o.JWKSSecretName, Policy: o.Policy, Now: o.Now,
		OwnerDeployment: o.JWKSOwner, Reader: mgr.GetAPIReader()}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if o.IdentitySecretName != "" {
		identity := &JWKSReconciler{Client: mgr.GetClient(), Namespace: o.Namespace, SecretName: o.IdentitySecretName, PublicConfigMap: o.IdentityConfigMap,
			Name: "identity-keys", Label: IdentityKeysLabel, Policy: o.IdentityPolicy, Now: o.Now, OwnerDeployment: o.JWKSOwner, Reader: mgr.GetAPIReader()}
		if err := identity.SetupWithManager(mgr); err != nil {
			return nil, err
		}
	}
	brokers := map[string]TopologyBroker{}
	if o.Kafka.Brokers != "" {
		brokers[TopologyKafka] = KafkaBroker{Connection: o.Kafka}
	}
	if o.AMQPURL != "" {
		brokers[TopologyRabbitMQ] = RabbitMQBroker{URL: o.AMQPURL}
	}
	resync := o.TopologyResync
	if resync <= 0 {
		resync = 5 * time.Minute
	}
	// With no broker and no document named there is nothing to keep, and no
	// reason to watch ConfigMaps (the chart's Role then names none).
	if len(brokers) == 0 && len(o.TopologyConfigMaps) == 0 {
		return mgr, nil
	}
	topology := &TopologyReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kshop-controller"), Brokers: brokers, Resync: resync,
		Namespace: o.Namespace, Names: slices.DeleteFunc(slices.Clone(o.TopologyConfigMaps), func(n string) bool { return n == "" })}
	if err := topology.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	mgr.GetLogger().Info("topology brokers", "served", describeBrokers(brokers), "resync", resync)
	return mgr, nil
}
