package e2e_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kshop/kshop/services/loadgen"
)

// BenchmarkAllInOneProcess runs the binary of `make run`, every service and
// the development Kafka broker in one process, under the load of
// BenchmarkServiceProcesses, and reports its memory idle, at the peak of the
// load and after it, as "kshop-<when>-{rss,anon,heap}-MB". The broker keeps
// every record in memory (as `make run` does when KSHOP_DEV_KAFKA_DATA_DIR is
// not set), so its share grows with the events of the load. One run whatever b.N.
func BenchmarkAllInOneProcess(b *testing.B) {
	rate, duration := processLoad(b)
	bin := buildCommands(b, "kshop")
	kafkaAddr := freeAddr(b)
	setup := newPlatformSetup(b, kafkaAddr)
	metrics := map[string]string{}
	for _, name := range serviceNames {
		metrics[name] = freeAddr(b)
	}
	var env []string
	for _, serviceEnv := range setup.env(b, metrics) {
		env = append(env, serviceEnv...)
	}
	env = append(env, "KSHOP_DEV_KAFKA_ADDR="+kafkaAddr, "KSHOP_LOG_LEVEL=warn")
	var readyAt []string
	for _, name := range serviceNames {
		readyAt = append(readyAt, setup.addr[name])
	}
	// Every service's registry carries the process's runtime metrics: the
	// gateway's port tells the live heap of all of them.
	kshop := startProcess(b, "kshop", filepath.Join(bin, "kshop"), env, metrics["gateway"], readyAt...)
	running := []*serviceProcess{kshop}

	time.Sleep(3 * time.Second) // background loops settle: consumers joined, relays idle
	reportMemory(b, running, "idle")
	stopSampling := samplePeaks(b, running)
	ctx, cancel := context.WithTimeout(context.Background(), duration+5*time.Minute)
	defer cancel()
	report, err := loadgen.Load(ctx, mixedLoad(setup, rate, duration, nil))
	peak := stopSampling()
	if err != nil {
		b.Fatalf("loadgen: %v", err)
	}
	reportLoad(b, &report)
	reportMemoryFigures(b, kshop.name, "load", peak[kshop.name])
	time.Sleep(afterTheLoad)
	reportMemory(b, running, "after")
}
