package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/kafka"
)

func TestConfigRefusesARotationThatCannotPropagate(t *testing.T) {
	ok := Config{Namespace: "kshop", KeyAlgorithm: "EdDSA", RotationPeriod: 168 * time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Hour, Grace: 15 * time.Minute, TopologyResync: 5 * time.Minute}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"period shorter than propagation": func(c *Config) { c.RotationPeriod = 5 * time.Minute },
		"HMAC keys":                       func(c *Config) { c.KeyAlgorithm = "HS256" },
		"no token lifetime":               func(c *Config) { c.TokenLifetime = 0 },
		"topology re-checked constantly":  func(c *Config) { c.TopologyResync = 10 * time.Millisecond },
		"identity keys without their public ConfigMap": func(c *Config) {
			c.IdentitySecret, c.IdentityRotationPeriod, c.IdentityTokenLifetime = "shop-identity-keys", 24*time.Hour, time.Minute
		},
		"identity keys rotated faster than they propagate": func(c *Config) {
			c.IdentitySecret, c.IdentityConfigMap, c.IdentityRotationPeriod, c.IdentityTokenLifetime = "k", "k-public", 5*time.Minute, time.Minute
		},
	} {
		c := ok
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "KSHOP_CONTROLLER_") {
			t.Errorf("%s: %v, want an error naming the variable", name, err)
		}
	}
	if p := ok.Policy(); p.Period != ok.RotationPeriod || p.TokenLifetime != time.Hour || p.Grace != 15*time.Minute {
		t.Fatalf("policy %+v", p)
	}
	withIdentity := ok
	withIdentity.IdentitySecret, withIdentity.IdentityConfigMap, withIdentity.IdentityRotationPeriod, withIdentity.IdentityTokenLifetime = "k", "k-public", 24*time.Hour, time.Minute
	if err := withIdentity.Validate(); err != nil {
		t.Fatal(err)
	}
	if p := withIdentity.IdentityPolicy(); p.Period != 24*time.Hour || p.TokenLifetime != time.Minute || p.PropagationDelay != ok.PropagationDelay {
		t.Fatalf("identity policy %+v", p)
	}
}

// The brokers are optional: none configured leaves topology alone; the settings
// of one that is configured are checked as in the services.
func TestConfigChecksTheBrokersItIsGiven(t *testing.T) {
	ok := Config{Namespace: "kshop", KeyAlgorithm: "EdDSA", RotationPeriod: 168 * time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Hour, Grace: 15 * time.Minute, TopologyResync: 5 * time.Minute}
	if err := ok.Validate(); err != nil {
		t.Fatalf("no brokers: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"SASL without brokers": {func(c *Config) {
			c.Kafka = kafka.Connection{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "p"}
		},
			"KSHOP_CONTROLLER_KAFKA_BROKERS is required but not set"},
		"unknown mechanism": {func(c *Config) { c.Kafka = kafka.Connection{Brokers: "k:9092", SASLMechanism: "OAUTHBEARER"} },
			"KSHOP_CONTROLLER_KAFKA_SASL_MECHANISM"},
		"AMQP user without URL": {func(c *Config) { c.AMQP = amqp.Config{Username: "u", Password: "p"} },
			"KSHOP_CONTROLLER_AMQP_URL is required but not set"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want %q", name, err, tc.want)
		}
	}
	c := ok
	c.Kafka = kafka.Connection{Brokers: "k:9093", TLS: true, SASLMechanism: "SCRAM-SHA-256", SASLUsername: "controller", SASLPassword: "p"}
	c.AMQP = amqp.Config{URL: "amqps://rabbit:5671/", Username: "controller", Password: "p@ss"}
	if err := c.Validate(); err != nil {
		t.Fatalf("managed brokers: %v", err)
	}
}

func TestTopologyDocumentsNameTheFieldInError(t *testing.T) {
	for doc, want := range map[string]string{
		"topics:\n  - {name: a, partitions: 0}\n":                               "topics[0].partitions",
		"topics:\n  - {name: 'a b', partitions: 1}\n":                           "topics[0].name",
		"topics:\n  - {name: a, partitions: 1}\n  - {name: a, partitions: 2}\n": "listed twice",
		"topics:\n  - {name: a, partitions: 1, replicas: 3}\n":                  "unknown field",
	} {
		if _, err := ParseKafkaTopology(doc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", doc, err, want)
		}
	}
	for doc, want := range map[string]string{
		"exchanges:\n  - {name: e, type: x-delayed-message}\n": "exchanges[0].type",
		"queues:\n  - {name: amq.q, type: quorum}\n":           "queues[0].name",
		"queues:\n  - {name: q, type: stream}\n":               "queues[0].type",
		"delayQueues:\n  - {name: d, delay: 0s}\n":             "delayQueues[0].delay",
		"delayQueues:\n  - {name: d, delay: soon}\n":           "duration",
		"bindings:\n  - {exchange: e}\n":                       "bindings[0]",
	} {
		if _, err := ParseRabbitMQTopology(doc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", doc, err, want)
		}
	}
	good, err := ParseRabbitMQTopology("delayQueues:\n  - {name: order-reminder.delay.4h, delay: 4h, exchange: orders, routingKey: order.reminder}\n")
	if err != nil || good.DelayQueues[0].Delay.Duration != 4*time.Hour {
		t.Fatalf("%+v, %v", good, err)
	}
}
