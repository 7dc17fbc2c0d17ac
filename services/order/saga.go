package order

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
)

// Saga keeps the product copy current and follows the product service's
// answers and the order timers. Every handler is idempotent: by version for the
// product copy, by event id (inbox) and by the order's state for the rest.
type Saga struct {
	db      *pg.DB
	cfg     Config
	metrics *metrics
}

func (s *Saga) count(kind string) { s.metrics.saga.WithLabelValues(kind).Inc() }

// Consumer names, for the inbox.
var (
	reservedConsumer = events.ConsumerGroup("order", events.TopicStockReserved.Name())
	rejectedConsumer = events.ConsumerGroup("order", events.TopicStockRejected.Name())
	reminderConsumer = "order." + events.QueueOrderReminder
	expiryConsumer   = "order." + events.QueueOrderExpiry
)

// onOrder runs fn on the locked order unless eventID was handled before.
func (s *Saga) onOrder(ctx context.Context, consumer, eventID string, orderID int64, fn func(context.Context, pgx.Tx, Order) error) error {
	var afterCommit []func()
	ctx = context.WithValue(ctx, afterCommitKey{}, &afterCommit)
	err := pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		if first, err := inbox.Claim(ctx, tx, consumer, eventID); err != nil || !first {
			return err
		}
		order, err := lockOrder(ctx, tx, orderID, 0)
		if errors.Is(err, ErrOrderNotFound) {
			return nil // not ours (another environment's event); nothing to do
		}
		if err != nil {
			return err
		}
		return fn(ctx, tx, order)
	})
	if err == nil {
		for _, f := range afterCommit {
			f()
		}
	}
	return err
}

type afterCommitKey struct{}

// onCommit runs f once the transaction of ctx (started by onOrder) commits.
func onCommit(ctx context.Context, f func()) {
	if list, ok := ctx.Value(afterCommitKey{}).(*[]func()); ok {
		*list = append(*list, f)
	}
}

// StockReserved makes the order payable. It is every order's answer, so it
// skips onOrder's lock and load: one conditional UPDATE records it whatever the
// order's state (a cancelled order keeps its status; the product service
// releases its stock on order-cancelled), and changes nothing for an order
// already decided or not ours (another environment's event).
func (s *Saga) StockReserved(ctx context.Context, eventID string, e events.StockReserved) error {
	reserved := false
	err := pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		if first, err := inbox.Claim(ctx, tx, reservedConsumer, eventID); err != nil || !first {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE orders SET stock_status = $2, updated_at = now() WHERE id = $1 AND stock_status = $3`,
			e.OrderID, stockReserved, stockPending)
		if err != nil {
			return fmt.Errorf("record the reservation of order %d: %w", e.OrderID, err)
		}
		reserved = tag.RowsAffected() == 1
		return nil
	})
	if err == nil && reserved {
		s.count("stock_reserved")
	}
	return err
}

// StockRejected cancels a PENDING order for lack of stock.
func (s *Saga) StockRejected(ctx context.Context, eventID string, e events.StockRejected) error {
	return s.onOrder(ctx, rejectedConsumer, eventID, e.OrderID, func(ctx context.Context, tx pgx.Tx, o Order) error {
		if _, err := tx.Exec(ctx, `UPDATE orders SET stock_status = $2, updated_at = now() WHERE id = $1 AND stock_status = $3`, o.ID, stockRejected, stockPending); err != nil {
			return fmt.Errorf("record rejection of order %d: %w", o.ID, err)
		}
		if o.Status != StatusPending {
			return nil
		}
		s.count("stock_rejected")
		onCommit(ctx, func() { s.metrics.countCancelled(CancelOutOfStock) })
		return cancel(ctx, tx, o, CancelOutOfStock)
	})
}

// Remind queues a payment reminder while the order is still PENDING, and the
// order's next timer while it may need one (nextTimer); for any other state
// the timer is simply consumed.
func (s *Saga) Remind(ctx context.Context, messageID string, r events.OrderReminder) error {
	return s.onOrder(ctx, reminderConsumer, messageID, r.OrderID, func(ctx context.Context, tx pgx.Tx, o Order) error {
		messages := s.reminded(o, r.ReminderNumber)
		if o.Status == StatusPending {
			s.count("reminder")
		}
		return outbox.Add(ctx, tx, messages...)
	})
}

// reminded is what reminder n of o queues: the next timer and, while o is
// PENDING, the e-mail.
func (s *Saga) reminded(o Order, reminder int) []outbox.Message {
	var messages []outbox.Message
	if next, ok := s.nextTimer(o, reminder); ok {
		messages = append(messages, next)
	}
	if o.Status == StatusPending {
		messages = append(messages, outbox.Work(events.MailPaymentReminder, events.PaymentReminderMail{
			Email: o.email, OrderID: o.ID, ReminderNumber: reminder,
			DueAt: o.CreatedAt.Add(s.cfg.ExpiryDelay).UTC().Truncate(time.Second), TotalAmount: o.TotalAmount, Items: mailItems(o.Items),
		}))
	}
	return messages
}

// Expire ends an order's life: an unpaid order is cancelled (and restocked), a
// paid one completed. Payment takes the same row lock, so one of the two wins
// cleanly: a paid order is never cancelled.
func (s *Saga) Expire(ctx context.Context, messageID string, e events.OrderExpiry) error {
	return s.onOrder(ctx, expiryConsumer, messageID, e.OrderID, func(ctx context.Context, tx pgx.Tx, o Order) error {
		switch o.Status {
		case StatusPending:
			s.count("expired")
			onCommit(ctx, func() { s.metrics.countCancelled(CancelExpired) })
			return cancel(ctx, tx, o, CancelExpired)
		case StatusPaid:
			s.count("completed")
			onCommit(ctx, s.metrics.completed.Inc)
			_, err := tx.Exec(ctx, `UPDATE orders SET status = $2, updated_at = now() WHERE id = $1`, o.ID, StatusCompleted)
			return err
		}
		return nil
	})
}
