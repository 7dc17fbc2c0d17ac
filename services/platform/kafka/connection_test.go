package kafka_test

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/kshop/kshop/services/platform/kafka"
)

func TestClientConfigMapsTheSettingsToLibrdkafka(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte("not read here"), 0o600); err != nil {
		t.Fatal(err)
	}
	const brokers = "b1:9093,b2:9093"
	for name, tc := range map[string]struct {
		conn kafka.Connection
		want ckafka.ConfigMap
	}{
		"plaintext": {kafka.Connection{Brokers: brokers},
			ckafka.ConfigMap{"bootstrap.servers": brokers, "security.protocol": "PLAINTEXT"}},
		"tls with the system roots": {kafka.Connection{Brokers: brokers, TLS: true},
			ckafka.ConfigMap{"bootstrap.servers": brokers, "security.protocol": "SSL", "ssl.ca.location": "probe"}},
		"tls with a CA file": {kafka.Connection{Brokers: brokers, TLS: true, TLSCAFile: caFile},
			ckafka.ConfigMap{"bootstrap.servers": brokers, "security.protocol": "SSL", "ssl.ca.location": caFile}},
		"sasl plain in the open": {kafka.Connection{Brokers: brokers, SASLMechanism: "PLAIN", SASLUsername: "shop", SASLPassword: "p@ss:w/rd"},
			ckafka.ConfigMap{"bootstrap.servers": brokers, "security.protocol": "SASL_PLAINTEXT",
				"sasl.mechanisms": "PLAIN", "sasl.username": "shop", "sasl.password": "p@ss:w/rd"}},
		"scram over tls": {kafka.Connection{Brokers: brokers, TLS: true, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "shop", SASLPassword: "secret"},
			ckafka.ConfigMap{"bootstrap.servers": brokers, "security.protocol": "SASL_SSL", "ssl.ca.location": "probe",
				"sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "shop", "sasl.password": "secret"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.conn.ClientConfig(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(*got, tc.want) {
				t.Fatalf("ClientConfig =\n %v\nwant\n %v", *got, tc.want)
			}
		})
	}
}

func TestClientConfigKeepsTheClientsOwnPropertiesButNotOverSecurity(t *testing.T) {
	conn := kafka.Connection{Brokers: "b:9093", TLS: true, SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "p"}
	got, err := conn.ClientConfig(ckafka.ConfigMap{"group.id": "orders", "security.protocol": "PLAINTEXT"})
	if err != nil {
		t.Fatal(err)
	}
	if (*got)["group.id"] != "orders" || (*got)["security.protocol"] != "SASL_SSL" {
		t.Fatalf("ClientConfig = %v: want the group kept and SASL_SSL", *got)
	}
}

func TestValidateNamesEveryMistakeOnItsOwnLine(t *testing.T) {
	const p = "KSHOP_ORDER_KAFKA"
	for name, tc := range map[string]struct {
		conn kafka.Connection
		want []string
	}{
		"no brokers": {kafka.Connection{},
			[]string{"KSHOP_ORDER_KAFKA_BROKERS is required but not set"}},
		"unknown mechanism": {kafka.Connection{Brokers: "b:9092", SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "p"},
			[]string{`KSHOP_ORDER_KAFKA_SASL_MECHANISM="plain" must be empty, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`}},
		"sasl without credentials": {kafka.Connection{Brokers: "b:9092", SASLMechanism: "SCRAM-SHA-256"},
			[]string{"KSHOP_ORDER_KAFKA_SASL_USERNAME is required with KSHOP_ORDER_KAFKA_SASL_MECHANISM=SCRAM-SHA-256",
				"KSHOP_ORDER_KAFKA_SASL_PASSWORD is required with KSHOP_ORDER_KAFKA_SASL_MECHANISM=SCRAM-SHA-256"}},
		"sasl without password": {kafka.Connection{Brokers: "b:9092", SASLMechanism: "PLAIN", SASLUsername: "u"},
			[]string{"KSHOP_ORDER_KAFKA_SASL_PASSWORD is required with KSHOP_ORDER_KAFKA_SASL_MECHANISM=PLAIN"}},
		"credentials without mechanism": {kafka.Connection{Brokers: "b:9092", SASLUsername: "u", SASLPassword: "p"},
			[]string{"KSHOP_ORDER_KAFKA_SASL_USERNAME or KSHOP_ORDER_KAFKA_SASL_PASSWORD is set but KSHOP_ORDER_KAFKA_SASL_MECHANISM is empty"}},
		"CA file without TLS": {kafka.Connection{Brokers: "b:9092", TLSCAFile: "/etc/kafka/ca.pem"},
			[]string{"KSHOP_ORDER_KAFKA_TLS_CA_FILE is set but KSHOP_ORDER_KAFKA_TLS is not true"}},
		"CA file missing": {kafka.Connection{Brokers: "b:9092", TLS: true, TLSCAFile: "/nonexistent/ca.pem"},
			[]string{`KSHOP_ORDER_KAFKA_TLS_CA_FILE="/nonexistent/ca.pem" cannot be read`}},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.conn.Validate(p)
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate = %q: want %d lines", err, len(tc.want))
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d = %q\nwant prefix %q", i+1, lines[i], want)
				}
			}
			if _, err := tc.conn.ClientConfig(nil); err == nil {
				t.Error("ClientConfig accepted what Validate refuses")
			}
		})
	}
}

func TestValidateAcceptsEveryMechanism(t *testing.T) {
	for _, m := range []string{"", kafka.SASLPlain, kafka.SASLSCRAMSHA256, kafka.SASLSCRAMSHA512} {
		conn := kafka.Connection{Brokers: "b:9092", SASLMechanism: m}
		if m != "" {
			conn.SASLUsername, conn.SASLPassword = "u", "p"
		}
		if err := conn.Validate("KSHOP_X_KAFKA"); err != nil {
			t.Errorf("mechanism %q: %v", m, err)
		}
	}
}

func TestConfiguredMeansAnySettingGiven(t *testing.T) {
	if (kafka.Connection{}).Configured() {
		t.Error("an empty Connection counts as configured")
	}
	if !(kafka.Connection{TLS: true}).Configured() || !(kafka.Connection{Brokers: "b:9092"}).Configured() {
		t.Error("a Connection with settings counts as not configured")
	}
}
