// Package kafkatest starts an in-process cluster that speaks the Kafka protocol
// (franz-go's kfake) for tests: no broker package exists on these machines, and
// confluent-kafka-go talks to it as to any Kafka.
package kafkatest

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Option adjusts the cluster.
type Option func(*[]kfake.Opt)

// WithTopics creates topics with the given number of partitions before the test
// starts, so consumers that subscribe early see them.
func WithTopics(partitions int, names ...string) Option {
	return func(opts *[]kfake.Opt) { *opts = append(*opts, kfake.SeedTopics(int32(partitions), names...)) }
}

// WithTopicsAndDeadLetters creates each topic and its "<topic>.dlt" before the
// test starts, as the controller does in Kubernetes: a consumer that subscribes
// to a topic before it exists only notices it at its next metadata refresh.
func WithTopicsAndDeadLetters(partitions int, names ...string) Option {
	all := append([]string{}, names...)
	for _, n := range names {
		all = append(all, n+".dlt")
	}
	return WithTopics(partitions, all...)
}

// WithSASL makes the cluster accept only clients that authenticate as user with
// password over mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); the user may
// do anything.
func WithSASL(mechanism, user, password string) Option {
	return func(opts *[]kfake.Opt) {
		*opts = append(*opts, kfake.EnableSASL(), kfake.Superuser(mechanism, user, password))
	}
}

// WithTLS makes every listener speak TLS with cfg (tlstest makes one).
func WithTLS(cfg *tls.Config) Option {
	return func(opts *[]kfake.Opt) { *opts = append(*opts, kfake.TLS(cfg)) }
}

// NewCluster starts a 3-broker cluster on loopback, stops it when the test ends,
// and returns its bootstrap address list ("host:port,host:port,host:port"). Topics
// a client asks for are created on demand with 3 partitions, like a Kafka with
// auto.create.topics.enable.
func NewCluster(t testing.TB, options ...Option) string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3)}
	for _, o := range options {
		o(&opts)
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start the in-process Kafka cluster: %v", err)
	}
	t.Cleanup(cluster.Close)
	return strings.Join(cluster.ListenAddrs(), ",")
}
