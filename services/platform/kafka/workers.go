package kafka

import (
	"context"
	"sync"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/kshop/kshop/services/platform/batch"
)

// partitionQueue is how many messages of one partition wait for its worker
// before the poll loop waits too. librdkafka holds the rest, fetched ahead.
const partitionQueue = 64

// partitionWorkers hands each message to the worker of its partition: one
// goroutine per partition, which handles its messages in order, so
// partitions proceed side by side and none waits for another's slow message.
// dispatch, drain and forget are called from the poll loop only (the
// rebalance callback runs inside Poll).
type partitionWorkers struct {
	ctx    context.Context
	handle func(context.Context, []*ckafka.Message) bool
	// maxBatch bounds how many queued messages of a partition its worker takes
	// at once; 1 hands them over one by one.
	maxBatch int
	queues   map[partitionKey]chan *ckafka.Message
	// pending counts the messages dispatched and not yet handled or skipped.
	pending sync.WaitGroup
	running sync.WaitGroup
}

type partitionKey struct {
	topic     string
	partition int32
}

func keyOf(tp ckafka.TopicPartition) partitionKey {
	if tp.Topic == nil {
		return partitionKey{partition: tp.Partition}
	}
	return partitionKey{topic: *tp.Topic, partition: tp.Partition}
}

// newPartitionWorkers runs handle for the dispatched messages: each call gets
// the next message of a partition and, up to maxBatch in all, those queued
// behind it at that moment, so a batch is as large as the backlog and a
// message that finds its partition idle goes alone, without waiting for
// company. handle returns false when ctx ended before the messages were
// handled; the worker then skips what is queued after them, unhandled and
// uncommitted.
func newPartitionWorkers(ctx context.Context, maxBatch int, handle func(context.Context, []*ckafka.Message) bool) *partitionWorkers {
	return &partitionWorkers{ctx: ctx, handle: handle, maxBatch: max(maxBatch, 1), queues: map[partitionKey]chan *ckafka.Message{}}
}

// dispatch queues msg for its partition's worker, starting the worker if the
// partition has none. It returns false when the workers' ctx ended first.
func (w *partitionWorkers) dispatch(msg *ckafka.Message) bool {
	key := keyOf(msg.TopicPartition)
	queue, ok := w.queues[key]
	if !ok {
		queue = make(chan *ckafka.Message, partitionQueue)
		w.queues[key] = queue
		w.running.Add(1)
		go w.work(queue)
	}
	w.pending.Add(1)
	select {
	case queue <- msg:
		return true
	case <-w.ctx.Done():
		w.pending.Done()
		return false
	}
}

func (w *partitionWorkers) work(queue <-chan *ckafka.Message) {
	defer w.running.Done()
	stopped := false
	taken := make([]*ckafka.Message, 0, w.maxBatch)
	for msg := range queue {
		taken = batch.Waiting(taken[:0], msg, queue, w.maxBatch)
		// After a message could not be handled, none after it on the
		// partition may be: its offset would pass over the one left behind.
		if !stopped && (w.ctx.Err() != nil || !w.handle(w.ctx, taken)) {
			stopped = true
		}
		w.pending.Add(-len(taken))
	}
}

// drain waits until every message dispatched so far is handled (or skipped
// because ctx ended).
func (w *partitionWorkers) drain() { w.pending.Wait() }

// forget ends the workers of partitions no longer assigned; a partition
// assigned again gets a new one.
func (w *partitionWorkers) forget(partitions []ckafka.TopicPartition) {
	for _, tp := range partitions {
		key := keyOf(tp)
		if queue, ok := w.queues[key]; ok {
			close(queue)
			delete(w.queues, key)
		}
	}
}

// stop ends every worker once its queue is empty and waits for them.
func (w *partitionWorkers) stop() {
	for key, queue := range w.queues {
		close(queue)
		delete(w.queues, key)
	}
	w.running.Wait()
}
