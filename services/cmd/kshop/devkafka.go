package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/process"
)

// startDevKafka starts the development broker. Without a data directory it
// holds its records in memory and, until ctx ends, drops those every
// consumer group has read (dropConsumedRecordsUntil).
func startDevKafka(ctx context.Context, cfg binaries.DevKafkaConfig, logger *slog.Logger) (*kfake.Cluster, error) {
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("KSHOP_DEV_KAFKA_ADDR=%q is not host:port: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("KSHOP_DEV_KAFKA_ADDR=%q has no numeric port: %w", cfg.Addr, err)
	}
	// The broker has no authentication: it listens on one named address of this
	// machine (loopback, or the test cluster's bridge for pods), never on all.
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || ip.IsUnspecified()) {
		return nil, fmt.Errorf("KSHOP_DEV_KAFKA_ADDR=%q: name one address of this machine (127.0.0.1, or the test cluster's 10.213.0.1), not a host name or every interface", cfg.Addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake listens on 127.0.0.1; the broker advertises what it listens on.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
		kfake.DefaultNumPartitions(events.DefaultPartitions),
	}
	if cfg.SeedTopics {
		dead := make([]string, len(events.Topics))
		for i, t := range events.Topics {
			dead[i] = events.DeadLetterTopic(t)
		}
		opts = append(opts, kfake.SeedTopics(int32(events.DefaultPartitions), events.Topics...),
			kfake.SeedTopics(int32(events.DeadLetterPartitions), dead...))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	} else {
		// Small segments, so dropConsumedRecords frees memory as it goes.
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(inMemorySegmentBytes)}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.DataDir == "" {
		go dropConsumedRecordsUntil(ctx, cluster, logger)
	}
	logger.Info("development Kafka broker ready", "bootstrap", cluster.ListenAddrs(), "seeded_topics", cfg.SeedTopics)
	return cluster, nil
}

// runDevKafka is `kshop devkafka`: the broker alone until SIGINT or SIGTERM,
// then a clean close that writes its state to the data directory, if any.
func runDevKafka(cfg binaries.KshopConfig) {
	p := process.Start("devkafka", "KSHOP", cfg.Log, cfg.OTel)
	defer p.Close()
	if cfg.DevKafka.DataDir == "" {
		p.Logger.Warn("KSHOP_DEV_KAFKA_DATA_DIR is not set: a restart loses every topic")
	}
	broker, err := startDevKafka(p.Context, cfg.DevKafka, p.Logger)
	if err != nil {
		p.Fail("start the development Kafka broker", err)
	}
	<-p.Context.Done()
	broker.Close()
	p.Logger.Info("development Kafka broker stopped", "data_dir", cfg.DevKafka.DataDir)
}
