package order

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
)

// CancelByCustomer cancels a PENDING order, once per request id.
func (o *Orders) CancelByCustomer(ctx context.Context, c Customer, requestID string, orderID int64) (Action, error) {
	answer, acted, err := o.act(ctx, c, requestID, actionCancel, orderID, func(tx pgx.Tx, order Order) error {
		return cancel(ctx, tx, order, CancelCustomer)
	})
	if acted {
		o.metrics.countCancelled(CancelCustomer)
	}
	return answer, err
}

// cancel moves a locked PENDING order to CANCELLED: order-cancelled for the
// product service (restock) and the cancellation e-mail.
func cancel(ctx context.Context, tx pgx.Tx, order Order, reason CancelReason) error {
	if _, err := tx.Exec(ctx, `UPDATE orders SET status = $3, cancel_reason = $2, updated_at = now() WHERE id = $1`, order.ID, reason, StatusCancelled); err != nil {
		return fmt.Errorf("cancel order %d: %w", order.ID, err)
	}
	return outbox.Add(ctx, tx, cancellation(order, reason)...)
}

// cancellation is what cancelling order says: order-cancelled for the product
// service and the e-mail to the customer.
func cancellation(order Order, reason CancelReason) []outbox.Message {
	cancelled := events.OrderCancelled{OrderID: order.ID, CustomerID: order.customerID, Reason: string(reason)}
	for _, it := range order.Items {
		cancelled.Items = append(cancelled.Items, events.CancelledItem{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return []outbox.Message{
		outbox.Event(events.TopicOrderCancelled, events.Key(order.ID), cancelled),
		outbox.Work(events.MailOrderCancelled, events.OrderCancelledMail{
			Email: order.email, OrderID: order.ID, Reason: string(reason), TotalAmount: order.TotalAmount, Items: mailItems(order.Items),
		}),
	}
}
