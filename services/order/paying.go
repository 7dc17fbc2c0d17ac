package order

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
)

// Pay marks a reserved PENDING order PAID, once per request id, and queues the
// order-success e-mail.
func (o *Orders) Pay(ctx context.Context, c Customer, requestID string, orderID int64) (Action, error) {
	changed := false
	answer, err := o.act(ctx, c, requestID, actionPay, orderID, func(tx pgx.Tx, order Order) (Action, error) {
		changed = true
		if err := pendingOrWhy(order); err != nil {
			return Action{}, err
		}
		if order.stockStatus != stockReserved {
			return Action{}, ErrNotReserved
		}
		var paidAt time.Time
		if err := tx.QueryRow(ctx, `UPDATE orders SET status = $2, paid_at = now(), updated_at = now() WHERE id = $1 RETURNING paid_at`, order.ID, StatusPaid).Scan(&paidAt); err != nil {
			return Action{}, fmt.Errorf("pay order %d: %w", order.ID, err)
		}
		// The product service records the reserved units as sold.
		paid, err := json.Marshal(events.OrderPaid{OrderID: order.ID, CustomerID: c.ID, PaidAt: paidAt})
		if err != nil {
			return Action{}, fmt.Errorf("encode %s: %w", events.TopicOrderPaid, err)
		}
		eventID := uuid.NewString()
		if err := outbox.Add(ctx, tx, outbox.Message{
			EventID: eventID, Destination: outbox.Kafka, Topic: events.TopicOrderPaid, Key: events.Key(order.ID),
			Headers: events.Headers(events.TopicOrderPaid, eventID), Payload: paid,
		}); err != nil {
			return Action{}, err
		}
		if err := mail(ctx, tx, events.RoutingOrderSuccess, events.OrderSuccessMail{
			Email: order.email, OrderID: order.ID, TotalAmount: order.TotalAmount, Items: mailItems(order.Items),
		}); err != nil {
			return Action{}, err
		}
		return Action{OrderID: order.ID, Status: StatusPaid}, nil
	})
	if err == nil && changed {
		o.metrics.paid.Inc()
	}
	return answer, err
}
