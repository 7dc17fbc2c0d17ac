package main

import (
	"log/slog"
	"strings"
	"testing"
)

// The unauthenticated development broker listens on one named address, never
// on every interface.
func TestTheDevelopmentBrokerRefusesEveryInterface(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:14099", ":14099", "[::]:14099", "kafka.example.com:14099", "127.0.0.1"} {
		if b, err := startDevKafka(DevKafkaConfig{Addr: addr}, slog.Default()); err == nil {
			b.Close()
			t.Errorf("%s was accepted", addr)
		} else if !strings.Contains(err.Error(), "KSHOP_DEV_KAFKA_ADDR") {
			t.Errorf("%s: the error does not name the setting: %v", addr, err)
		}
	}
	b, err := startDevKafka(DevKafkaConfig{Addr: "127.0.0.1:0"}, slog.Default())
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	b.Close()
}
