package e2e_test

import (
	"path/filepath"
	"testing"
)

// BenchmarkAllInOneProcess runs the binary of `make run`, every service and
// the development Kafka broker in one process, under the load of
// BenchmarkServiceProcesses, and reports its memory idle, at the peak of the
// load and after it, as "kshop-<when>-{rss,anon,heap}-MB". The broker keeps
// its records in memory (as `make run` does when KSHOP_DEV_KAFKA_DATA_DIR is
// not set) until every consumer group has read them. One run whatever b.N.
func BenchmarkAllInOneProcess(b *testing.B) {
	rate, duration := processLoad(b)
	bin := buildCommands(b, "kshop")
	kafkaAddr := freeAddr(b)
	setup := newPlatformSetup(b, kafkaAddr)
	var env []string
	for _, serviceEnv := range setup.env(b) {
		env = append(env, serviceEnv...)
	}
	env = append(env, "KSHOP_DEV_KAFKA_ADDR="+kafkaAddr, "KSHOP_LOG_LEVEL=warn")
	var readyAt []string
	for _, name := range serviceNames {
		readyAt = append(readyAt, setup.addr[name])
	}
	// Every service's registry carries the process's runtime metrics: the
	// gateway's port tells the live heap of all of them.
	kshop := startProcess(b, "kshop", filepath.Join(bin, "kshop"), env, setup.metrics["gateway"], readyAt...)

	measureUnderLoad(b, setup, []*serviceProcess{kshop}, rate, duration, nil, nil)
}
