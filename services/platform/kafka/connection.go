package kafka

import (
	"errors"
	"fmt"
	"os"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// SASL mechanisms a Connection can authenticate with (the names Kafka and
// librdkafka use).
const (
	SASLPlain       = "PLAIN"
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// Connection says where a Kafka cluster is and how to reach it: in the open, over
// TLS, with a SASL user, or both (a managed Kafka). Services hold it in a field
// named Kafka, so the variables read KSHOP_<SERVICE>_KAFKA_BROKERS, _KAFKA_TLS,
// _KAFKA_TLS_CA_FILE, _KAFKA_SASL_MECHANISM, _KAFKA_SASL_USERNAME and
// _KAFKA_SASL_PASSWORD.
type Connection struct {
	Brokers string `envconfig:"BROKERS" desc:"Kafka bootstrap servers, host:port comma-separated."`
	// TLS encrypts every connection and verifies the brokers' certificates
	// (and their host names) against TLSCAFile, or the system's roots.
	TLS       bool   `envconfig:"TLS" desc:"Encrypt connections and verify the brokers' certificates and host names."`
	TLSCAFile string `envconfig:"TLS_CA_FILE" desc:"CA certificate file (PEM) to verify the brokers with; empty: the system roots."`
	// SASLMechanism is empty (no authentication), PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512; the user name and password go with it.
	SASLMechanism string `envconfig:"SASL_MECHANISM" desc:"SASL mechanism: empty (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."`
	SASLUsername  string `envconfig:"SASL_USERNAME" desc:"SASL user name."`
	SASLPassword  string `envconfig:"SASL_PASSWORD" desc:"SASL password (a secret: give it from a Secret)."`
}

// Validate reports every mistake in the settings, one line each, naming the
// variables under prefix (KSHOP_ORDER_KAFKA: KSHOP_ORDER_KAFKA_BROKERS, ...).
// Brokers are required; a service for which Kafka is optional checks
// Configured first.
func (c Connection) Validate(prefix string) error {
	name := func(setting string) string { return prefix + "_" + setting }
	var errs []error
	if c.Brokers == "" {
		errs = append(errs, fmt.Errorf("%s is required but not set", name("BROKERS")))
	}
	if c.TLSCAFile != "" {
		if !c.TLS {
			errs = append(errs, fmt.Errorf("%s is set but %s is not true: a CA file only applies to TLS", name("TLS_CA_FILE"), name("TLS")))
		} else if _, err := os.Stat(c.TLSCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q cannot be read: %w", name("TLS_CA_FILE"), c.TLSCAFile, err))
		}
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			errs = append(errs, fmt.Errorf("%s or %s is set but %s is empty: name the mechanism (%s, %s or %s)",
				name("SASL_USERNAME"), name("SASL_PASSWORD"), name("SASL_MECHANISM"), SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512))
		}
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		if c.SASLUsername == "" {
			errs = append(errs, fmt.Errorf("%s is required with %s=%s", name("SASL_USERNAME"), name("SASL_MECHANISM"), c.SASLMechanism))
		}
		if c.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("%s is required with %s=%s", name("SASL_PASSWORD"), name("SASL_MECHANISM"), c.SASLMechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("%s=%q must be empty, %s, %s or %s", name("SASL_MECHANISM"), c.SASLMechanism, SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512))
	}
	return errors.Join(errs...)
}

// Configured reports whether any setting is given, for a process where Kafka is
// optional (the controller): an empty Connection means "no Kafka".
func (c Connection) Configured() bool { return c != Connection{} }

// SecurityProtocol is librdkafka's security.protocol for the settings.
func (c Connection) SecurityProtocol() string {
	switch {
	case c.TLS && c.SASLMechanism != "":
		return "SASL_SSL"
	case c.TLS:
		return "SSL"
	case c.SASLMechanism != "":
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// ClientConfig returns the librdkafka properties that reach the cluster, added to
// a client's own properties (own; may be nil). It fails on settings Validate
// would refuse, naming them as KAFKA_* for a caller that built the Connection
// by hand.
func (c Connection) ClientConfig(own ckafka.ConfigMap) (*ckafka.ConfigMap, error) {
	if err := c.Validate("KAFKA"); err != nil {
		return nil, err
	}
	m := ckafka.ConfigMap{}
	for k, v := range own {
		m[k] = v
	}
	// The connection's properties come last: no client setting can turn
	// encryption or authentication off.
	m["bootstrap.servers"] = c.Brokers
	m["security.protocol"] = c.SecurityProtocol()
	if c.TLS {
		// Without a CA file, librdkafka looks for the system's roots in the usual
		// places ("probe"); its statically linked OpenSSL knows no default path
		// of this system. Host names are verified (its default since 2.0).
		m["ssl.ca.location"] = "probe"
		if c.TLSCAFile != "" {
			m["ssl.ca.location"] = c.TLSCAFile
		}
	}
	if c.SASLMechanism != "" {
		m["sasl.mechanisms"] = c.SASLMechanism
		m["sasl.username"] = c.SASLUsername
		m["sasl.password"] = c.SASLPassword
	}
	return &m, nil
}
