// Package events is kshop's message contract: the names of Kafka topics,
// RabbitMQ exchanges, queues and routing keys, and the JSON payloads that travel
// between services. Every producer and consumer imports it, so a name or a field
// exists in exactly one place.
package events

import (
	"fmt"
	"strconv"
	"time"
)

// Kafka topics carry domain events, keyed by the aggregate id as a decimal
// string (Key). Each is bound to the payload type its messages carry.
var (
	TopicProductCreated = Topic[Product]{"product-created"}
	TopicProductUpdated = Topic[Product]{"product-updated"}
	TopicProductDeleted = Topic[ProductDeleted]{"product-deleted"}
	TopicOrderCreated   = Topic[OrderCreated]{"order-created"}
	TopicOrderCancelled = Topic[OrderCancelled]{"order-cancelled"}
	TopicOrderPaid      = Topic[OrderPaid]{"order-paid"}
	TopicStockReserved  = Topic[StockReserved]{"stock-reserved"}
	TopicStockRejected  = Topic[StockRejected]{"stock-rejected"}
)

// Topics lists every domain topic's name, for creating them.
var Topics = []string{
	TopicProductCreated.Name(), TopicProductUpdated.Name(), TopicProductDeleted.Name(),
	TopicOrderCreated.Name(), TopicOrderCancelled.Name(), TopicOrderPaid.Name(),
	TopicStockReserved.Name(), TopicStockRejected.Name(),
}

// DefaultPartitions is how many partitions a topic gets unless configured otherwise.
const DefaultPartitions = 3

// DeadLetterPartitions is how many a dead-letter topic gets: people read it,
// not consumers at scale, and one partition keeps failures in the order they
// happened (the chart's topology.kafka.deadLetterPartitions says the same).
const DeadLetterPartitions = 1

// Version is the payload version every event carries in its event-version header.
const Version = 1

// Kafka header names. Every event carries its id in the event-id header too,
// which the outbox relay sets (docs/api.md#kafka-events).
const (
	HeaderEventType    = "event-type"
	HeaderEventVersion = "event-version"
	HeaderTraceParent  = "traceparent"
)

// DeadLetterTopic names where a topic's poison messages end up.
func DeadLetterTopic(topic string) string { return topic + ".dlt" }

// ConsumerGroup names the group of a service consuming a topic, e.g. product.order-created.
func ConsumerGroup(service, topic string) string { return service + "." + topic }

// Key turns an aggregate id into a message key.
func Key(id int64) string { return strconv.FormatInt(id, 10) }

// RabbitMQ exchanges.
const (
	ExchangeNotifications = "notifications" // topic
	ExchangePayments      = "payments"      // direct
	ExchangeOrders        = "orders"        // direct
)

// ExchangeKinds gives each exchange its type.
var ExchangeKinds = map[string]string{
	ExchangeNotifications: "topic",
	ExchangePayments:      "direct",
	ExchangeOrders:        "direct",
}

// RabbitMQ routing keys. A mail and its queue are named after the same
// words: send.order.cancelled goes to order-cancelled, which the mail service
// renders with the order_cancelled template; a timer's key and queue likewise
// (order.expiry, order-expiry).
const (
	RoutingVerification    = "send.verification"
	RoutingAccountVerified = "send.account.verified"
	RoutingAccountExists   = "send.account.exists"
	RoutingPasswordReset   = "send.password.reset"
	RoutingPaymentReminder = "send.payment.reminder"
	RoutingOrderSuccess    = "send.order.success"
	RoutingOrderCancelled  = "send.order.cancelled"
	RoutingOrderReminder   = "order.reminder"
	RoutingOrderExpiry     = "order.expiry"
)

// RabbitMQ work queues.
const (
	QueueVerification    = "verification"
	QueueAccountVerified = "account-verified"
	QueueAccountExists   = "account-exists"
	QueuePasswordReset   = "password-reset"
	QueuePaymentReminder = "payment-reminder"
	QueueOrderSuccess    = "order-success"
	QueueOrderCancelled  = "order-cancelled"
	QueueOrderReminder   = "order-reminder"
	QueueOrderExpiry     = "order-expiry"
)

