package order

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/platform/pg"
)

// Action is the answer to pay and cancel.
type Action struct {
	OrderID int64  `json:"order_id"`
	Status  Status `json:"status"`
}

// action names a customer's action in order_actions.action.
type action string

const (
	actionPay    action = "pay"
	actionCancel action = "cancel"
)

// outcome is the status the action leads to, the answer to its retries.
func (a action) outcome() Status {
	if a == actionPay {
		return StatusPaid
	}
	return StatusCancelled
}

// act runs a customer's action on a PENDING order under the order's lock,
// recording the request id so that a retry gets the first answer back. acted
// reports that do ran and its change committed, for the metrics: a retry did
// not act.
func (o *Orders) act(ctx context.Context, c Customer, requestID string, action action, orderID int64, do func(pgx.Tx, Order) error) (answer Action, acted bool, err error) {
	did := false
	err = pg.InTx(ctx, o.db.Primary, func(tx pgx.Tx) error {
		order, err := lockOrder(ctx, tx, orderID, c.ID)
		if err != nil {
			return err
		}
		var earlier int64
		err = tx.QueryRow(ctx, `SELECT order_id FROM order_actions WHERE customer_id = $1 AND action = $2 AND request_id = $3`, c.ID, action, requestID).Scan(&earlier)
		switch {
		case err == nil && earlier == orderID:
			answer = Action{OrderID: orderID, Status: action.outcome()}
			return nil
		case err == nil:
			return ErrRequestReused
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("find earlier %s request: %w", action, err)
		}
		if err := pendingOrWhy(order); err != nil {
			return err
		}
		if err := do(tx, order); err != nil {
			return err
		}
		answer, did = Action{OrderID: orderID, Status: action.outcome()}, true
		if _, err := tx.Exec(ctx, `INSERT INTO order_actions (customer_id, request_id, action, order_id) VALUES ($1, $2, $3, $4)`, c.ID, requestID, action, orderID); err != nil {
			return fmt.Errorf("record %s request: %w", action, err)
		}
		return nil
	})
	return answer, err == nil && did, err
}

func pendingOrWhy(order Order) error {
	switch order.Status {
	case StatusPending:
		return nil
	case StatusCancelled:
		return ErrAlreadyCancelled
	default: // PAID, COMPLETED
		return ErrAlreadyPaid
	}
}
