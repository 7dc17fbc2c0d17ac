package order

import (
	"time"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
)

// timer is a message for the order service itself, delivered after delay: it
// waits in the delay's TTL queue (orders.delay.4h), which dead-letters it into
// the timer's exchange with its routing key (Topology pairs them, one kind of
// timer per delay).
func timer[T events.Payload](route events.Work[T], delay time.Duration, payload T) outbox.Message {
	return outbox.Delayed(route, events.DelayQueueName(delay), payload)
}

func mailItems(items []Item) []events.MailItem {
	out := make([]events.MailItem, len(items))
	for i, it := range items {
		out[i] = events.MailItem{ProductID: it.ProductID, Name: it.name, Quantity: it.Quantity, Price: it.Price}
	}
	return out
}
