package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A development broker without a data directory holds every record in this
// process's memory; under a steady load `make run` grew by about 7 MB a
// minute. It drops what every consumer group has read instead: nothing a
// consumer still needs goes, and the memory stays flat while they keep up.
const (
	// consumedRecordsSweep is how often the read records are dropped.
	consumedRecordsSweep = 30 * time.Second
	// inMemorySegmentBytes is the size of the broker's log segments in
	// memory: it frees a whole segment at a time, and its default (100 MiB
	// a partition) would free nothing in a development session.
	inMemorySegmentBytes = 1 << 20
)

// dropConsumedRecordsUntil sweeps every consumedRecordsSweep until ctx ends.
// A failed sweep is logged and tried again at the next.
func dropConsumedRecordsUntil(ctx context.Context, broker *kfake.Cluster, logger *slog.Logger) {
	client, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		logger.Warn("the development broker keeps every record: no admin client", "error", err)
		return
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	ticker := time.NewTicker(consumedRecordsSweep)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if err := dropConsumedRecords(ctx, admin); err != nil && ctx.Err() == nil {
			logger.Warn("drop the records every consumer group has read", "error", err)
		}
	}
}

// dropConsumedRecords deletes, in each partition, the records before the
// lowest offset committed by the groups that consume its topic. A partition
// one of those groups has not committed yet keeps everything, and so does a
// topic no group has committed (dead letters, read by people).
func dropConsumedRecords(ctx context.Context, admin *kadm.Client) error {
	groups, err := admin.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list the consumer groups: %w", err)
	}
	if len(groups) == 0 {
		return nil
	}
	committed := map[string]map[int32][]int64{} // topic → partition → each group's offset
	groupsOf := map[string]int{}                // topic → groups that committed to it
	for _, fetched := range admin.FetchManyOffsets(ctx, groups.Groups()...) {
		if fetched.Err != nil {
			return fmt.Errorf("fetch the offsets of group %s: %w", fetched.Group, fetched.Err)
		}
		for topic, partitions := range fetched.Fetched {
			groupsOf[topic]++
			if committed[topic] == nil {
				committed[topic] = map[int32][]int64{}
			}
			for partition, offset := range partitions {
				if offset.Err == nil && offset.At >= 0 {
					committed[topic][partition] = append(committed[topic][partition], offset.At)
				}
			}
		}
	}
	deletable := kadm.Offsets{}
	for topic, partitions := range committed {
		for partition, offsets := range partitions {
			if len(offsets) < groupsOf[topic] {
				continue
			}
			deletable.AddOffset(topic, partition, slices.Min(offsets), -1)
		}
	}
	if len(deletable) == 0 {
		return nil
	}
	deleted, err := admin.DeleteRecords(ctx, deletable)
	if err != nil {
		return fmt.Errorf("delete the read records: %w", err)
	}
	return deleted.Error()
}
