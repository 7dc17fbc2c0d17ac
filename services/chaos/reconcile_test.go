//go:build chaos

package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/smtptest"
)

// world is a view on every database and broker, for settling and reconciling.
type world struct {
	order, product, mail *pgxpool.Pool
	amqpURL, kafka       string
	smtp                 *smtptest.Server
	kafkaAdmin           *kadm.Client // reads the consumer groups' lag while settling
}

func connect(t *testing.T, p *e2e.Platform, kafka string) *world {
	t.Helper()
	pool := func(url string) *pgxpool.Pool {
		db, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(kafka))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return &world{order: pool(p.Databases["order"]), product: pool(p.Databases["product"]), mail: pool(p.Databases["mail"]),
		amqpURL: p.AMQPURL, kafka: kafka, smtp: p.SMTP, kafkaAdmin: kadm.NewClient(client)}
}

// settleState is what is still moving.
type settleState struct {
	open, unsent, queued int
	unconsumed           int64 // Kafka records the consumer groups have not committed yet
}

func (s settleState) settled() bool {
	return s.open == 0 && s.unsent == 0 && s.queued == 0 && s.unconsumed == 0
}

func (w *world) settleState(ctx context.Context) (settleState, error) {
	var s settleState
	if err := w.order.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status NOT IN ('COMPLETED', 'CANCELLED')`).Scan(&s.open); err != nil {
		return s, fmt.Errorf("count open orders: %w", err)
	}
	for _, db := range []*pgxpool.Pool{w.order, w.product} {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n); err != nil {
			return s, fmt.Errorf("count unsent outbox rows: %w", err)
		}
		s.unsent += n
	}
	depths, err := w.queueDepths()
	if err != nil {
		return s, err
	}
	for name, n := range depths {
		if !strings.HasSuffix(name, ".dlq") { // dead letters stay; the table reports them
			s.queued += n
		}
	}
	// An order can be final in the order database while its order-cancelled
	// still waits in Kafka for the product service (whose consumer may be in
	// its retry pace after the PostgreSQL restart): settled means consumed too.
	lags, err := w.kafkaAdmin.Lag(ctx)
	if err != nil {
		return s, fmt.Errorf("read consumer group lag: %w", err)
	}
	for _, g := range lags.Sorted() {
		if err := g.Error(); err != nil {
			return s, fmt.Errorf("lag of consumer group %s: %w", g.Group, err)
		}
		s.unconsumed += g.Lag.Total()
	}
	return s, nil
}

// waitUntilSettled polls until every order is final, every outbox row is sent
// and every queue is empty, printing progress; the reconciliation runs anyway
// when the time is up (and reports what did not settle).
func (w *world) waitUntilSettled(t *testing.T, limit time.Duration, say func(string, ...any)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := time.Time{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := w.settleState(ctx)
		cancel()
		switch {
		case err == nil && s.settled():
			say("settled: every order is final, outboxes, work queues and Kafka consumer lag are empty")
			return
		case time.Now().After(deadline):
			say("NOT settled after %v (%+v, %v); reconciling what there is", limit, s, err)
			return
		case time.Since(last) >= 5*time.Second:
			if err != nil {
				say("settling: %v", err)
			} else {
				say("settling: %d orders not final yet, %d outbox rows unsent, %d messages in RabbitMQ queues, %d Kafka records not consumed",
					s.open, s.unsent, s.queued, s.unconsumed)
			}
			last = time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// queueDepths reads the ready messages of every queue the platform declares.
func (w *world) queueDepths() (map[string]int, error) {
	conn, err := amqp091.Dial(w.amqpURL)
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	depths := map[string]int{}
	for _, name := range queueNames() {
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		var amqpErr *amqp091.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp091.NotFound {
			continue // never declared: nothing in it (its channel is closed by the broker)
		}
		if err != nil {
			return nil, fmt.Errorf("inspect queue %s: %w", name, err)
		}
		depths[name] = q.Messages
		_ = ch.Close()
	}
	return depths, nil
}

// row is one line of the reconciliation table.
type row struct {
	check           string
	expected, found int
	// info rows count what happened; they cannot fail.
	info bool
}

func (r row) ok() bool { return r.info || r.expected == r.found }

type table []row

func (tb table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "check\texpected\tfound\tok")
	for _, r := range tb {
		expected, ok := strconv.Itoa(r.expected), "ok"
		if r.info {
			expected, ok = "-", ""
		} else if !r.ok() {
			ok = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.check, expected, r.found, ok)
	}
	tw.Flush()
}

type orderRow struct {
	status, stock, cancelReason string
	paid                        bool
	createdAt, updatedAt        time.Time
}

// reconcile compares what the load generator was told with what every
// database and broker holds.
func (w *world) reconcile(t *testing.T, accepted []loadgen.Accepted) table {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The order database.
	orders := map[int64]orderRow{}
	rows, err := w.order.Query(ctx, `SELECT id, status, stock_status, coalesce(cancel_reason, ''), paid_at IS NOT NULL, created_at, updated_at FROM orders`)
	must(err)
	for rows.Next() {
		var id int64
		var o orderRow
		must(rows.Scan(&id, &o.status, &o.stock, &o.cancelReason, &o.paid, &o.createdAt, &o.updatedAt))
		orders[id] = o
	}
	must(rows.Err())
	// Units each product sold according to the order service: items of orders not cancelled.
	sold := map[int64]int{}
	rows, err = w.order.Query(ctx, `SELECT i.product_id, sum(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE o.status <> 'CANCELLED' GROUP BY i.product_id`)
	must(err)
	for rows.Next() {
		var id int64
		var n int
		must(rows.Scan(&id, &n))
		sold[id] = n
	}
	must(rows.Err())

	// The product database.
	decisions := map[int64]string{}
	rows, err = w.product.Query(ctx, `SELECT order_id, status FROM order_stock`)
	must(err)
	for rows.Next() {
		var id int64
		var status string
		must(rows.Scan(&id, &status))
		decisions[id] = status
	}
	must(rows.Err())
	type stock struct{ quantity, held int }
	stocks := map[int64]*stock{}
	rows, err = w.product.Query(ctx, `SELECT p.id, p.quantity, coalesce(sum(r.quantity) FILTER (WHERE s.status IN ('reserved', 'sold')), 0)
		FROM products p LEFT JOIN reservations r ON r.product_id = p.id LEFT JOIN order_stock s ON s.order_id = r.order_id
		GROUP BY p.id, p.quantity`)
	must(err)
	for rows.Next() {
		var id int64
		var s stock
		must(rows.Scan(&id, &s.quantity, &s.held))
		stocks[id] = &s
	}
	must(rows.Err())

	// The mail database and the SMTP server.
	inboxIDs := map[string]bool{}
	perConsumer := map[string]int{}
	rows, err = w.mail.Query(ctx, `SELECT consumer, event_id FROM inbox`)
	must(err)
	for rows.Next() {
		var consumer, id string
		must(rows.Scan(&consumer, &id))
		inboxIDs[id] = true
		perConsumer[consumer]++
	}
	must(rows.Err())
	received := map[string]int{}
	for _, id := range messageIDs(w.smtp) {
		received[strings.TrimSuffix(id, "@kshop")]++
	}

	// Kafka: every record of the order and stock topics and of every dead-letter topic.
	kafka, err := w.readTopics(ctx)
	must(err)

	// RabbitMQ.
	depths, err := w.queueDepths()
	must(err)

	var tb table
	count := func(check string, expected, found int) {
		tb = append(tb, row{check: check, expected: expected, found: found})
	}
	info := func(check string, found int) { tb = append(tb, row{check: check, found: found, info: true}) }

	var orders2xx, pays2xx, missing, paidNotCompleted int
	for _, a := range accepted {
		o, ok := orders[a.OrderID]
		switch a.Op {
		case loadgen.OpOrder:
			orders2xx++
			if !ok {
				missing++
			}
		case loadgen.OpPay:
			pays2xx++
			if !ok || o.status != "COMPLETED" {
				paidNotCompleted++
			}
		}
	}
	byStatus := map[string]int{}
	var notFinal, noDecision, stockDisagrees, paid, cancelNotInKafka int
	for id, o := range orders {
		byStatus[o.status]++
		if o.paid {
			paid++
		}
		if o.status != "COMPLETED" && o.status != "CANCELLED" {
			notFinal++
		}
		d, ok := decisions[id]
		switch {
		case !ok:
			noDecision++
		// A paid order's reservation is sold (order-paid), a cancelled one's
		// given back or never taken.
		case o.status == "COMPLETED" && d != "sold",
			o.status == "CANCELLED" && (d == "reserved" || d == "sold"):
			stockDisagrees++
			t.Logf("order %d: %s (cancel reason %q, stock %q in the order db), created %s, last changed %s; the product service's decision: %q; order-cancelled in Kafka: %v",
				id, o.status, o.cancelReason, o.stock, o.createdAt.Format(time.RFC3339Nano), o.updatedAt.Format(time.RFC3339Nano), d, kafka.cancelled[id])
		}
		if o.status == "CANCELLED" && !kafka.cancelled[id] {
			cancelNotInKafka++
		}
	}
	var phantom int
	for id := range decisions {
		if _, ok := orders[id]; !ok {
			phantom++
		}
	}
	var movedMismatch, soldMismatch, oversold, unitsHeld int
	for id, s := range stocks {
		unitsHeld += s.held
		if stockPerProduct-s.quantity != s.held {
			movedMismatch++
		}
		if sold[id] != s.held {
			soldMismatch++
		}
		if s.held > stockPerProduct {
			oversold += s.held - stockPerProduct
		}
	}
	var duplicates, unrecorded, unsentRecorded int
	for id, n := range received {
		duplicates += n - 1
		if !inboxIDs[id] {
			unrecorded++
		}
	}
	for id := range inboxIDs {
		if received[id] == 0 {
			unsentRecorded++
		}
	}
	var notInKafka, kafkaUnknown, deadLetters int
	for id := range orders {
		if !kafka.created[id] {
			notInKafka++
		}
	}
	for id := range kafka.created {
		if _, ok := orders[id]; !ok {
			kafkaUnknown++
		}
	}
	for _, n := range kafka.deadLetters {
		deadLetters += n
	}
	var queued, dlq int
	for name, n := range depths {
		if strings.HasSuffix(name, ".dlq") {
			dlq += n
		} else {
			queued += n
		}
	}
	unsent := 0
	for _, db := range []*pgxpool.Pool{w.order, w.product} {
		var n int
		must(db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n))
		unsent += n
	}

	info("orders answered 2xx to the load generator", orders2xx)
	info("payments answered 2xx to the load generator", pays2xx)
	info("orders in the order database", len(orders))
	info("  of which COMPLETED", byStatus["COMPLETED"])
	info("  of which CANCELLED", byStatus["CANCELLED"])
	info("units held by reservations (sold)", unitsHeld)
	info("order-created records read back from Kafka", kafka.records)
	info("  of which repeats (at-least-once relay; the inbox absorbs them)", kafka.repeats)
	info("e-mails received by the SMTP server", len(messageIDs(w.smtp)))
	count("2xx orders missing from the order database", 0, missing)
	count("2xx payments whose order is not COMPLETED", 0, paidNotCompleted)
	count("orders stuck outside COMPLETED/CANCELLED", 0, notFinal)
	count("orders without a stock decision (product db)", 0, noDecision)
	count("stock decisions for orders that do not exist", 0, phantom)
	count("orders whose status and stock decision disagree", 0, stockDisagrees)
	count("products: initial - current stock != reservations", 0, movedMismatch)
	count("products: units sold (order db) != reservations", 0, soldMismatch)
	count("oversold units", 0, oversold)
	count("duplicate e-mails (same Message-ID)", 0, duplicates)
	count("e-mails sent but not in the mail inbox table", 0, unrecorded)
	count("mail inbox rows without an e-mail", 0, unsentRecorded)
	count("order-success e-mails vs paid orders", paid, perConsumer["mail."+events.QueueOrderSuccess])
	count("cancel notices vs cancelled orders", byStatus["CANCELLED"], perConsumer["mail."+events.QueueOrderCancelled])
	count("orders missing from Kafka order-created", 0, notInKafka)
	count("order-created records of unknown orders", 0, kafkaUnknown)
	count("cancelled orders missing from Kafka order-cancelled", 0, cancelNotInKafka)
	count("records in Kafka dead-letter topics", 0, deadLetters)
	count("messages left in RabbitMQ work and delay queues", 0, queued)
	count("messages in RabbitMQ dead-letter queues", 0, dlq)
	count("outbox rows never sent (order, product)", 0, unsent)
	return tb
}

// kafkaContents is what the order and stock topics hold.
type kafkaContents struct {
	records     int // order-created records
	repeats     int // order-created records of an order seen before
	created     map[int64]bool
	cancelled   map[int64]bool // orders with an order-cancelled record
	deadLetters map[string]int
}

// readTopics reads order-created, order-cancelled and every dead-letter topic from the start
// until nothing more arrives for a few seconds (the platform has settled).
func (w *world) readTopics(ctx context.Context) (kafkaContents, error) {
	topics := []string{events.TopicOrderCreated.Name(), events.TopicOrderCancelled.Name()}
	for _, topic := range events.Topics {
		topics = append(topics, events.DeadLetterTopic(topic))
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(w.kafka), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return kafkaContents{}, err
	}
	defer client.Close()
	c := kafkaContents{created: map[int64]bool{}, cancelled: map[int64]bool{}, deadLetters: map[string]int{}}
	for idle := 0; idle < 3; {
		pollCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := client.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return c, fmt.Errorf("read %s[%d] from Kafka: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			if r.Topic == events.TopicOrderCancelled.Name() {
				if id, err := strconv.ParseInt(string(r.Key), 10, 64); err == nil {
					c.cancelled[id] = true
				}
				return
			}
			if r.Topic != events.TopicOrderCreated.Name() {
				c.deadLetters[r.Topic]++
				return
			}
			c.records++
			if id, err := strconv.ParseInt(string(r.Key), 10, 64); err == nil {
				if c.created[id] {
					c.repeats++
				}
				c.created[id] = true
			}
		})
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return c, nil
}

// messageIDs lists the Message-ID of every e-mail the SMTP server accepted, repeats included.
func messageIDs(server *smtptest.Server) []string {
	var ids []string
	for _, m := range server.Messages() {
		ids = append(ids, strings.Trim(m.Header.Get("Message-Id"), "<>"))
	}
	return ids
}
