package controller_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/tlstest"
)

// A managed Kafka wants TLS and SASL from the controller's admin client too.
func TestKafkaTopologyReachesASecuredCluster(t *testing.T) {
	ca := tlstest.NewCA(t)
	const user, password = "kshop-controller", "s3cr:et@/"
	brokers := kafkatest.NewCluster(t, kafkatest.WithTLS(ca.ServerConfig(t, "127.0.0.1")), kafkatest.WithSASL(kafka.SASLSCRAMSHA256, user, password))
	conn := kafka.Connection{Brokers: brokers, TLS: true, TLSCAFile: ca.File, SASLMechanism: kafka.SASLSCRAMSHA256, SASLUsername: user, SASLPassword: password}
	const doc = "topics:\n  - {name: secured-orders, partitions: 2}\n"

	out, err := controller.KafkaBroker{Connection: conn}.Apply(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(out.Changes, "created topic secured-orders") {
		t.Fatalf("changes %v, want the topic created", out.Changes)
	}

	wrong := conn
	wrong.SASLPassword += "x"
	if _, err := (controller.KafkaBroker{Connection: wrong, Timeout: 3 * time.Second}).Apply(context.Background(), doc); err == nil {
		t.Fatal("Apply with a wrong password reached the cluster")
	}
}
