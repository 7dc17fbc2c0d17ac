package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tlstest"
)

// The password has the characters that break naive quoting or URL building.
const saslUser, saslPassword = "kshop-order", `p@ss:w/rd%20"'`

// A managed Kafka wants SASL, TLS or both: producer, consumer (with its
// dead-letter producer) and admin client all reach such a cluster.
func TestSecuredClusterRoundTrip(t *testing.T) {
	ca := tlstest.NewCA(t)
	for name, tc := range map[string]struct {
		cluster []kafkatest.Option
		conn    kafka.Connection
	}{
		"SASL PLAIN in the open": {
			[]kafkatest.Option{kafkatest.WithSASL(kafka.SASLPlain, saslUser, saslPassword)},
			kafka.Connection{SASLMechanism: kafka.SASLPlain, SASLUsername: saslUser, SASLPassword: saslPassword}},
		"SCRAM-SHA-256 in the open": {
			[]kafkatest.Option{kafkatest.WithSASL(kafka.SASLSCRAMSHA256, saslUser, saslPassword)},
			kafka.Connection{SASLMechanism: kafka.SASLSCRAMSHA256, SASLUsername: saslUser, SASLPassword: saslPassword}},
		"TLS with a private CA": {
			[]kafkatest.Option{kafkatest.WithTLS(ca.ServerConfig(t, "127.0.0.1", "localhost"))},
			kafka.Connection{TLS: true, TLSCAFile: ca.File}},
		"SCRAM-SHA-512 over TLS": {
			[]kafkatest.Option{kafkatest.WithTLS(ca.ServerConfig(t, "127.0.0.1", "localhost")), kafkatest.WithSASL(kafka.SASLSCRAMSHA512, saslUser, saslPassword)},
			kafka.Connection{TLS: true, TLSCAFile: ca.File, SASLMechanism: kafka.SASLSCRAMSHA512, SASLUsername: saslUser, SASLPassword: saslPassword}},
	} {
		t.Run(name, func(t *testing.T) {
			conn := tc.conn
			conn.Brokers = kafkatest.NewCluster(t, append(tc.cluster, kafkatest.WithTopics(3, "secured"))...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got := &seen{}
			consume(t, kafka.ConsumerConfig{Connection: conn, GroupID: "secured", Topics: []string{"secured"}},
				func(ctx context.Context, m kafka.Message) error { got.add(ctx, m); return nil })
			p, err := kafka.NewProducer(kafka.ProducerConfig{Connection: conn}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			testenv.WaitFor(t, 20*time.Second, "the producer to be ready", func() bool { return p.Ready(ctx) == nil })
			if err := p.Publish(ctx, kafka.Message{Topic: "secured", Key: []byte("1"), Value: []byte("over a secured connection")}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			testenv.WaitFor(t, 30*time.Second, "the message through the consumer", func() bool { return len(got.values()) == 1 })
		})
	}
}

// Wrong credentials, an untrusted or misnamed certificate, or a client that
// skips TLS or SASL never get an answer from the cluster.
func TestSecuredClusterRefusesWhatDoesNotMatch(t *testing.T) {
	ca, otherCA := tlstest.NewCA(t), tlstest.NewCA(t)
	saslCluster := kafkatest.NewCluster(t, kafkatest.WithSASL(kafka.SASLPlain, saslUser, saslPassword))
	tlsCluster := kafkatest.NewCluster(t, kafkatest.WithTLS(ca.ServerConfig(t, "127.0.0.1", "localhost")))
	misnamedCluster := kafkatest.NewCluster(t, kafkatest.WithTLS(ca.ServerConfig(t, "kafka.example.com")))
	for name, conn := range map[string]kafka.Connection{
		"wrong password":               {Brokers: saslCluster, SASLMechanism: kafka.SASLPlain, SASLUsername: saslUser, SASLPassword: saslPassword + "x"},
		"unknown user":                 {Brokers: saslCluster, SASLMechanism: kafka.SASLPlain, SASLUsername: "nobody", SASLPassword: saslPassword},
		"no SASL":                      {Brokers: saslCluster},
		"untrusted CA":                 {Brokers: tlsCluster, TLS: true, TLSCAFile: otherCA.File},
		"no TLS":                       {Brokers: tlsCluster},
		"certificate for another host": {Brokers: misnamedCluster, TLS: true, TLSCAFile: ca.File},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := kafka.NewProducer(kafka.ProducerConfig{Connection: conn}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := p.Ready(ctx); err == nil {
				t.Fatal("Ready = nil: the cluster answered")
			}
		})
	}
	// The same settings, right, do reach both clusters: the refusals above are
	// about the settings, not a cluster that never answers.
	for name, conn := range map[string]kafka.Connection{
		"sasl": {Brokers: saslCluster, SASLMechanism: kafka.SASLPlain, SASLUsername: saslUser, SASLPassword: saslPassword},
		"tls":  {Brokers: tlsCluster, TLS: true, TLSCAFile: ca.File},
	} {
		p, err := kafka.NewProducer(kafka.ProducerConfig{Connection: conn}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 20*time.Second, name+" with the right settings to be ready", func() bool { return p.Ready(context.Background()) == nil })
		p.Close()
	}
}
