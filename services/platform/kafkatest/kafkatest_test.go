package kafkatest

import (
	"net"
	"strings"
	"testing"
)

func TestNewClusterListensOnThreeLoopbackBrokers(t *testing.T) {
	addrs := strings.Split(NewCluster(t, WithTopics(3, "seeded")), ",")
	if len(addrs) != 3 {
		t.Fatalf("bootstrap %v, want 3 brokers", addrs)
	}
	for _, addr := range addrs {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("broker %s is not on loopback", addr)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("broker %s: %v", addr, err)
		}
		conn.Close()
	}
}
