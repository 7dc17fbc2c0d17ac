package order

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
)

// Pay marks a reserved PENDING order PAID, once per request id: order-paid for
// the product service, which records the reserved units as sold, and the
// order-success e-mail.
func (o *Orders) Pay(ctx context.Context, c Customer, requestID string, orderID int64) (Action, error) {
	answer, acted, err := o.act(ctx, c, requestID, actionPay, orderID, func(tx pgx.Tx, order Order) error {
		if order.stockStatus != stockReserved {
			return ErrNotReserved
		}
		var paidAt time.Time
		if err := tx.QueryRow(ctx, `UPDATE orders SET status = $2, paid_at = now(), updated_at = now() WHERE id = $1 RETURNING paid_at`, order.ID, StatusPaid).Scan(&paidAt); err != nil {
			return fmt.Errorf("pay order %d: %w", order.ID, err)
		}
		return outbox.Add(ctx, tx,
			outbox.Event(events.TopicOrderPaid, events.Key(order.ID), events.OrderPaid{OrderID: order.ID, CustomerID: c.ID, PaidAt: paidAt}),
			outbox.Work(events.MailOrderSuccess, events.OrderSuccessMail{
				Email: order.email, OrderID: order.ID, TotalAmount: order.TotalAmount, Items: mailItems(order.Items),
			}))
	})
	if acted {
		o.metrics.paid.Inc()
	}
	return answer, err
}
