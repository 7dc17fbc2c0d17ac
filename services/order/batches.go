package order

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
)

// Under load the saga's answers and timers arrive faster than one transaction
// each can apply them; their consumers then hand a backlog here, and one
// transaction does for dozens. Each handler does for every message what its
// one-message twin in saga.go does for one.

// StockReservedAll is StockReserved for a partition's backlog: one
// transaction and two statements for the batch.
func (s *Saga) StockReservedAll(ctx context.Context, answers []batch.Event[events.StockReserved]) error {
	var reserved int64
	err := pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		first, err := inbox.ClaimAll(ctx, tx, reservedConsumer, batch.IDs(answers))
		if err != nil {
			return err
		}
		var orderIDs []int64
		for _, e := range answers {
			if first[e.ID] {
				orderIDs = append(orderIDs, e.Payload.OrderID)
			}
		}
		// The rows are locked in id order, as a batch of timers locks them.
		tag, err := tx.Exec(ctx, `UPDATE orders SET stock_status = $2, updated_at = now()
			WHERE id IN (SELECT id FROM orders WHERE id = ANY($1) AND stock_status = $3 ORDER BY id FOR UPDATE)`,
			orderIDs, stockReserved, stockPending)
		if err != nil {
			return fmt.Errorf("record the reservation of %d orders: %w", len(orderIDs), err)
		}
		reserved = tag.RowsAffected()
		return nil
	})
	if err == nil {
		s.metrics.saga.WithLabelValues("stock_reserved").Add(float64(reserved))
	}
	return err
}

// RemindAll is Remind for the reminder timers waiting in the queue.
func (s *Saga) RemindAll(ctx context.Context, timers []batch.Event[events.OrderReminder]) error {
	var reminders int
	err := onOrders(ctx, s.db, reminderConsumer, timers, func(r events.OrderReminder) int64 { return r.OrderID },
		func(r events.OrderReminder, o *Order) []outbox.Message {
			if o.Status == StatusPending {
				reminders++
			}
			return s.reminded(*o, r.ReminderNumber)
		})
	if err == nil {
		s.metrics.saga.WithLabelValues("reminder").Add(float64(reminders))
	}
	return err
}

// ExpireAll is Expire for the expiry timers waiting in the queue.
func (s *Saga) ExpireAll(ctx context.Context, timers []batch.Event[events.OrderExpiry]) error {
	var expired, completed int
	err := onOrders(ctx, s.db, expiryConsumer, timers, func(e events.OrderExpiry) int64 { return e.OrderID },
		func(_ events.OrderExpiry, o *Order) []outbox.Message {
			switch o.Status {
			case StatusPending:
				expired++
				reason := CancelExpired
				o.Status, o.CancelReason = StatusCancelled, &reason
				return cancellation(*o, reason)
			case StatusPaid:
				completed++
				o.Status = StatusCompleted
			}
			return nil
		})
	if err == nil {
		s.metrics.saga.WithLabelValues("expired").Add(float64(expired))
		s.metrics.saga.WithLabelValues("completed").Add(float64(completed))
		s.metrics.cancelled.WithLabelValues(string(CancelExpired)).Add(float64(expired))
		s.metrics.completed.Add(float64(completed))
	}
	return err
}

// onOrders is onOrder for a batch of timers, in one transaction: it claims
// their ids, locks the orders of those claimed for the first time in id order
// (so batches never deadlock one another) with their items, and runs act on
// each claimed timer in the batch's order, with its order as the timers
// before it left it. A timer of an order that is not ours is skipped, as a
// timer given twice acts once. act changes the order in memory and returns
// what it says; the orders whose status act changed are written in one
// statement, and what they say goes to the outbox in another, each message
// traced in its timer's trace.
func onOrders[T any](ctx context.Context, db *pg.DB, consumer string, timers []batch.Event[T], orderID func(T) int64,
	act func(timer T, o *Order) []outbox.Message,
) error {
	return pg.InTx(ctx, db.Primary, func(tx pgx.Tx) error {
		first, err := inbox.ClaimAll(ctx, tx, consumer, batch.IDs(timers))
		if err != nil || len(first) == 0 {
			return err
		}
		var ids []int64
		for _, t := range timers {
			if first[t.ID] {
				ids = append(ids, orderID(t.Payload))
			}
		}
		orders, err := lockOrders(ctx, tx, ids)
		if err != nil {
			return err
		}
		loaded := make(map[int64]Status, len(orders))
		for id, o := range orders {
			loaded[id] = o.Status
		}
		var messages []outbox.Message
		for _, t := range timers {
			o, ours := orders[orderID(t.Payload)]
			if !first[t.ID] || !ours {
				continue
			}
			delete(first, t.ID)
			for _, m := range act(t.Payload, o) {
				messages = append(messages, m.In(t.Ctx))
			}
		}
		if err := settle(ctx, tx, orders, loaded); err != nil {
			return err
		}
		return outbox.Add(ctx, tx, messages...)
	})
}

// settle writes the status of the orders whose status is no longer the one
// loaded. Their customers' rows, which the pending counters' trigger updates
// as an order leaves PENDING, are locked first, in id order: in the order the
// update happened to visit them, two batches could each hold a customer the
// other waits for.
func settle(ctx context.Context, tx pgx.Tx, orders map[int64]*Order, loaded map[int64]Status) error {
	var ids, customers []int64
	var statuses, reasons []string
	for id, o := range orders {
		if o.Status == loaded[id] {
			continue
		}
		reason := ""
		if o.CancelReason != nil {
			reason = string(*o.CancelReason)
		}
		ids, statuses, reasons = append(ids, id), append(statuses, string(o.Status)), append(reasons, reason)
		customers = append(customers, o.customerID)
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(customers)
	if _, err := tx.Exec(ctx, `SELECT id FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE`, slices.Compact(customers)); err != nil {
		return fmt.Errorf("lock the customers of %d orders: %w", len(ids), err)
	}
	if _, err := tx.Exec(ctx, `UPDATE orders o SET status = c.status, cancel_reason = NULLIF(c.reason, ''), updated_at = now()
		FROM unnest($1::bigint[], $2::text[], $3::text[]) AS c(id, status, reason) WHERE o.id = c.id`, ids, statuses, reasons); err != nil {
		return fmt.Errorf("settle %d orders: %w", len(ids), err)
	}
	return nil
}