// DeadLetterQueue names a work queue's dead-letter queue.
func DeadLetterQueue(queue string) string { return queue + ".dlq" }

// Route is one row of the RabbitMQ table: who publishes where, who consumes what.
type Route struct {
	Exchange   string
	RoutingKey string
	Queue      string
	Producer   string
	Consumer   string
}

// The mails: each route is bound to the payload type its messages carry.
var (
	MailVerification    = Work[VerificationMail]{Route{ExchangeNotifications, RoutingVerification, QueueVerification, "auth", "mail"}}
	MailAccountVerified = Work[AccountVerifiedMail]{Route{ExchangeNotifications, RoutingAccountVerified, QueueAccountVerified, "auth", "mail"}}
	MailAccountExists   = Work[AccountExistsMail]{Route{ExchangeNotifications, RoutingAccountExists, QueueAccountExists, "auth", "mail"}}
	MailPasswordReset   = Work[PasswordResetMail]{Route{ExchangeNotifications, RoutingPasswordReset, QueuePasswordReset, "auth", "mail"}}
	MailPaymentReminder = Work[PaymentReminderMail]{Route{ExchangePayments, RoutingPaymentReminder, QueuePaymentReminder, "order", "mail"}}
	MailOrderSuccess    = Work[OrderSuccessMail]{Route{ExchangeNotifications, RoutingOrderSuccess, QueueOrderSuccess, "order", "mail"}}
	MailOrderCancelled  = Work[OrderCancelledMail]{Route{ExchangeNotifications, RoutingOrderCancelled, QueueOrderCancelled, "order", "mail"}}
)

// MailRoutes are the messages the mail service consumes.
var MailRoutes = []Route{
	MailVerification.Route, MailAccountVerified.Route, MailAccountExists.Route, MailPasswordReset.Route,
	MailPaymentReminder.Route, MailOrderSuccess.Route, MailOrderCancelled.Route,
}

// The order service's timers: messages to itself, delivered after a delay
// (Route.DelayQueueName).
var (
	TimerOrderReminder = Work[OrderReminder]{Route{ExchangeOrders, RoutingOrderReminder, QueueOrderReminder, "order", "order"}}
	TimerOrderExpiry   = Work[OrderExpiry]{Route{ExchangeOrders, RoutingOrderExpiry, QueueOrderExpiry, "order", "order"}}
)

// TimerRoutes are the order service's delayed messages to itself.
var TimerRoutes = []Route{TimerOrderReminder.Route, TimerOrderExpiry.Route}

var (
	delayQueueInfix        = ".delay."
	delayQueueUnitsInOrder = []struct {
		suffix string
		unit   time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}}
)

// DelayQueueName names the queue where the route's messages wait d before they
// reach its queue: order-reminder.delay.4h, order-expiry.delay.90m,
// order-reminder.delay.30s, order-reminder.delay.1500ms. The largest unit that
// divides d exactly is used, so each delay has one stable name. Delays are
// whole milliseconds; anything finer is truncated.
func (r Route) DelayQueueName(d time.Duration) string {
	d = d.Truncate(time.Millisecond)
	if d <= 0 {
		panic(fmt.Sprintf("events: delay must be at least 1ms, got %v", d)) // a configuration bug caught at start
	}
	for _, u := range delayQueueUnitsInOrder {
		if d%u.unit == 0 {
			return r.Queue + delayQueueInfix + strconv.FormatInt(int64(d/u.unit), 10) + u.suffix
		}
	}
	return r.Queue + delayQueueInfix + strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Cancel reasons, the reason field of OrderCancelled and OrderCancelledMail.
const (
	CancelExpired    = "expired"
	CancelOutOfStock = "out_of_stock"
	CancelCustomer   = "customer"
)

// Producing returns the routes of routes that service publishes.
func Producing(service string, routes []Route) []Route {
	var out []Route
	for _, r := range routes {
		if r.Producer == service {
			out = append(out, r)
		}
	}
	return out
}

// Consuming returns the routes of routes that service consumes.
func Consuming(service string, routes []Route) []Route {
	var out []Route
	for _, r := range routes {
		if r.Consumer == service {
			out = append(out, r)
		}
	}
	return out
}
