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

// On another address of this machine the broker listens and advertises there,
// so clients that can reach only that address (pods) are sent back to it.
func TestTheDevelopmentBrokerAdvertisesTheAddressItListensOn(t *testing.T) {
	b, err := startDevKafka(DevKafkaConfig{Addr: "127.0.0.2:0"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if addrs := b.ListenAddrs(); len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.2:") {
		t.Fatalf("listens on %v, want 127.0.0.2", addrs)
	}
}
