package order

import (
	"time"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/outbox"
)

// An order's timers form a chain: placing the order queues the first link
// (reminder 1), and each link that fires queues the next (reminder 2, ...,
// then the expiry). Placing an order therefore writes one timer to the outbox
// instead of one per reminder plus the expiry, and an order that ends early
// (cancelled) stops its chain.
//
// A link waits in the delay queue of its timer and its wait (the time since
// the link before: order-reminder.delay.8h), a RabbitMQ TTL queue that
// dead-letters into the timer's queue. The message carries its due time as its
// own expiration (outbox.Delayed), so a link queued late, because the link
// before fired late or the relay lagged, still fires on time: lateness does not
// add up along the chain.
type timerLink struct {
	reminder int           // 1, 2, ... for a payment reminder; 0 for the expiry
	due      time.Duration // after the order was placed
	wait     time.Duration // since the link before: its delay queue's TTL
}

// timerChain is the links for these delays, in the order they fire, in whole
// milliseconds (RabbitMQ's); the configuration guarantees the reminders
// increase by at least that and end before the expiry.
func timerChain(reminders []time.Duration, expiry time.Duration) []timerLink {
	chain := make([]timerLink, 0, len(reminders)+1)
	var before time.Duration
	for i, d := range reminders {
		d = d.Truncate(time.Millisecond)
		chain = append(chain, timerLink{reminder: i + 1, due: d, wait: d - before})
		before = d
	}
	expiry = expiry.Truncate(time.Millisecond)
	return append(chain, timerLink{due: expiry, wait: expiry - before})
}

// route is where the link's timer goes when its wait is over.
func (l timerLink) route() events.Route {
	if l.reminder > 0 {
		return events.TimerOrderReminder.Route
	}
	return events.TimerOrderExpiry.Route
}

// delayQueue is the queue a link waits in.
func (l timerLink) delayQueue() string { return l.route().DelayQueueName(l.wait) }

// message is the link's timer for an order placed at placedAt.
func (l timerLink) message(orderID int64, placedAt time.Time) outbox.Message {
	dueAt := placedAt.Add(l.due)
	if l.reminder > 0 {
		return outbox.Delayed(events.TimerOrderReminder, l.delayQueue(), dueAt, events.OrderReminder{OrderID: orderID, ReminderNumber: l.reminder})
	}
	return outbox.Delayed(events.TimerOrderExpiry, l.delayQueue(), dueAt, events.OrderExpiry{OrderID: orderID})
}

// nextTimer is the link after reminder n for o, while o can still need it: a
// cancelled or completed order's chain ends. The link is the current
// configuration's, so a change of the delays applies from the next link on (a
// link already waiting keeps its delay); a reminder the configuration no
// longer has is followed by the expiry.
func (s *Saga) nextTimer(o Order, reminder int) (outbox.Message, bool) {
	if !o.timersChained || (o.Status != StatusPending && o.Status != StatusPaid) {
		return outbox.Message{}, false
	}
	chain := timerChain(s.cfg.ReminderDelays, s.cfg.ExpiryDelay)
	next := chain[len(chain)-1]
	if reminder < len(chain)-1 {
		next = chain[reminder]
	}
	return next.message(o.ID, o.CreatedAt), true
}

// Topology is what the order service declares on RabbitMQ for these timer
// delays: the mail queues it feeds, its own timer queues, and the delay queue
// of every link of the chain. The chart's RabbitMQ permissions are checked
// against it.
func Topology(reminderDelays []time.Duration, expiryDelay time.Duration) amqp.Topology {
	t := amqp.WorkTopologyOf(append(events.Producing("order", events.MailRoutes), events.TimerRoutes...))
	seen := map[string]bool{}
	for _, l := range timerChain(reminderDelays, expiryDelay) {
		name := l.delayQueue()
		if seen[name] {
			continue
		}
		seen[name] = true
		route := l.route()
		t.Delays = append(t.Delays, amqp.DelayQueue{Name: name, Delay: l.wait, TargetExchange: route.Exchange, TargetRoutingKey: route.RoutingKey})
	}
	return t
}
