package product_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
)

// BenchmarkGetProduct measures GET /products/:id over HTTP, clients in
// parallel (16 on two cores, as many as the gateway benchmark's load client),
// and reports requests/s and the p99 of one request.
func BenchmarkGetProduct(b *testing.B) {
	s := newService(b)
	p := s.create(b, "benchmarked", "19.99", 10)
	url := fmt.Sprintf("%s/products/%d", s.Base, p.ID)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	var latencies []time.Duration
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		defer func() {
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			began := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			mine = append(mine, time.Since(began))
		}
	})
	b.StopTimer()
	if len(latencies) == 0 {
		b.Fatal("no request succeeded")
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkReserve measures stock reservations (one transaction each: inbox,
// decision, locked decrement, reservation, two outbox rows), in parallel on a
// handful of products so that orders contend for the same rows.
func BenchmarkReserve(b *testing.B) {
	s := newService(b)
	var ids []int64
	for i := range 4 {
		ids = append(ids, s.create(b, fmt.Sprint("hot ", i), 1, 1_000_000).ID)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			order := orderOf(n, item(ids[n%4], 1), item(ids[(n+1)%4], 1))
			if err := s.app.Stock.Reserve(context.Background(), uuid.NewString(), order); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}

// BenchmarkReserveBatches is BenchmarkReserve's orders decided as the
// consumer decides a backlog: batches of 32 (ReserveAll), four at a time,
// each batch's orders wanting the same four products.
func BenchmarkReserveBatches(b *testing.B) {
	s := newService(b)
	var ids []int64
	for i := range 4 {
		ids = append(ids, s.create(b, fmt.Sprint("hot ", i), 1, 1_000_000).ID)
	}
	const batchSize = 32
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		created := make([]batch.Event[events.OrderCreated], 0, batchSize)
		decide := func() bool {
			if len(created) == 0 {
				return true
			}
			err := s.app.Stock.ReserveAll(context.Background(), created)
			created = created[:0]
			if err != nil {
				b.Error(err)
			}
			return err == nil
		}
		for pb.Next() {
			n := next.Add(1)
			order := orderOf(n, item(ids[n%4], 1), item(ids[(n+1)%4], 1))
			created = append(created, batch.Event[events.OrderCreated]{Ctx: context.Background(), ID: uuid.NewString(), Payload: order})
			if len(created) == batchSize && !decide() {
				return
			}
		}
		decide()
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}

// BenchmarkReplicaLagUnderReservations measures how far behind the
// streaming replica of the test server falls while reservations run as fast
// as they can (BenchmarkReserve's load, every one a write on the primary): the
// lag the service itself measures, checked every 50 ms, reported as its
// maximum and 99th percentile over the run. A customer's read is at most
// that stale (and never more than the configured bound).
func BenchmarkReplicaLagUnderReservations(b *testing.B) {
	s, _, _ := withReplica(b, 2*time.Second)
	var ids []int64
	for i := range 4 {
		ids = append(ids, s.create(b, fmt.Sprint("hot ", i), 1, 1_000_000).ID)
	}
	done := make(chan struct{})
	sampled := make(chan []float64)
	go func() {
		var lags []float64
		for {
			select {
			case <-done:
				sampled <- lags
				return
			case <-time.After(50 * time.Millisecond):
				if lag := s.metric(b, replicaLagSec); lag >= 0 {
					lags = append(lags, lag)
				}
			}
		}
	}()
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			order := orderOf(n, item(ids[n%4], 1), item(ids[(n+1)%4], 1))
			if err := s.app.Stock.Reserve(context.Background(), uuid.NewString(), order); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	close(done)
	lags := <-sampled
	if lag := s.metric(b, replicaLagSec); lag >= 0 {
		lags = append(lags, lag) // a run shorter than one sample has this one
	}
	if len(lags) == 0 {
		b.Fatal("no lag sampled: the replica does not answer")
	}
	slices.Sort(lags)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(lags[len(lags)-1]*1000, "max-lag-ms")
	b.ReportMetric(lags[len(lags)*99/100]*1000, "p99-lag-ms")
}

// BenchmarkOrderCreatedToStockReserved measures the saga's first hop as the
// order service sees it: from publishing order-created to Kafka until
// stock-reserved can be read from Kafka (consume, reserve in one transaction,
// outbox, relay, produce). Orders are sent one at a time; p50 and p99 are
// reported.
func BenchmarkOrderCreatedToStockReserved(b *testing.B) {
	brokers := newCluster(b)
	s := start(b, testConfig(b, brokers))
	p := s.create(b, "latency", 1, 1_000_000)
	reader := readTopics(b, brokers, events.TopicStockReserved.Name())
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: brokers}, ClientID: "bench"}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	// Warm up: consumer groups joined, connections open.
	kafkatest.Publish(b, producer, events.TopicOrderCreated, events.Key(1), orderOf(1, item(p.ID, 1)), uuid.NewString())
	reader.await(b, events.TopicStockReserved.Name(), "1", 1)

	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := int64(i + 2)
		sent := time.Now()
		kafkatest.Publish(b, producer, events.TopicOrderCreated, events.Key(id), orderOf(id, item(p.ID, 1)), uuid.NewString())
		for len(reader.where(events.TopicStockReserved.Name(), events.Key(id))) == 0 {
			time.Sleep(200 * time.Microsecond)
		}
		latencies = append(latencies, time.Since(sent))
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
