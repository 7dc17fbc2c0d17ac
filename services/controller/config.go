package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/tokens"
)

// Prefix is where the controller's environment variables live: KSHOP_CONTROLLER_*.
const Prefix = "KSHOP_CONTROLLER"

// Config is the controller's configuration.
type Config struct {
	Namespace      string `envconfig:"NAMESPACE" required:"true" desc:"Namespace of the Secrets, ConfigMaps and lease (the pod's own, from the downward API)."`
	JWKSSecretName string `envconfig:"JWKS_SECRET" default:"kshop-jwks" desc:"Secret holding the access-token signing keys."`
	// JWKSOwner is the controller's own Deployment: the Secret it creates is
	// owned by it, so removing the controller removes the keys.
	JWKSOwner        string        `envconfig:"JWKS_OWNER" desc:"The controller's own Deployment, made owner of the Secrets it creates; empty: no owner."`
	KeyAlgorithm     string        `envconfig:"KEY_ALGORITHM" default:"EdDSA" desc:"Algorithm of new keys: EdDSA or ES256."`
	RotationPeriod   time.Duration `envconfig:"ROTATION_PERIOD" default:"168h" desc:"How often a new access-token key is made."`
	PropagationDelay time.Duration `envconfig:"PROPAGATION_DELAY" default:"10m" desc:"How long a new key is published before it signs (every reader has it by then)."`
	TokenLifetime    time.Duration `envconfig:"TOKEN_LIFETIME" default:"1h" desc:"Lifetime of the access tokens auth signs: the same as KSHOP_AUTH_TOKEN_TTL (the chart sets both from jwks.tokenTTL); a retired key stays published this long plus GRACE."`
	Grace            time.Duration `envconfig:"GRACE" default:"15m" desc:"Extra time an old key stays published after the last token it signed expired."`
	// IdentitySecret, when set, names the Secret of the gateway's identity
	// keys (created and rotated like the JWKS Secret, mounted by the gateway
	// only); IdentityConfigMap the ConfigMap their public half is published
	// in (mounted by the services). Identity tokens live a minute, so their
	// keys can turn over faster than access-token keys.
	IdentitySecret         string        `envconfig:"IDENTITY_SECRET" desc:"Secret of the gateway's identity keys, created and rotated like the JWKS Secret; empty: not managed."`
	IdentityConfigMap      string        `envconfig:"IDENTITY_CONFIGMAP" desc:"ConfigMap the public half of the identity keys is published in (set with IDENTITY_SECRET)."`
	IdentityRotationPeriod time.Duration `envconfig:"IDENTITY_ROTATION_PERIOD" default:"24h" desc:"How often a new identity key is made."`
	IdentityTokenLifetime  time.Duration `envconfig:"IDENTITY_TOKEN_LIFETIME" default:"1m" desc:"Lifetime of identity tokens (the gateway's KSHOP_GATEWAY_IDENTITY_TTL)."`
	// Kafka and AMQP reach the brokers the topology ConfigMaps describe
	// (KSHOP_CONTROLLER_KAFKA_*, KSHOP_CONTROLLER_AMQP_*); leave one's
	// variables unset to leave that broker alone.
	Kafka          kafka.Connection `envconfig:"KAFKA"`
	AMQP           amqp.Config      `envconfig:"AMQP"`
	TopologyResync time.Duration    `envconfig:"TOPOLOGY_RESYNC" default:"5m" desc:"How often the broker topology is checked again without a change."`
	// TopologyConfigMaps names the topology documents to keep (the chart's
	// two), so the Role can name them; empty: every labelled ConfigMap.
	TopologyConfigMaps []string    `envconfig:"TOPOLOGY_CONFIGMAPS" desc:"Topology ConfigMaps to keep, by name; empty: every labelled ConfigMap."`
	MetricsAddr        string      `envconfig:"METRICS_ADDR" default:":8085" desc:"Address /metrics is served on."`
	ProbeAddr          string      `envconfig:"PROBE_ADDR" default:":8086" desc:"Address the health and readiness probes are served on."`
	LeaderElection     bool        `envconfig:"LEADER_ELECTION" default:"true" desc:"Elect one active replica through a Lease."`
	LeaderElectionID   string      `envconfig:"LEADER_ELECTION_ID" default:"kshop-controller" desc:"Name of the election's Lease (one per release, so two releases in a namespace do not wait on each other)."`
	Log                logx.Config `envconfig:"LOG"`
}

// Validate checks that the rotation can work: a key must have propagated
// before the next one arrives.
func (c *Config) Validate() error {
	var errs []error
	if c.KeyAlgorithm != tokens.EdDSA && c.KeyAlgorithm != tokens.ES256 {
		errs = append(errs, fmt.Errorf("%s_KEY_ALGORITHM=%q must be EdDSA or ES256", Prefix, c.KeyAlgorithm))
	}
	if c.PropagationDelay <= 0 || c.RotationPeriod <= c.PropagationDelay {
		errs = append(errs, fmt.Errorf("%s_ROTATION_PERIOD=%v must be longer than %s_PROPAGATION_DELAY=%v (> 0)", Prefix, c.RotationPeriod, Prefix, c.PropagationDelay))
	}
	if c.TokenLifetime <= 0 || c.Grace < 0 {
		errs = append(errs, fmt.Errorf("%s_TOKEN_LIFETIME must be positive and %s_GRACE not negative", Prefix, Prefix))
	}
	if (c.IdentitySecret == "") != (c.IdentityConfigMap == "") {
		errs = append(errs, fmt.Errorf("%s_IDENTITY_SECRET and %s_IDENTITY_CONFIGMAP go together: the services need the public half of the keys the gateway signs with", Prefix, Prefix))
	}
	if c.IdentitySecret != "" && (c.IdentityRotationPeriod <= c.PropagationDelay || c.IdentityTokenLifetime <= 0) {
		errs = append(errs, fmt.Errorf("%s_IDENTITY_ROTATION_PERIOD=%v must be longer than %s_PROPAGATION_DELAY=%v, and %s_IDENTITY_TOKEN_LIFETIME positive",
			Prefix, c.IdentityRotationPeriod, Prefix, c.PropagationDelay, Prefix))
	}
	if c.Kafka.Configured() {
		if err := c.Kafka.Validate(Prefix + "_KAFKA"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AMQP.Configured() {
		if err := c.AMQP.Validate(Prefix + "_AMQP"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TopologyResync < time.Second {
		errs = append(errs, fmt.Errorf("%s_TOPOLOGY_RESYNC=%v must be at least 1s", Prefix, c.TopologyResync))
	}
	return errors.Join(errs...)
}

// Policy is the rotation policy the configuration describes.
func (c *Config) Policy() RotationPolicy {
	return RotationPolicy{Algorithm: c.KeyAlgorithm, Period: c.RotationPeriod, PropagationDelay: c.PropagationDelay, TokenLifetime: c.TokenLifetime, Grace: c.Grace}
}

// IdentityPolicy is the rotation policy of the gateway's identity keys.
func (c *Config) IdentityPolicy() RotationPolicy {
	return RotationPolicy{Algorithm: c.KeyAlgorithm, Period: c.IdentityRotationPeriod, PropagationDelay: c.PropagationDelay, TokenLifetime: c.IdentityTokenLifetime, Grace: c.Grace}
}
