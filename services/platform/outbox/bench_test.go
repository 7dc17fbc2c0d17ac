package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/testenv"
)

// fillOutbox inserts n unsent rows for destination in one statement, so the
// benchmark measures relaying, not writing.
func fillOutbox(b *testing.B, pool *pgxpool.Pool, n int, destination outbox.Destination, topic, key string) {
	b.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO outbox (event_id, destination, topic, key, headers, payload)
		SELECT gen_random_uuid(), $1, $2, $3, '{}', convert_to(repeat('x', 200), 'UTF8')
		FROM generate_series(1, $4)`, string(destination), topic, key, n)
	if err != nil {
		b.Fatal(err)
	}
}

// drain relays until the outbox is empty and reports rows per second.
func drain(b *testing.B, relay *outbox.Relay, rows int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	b.ResetTimer()
	for done := 0; done < rows; {
		n, err := relay.RelayOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}

func BenchmarkRelayToKafka(b *testing.B) {
	pool := newDatabase(b)
	brokers := kafkatest.NewCluster(b, kafkatest.WithTopics(3, "outbox-bench"))
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: brokers}}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.Kafka: kafka.OutboxPublisher(producer)},
		outbox.RelayConfig{BatchSize: 500}, quiet)
	fillOutbox(b, pool, b.N, outbox.Kafka, "outbox-bench", "k")
	drain(b, relay, b.N)
}

func BenchmarkRelayToRabbitMQ(b *testing.B) {
	pool := newDatabase(b)
	conn := amqp.Dial(testenv.AMQPURL(b), quiet)
	defer conn.Close()
	queue := "outbox-bench-" + testenv.RandomSuffix()
	ctx := context.Background()
	testenv.WaitFor(b, 30*time.Second, "RabbitMQ connection", func() bool { return conn.Ready(ctx) == nil })
	if err := conn.Declare(ctx, amqp.Topology{Queues: []amqp.Queue{{Name: queue}}}); err != nil {
		b.Fatal(err)
	}
	relay := outbox.NewRelay(pool, map[outbox.Destination]outbox.Publisher{outbox.AMQP: amqp.OutboxPublisher(amqp.NewPublisher(conn))},
		outbox.RelayConfig{BatchSize: 500}, quiet)
	// The default exchange routes by queue name, like a delayed message entering its TTL queue.
	fillOutbox(b, pool, b.N, outbox.AMQP, "", queue)
	drain(b, relay, b.N)
}
