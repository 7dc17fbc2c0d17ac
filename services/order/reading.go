package order

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/money"
)

// Get returns a customer's own order from the replica pool; anyone else's is
// "not found", so ids cannot be probed.
func (o *Orders) Get(ctx context.Context, customerID, id int64) (Order, error) {
	return load(ctx, o.db.Replica, id, customerID)
}

// ListQuery selects a customer's orders.
type ListQuery struct {
	From, To    time.Time // inclusive days, in UTC
	Status      Status    // empty: any
	Page, Limit int
}

// List returns a customer's orders created within the query's days, newest
// first, from the replica pool, with the total count.
func (o *Orders) List(ctx context.Context, customerID int64, q ListQuery) ([]Order, int, error) {
	const filter = `customer_id = $1 AND created_at >= $2 AND created_at < $3 AND ($4 = '' OR status = $4)`
	from, until := q.From, q.To.AddDate(0, 0, 1)
	var total int
	if err := o.db.Replica.QueryRow(ctx, `SELECT count(*) FROM orders WHERE `+filter, customerID, from, until, q.Status).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count orders: %w", err)
	}
	rows, err := o.db.Replica.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+filter+`
		ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6`, customerID, from, until, q.Status, q.Limit, (q.Page-1)*q.Limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list orders: %w", err)
	}
	list := []Order{}
	var ids []int64
	for rows.Next() {
		order, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, 0, err
		}
		list = append(list, order)
		ids = append(ids, order.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list orders: %w", err)
	}
	items, err := loadItems(ctx, o.db.Replica, ids)
	if err != nil {
		return nil, 0, err
	}
	for i := range list {
		list[i].Items = items[list[i].ID]
	}
	return list, total, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const orderColumns = `id, customer_id, customer_email, total_amount, description, status, cancel_reason, stock_status, created_at, updated_at, timers_chained`

func scanOrder(row pgx.Row) (Order, error) {
	var o Order
	var total string
	if err := row.Scan(&o.ID, &o.customerID, &o.email, &total, &o.Description, &o.Status, &o.CancelReason, &o.stockStatus, &o.CreatedAt, &o.UpdatedAt, &o.timersChained); err != nil {
		return Order{}, err
	}
	m, err := money.Parse(total)
	if err != nil {
		return Order{}, err
	}
	o.TotalAmount = m
	return o, nil
}

// load reads an order with its items; customerID 0 means any owner (timers).
func load(ctx context.Context, q querier, id, customerID int64) (Order, error) {
	return readOrder(ctx, q, id, customerID, false)
}

// lockOrder reads an order FOR UPDATE: payment, cancellation, the saga and the
// timers all take this lock, so each sees the others' outcome, never a mix.
func lockOrder(ctx context.Context, tx pgx.Tx, id, customerID int64) (Order, error) {
	return readOrder(ctx, tx, id, customerID, true)
}

// lockOrders locks the orders of ids that exist, in id order, and reads them
// with their items.
func lockOrders(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]*Order, error) {
	rows, err := tx.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock %d orders: %w", len(ids), err)
	}
	locked, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("lock %d orders: %w", len(ids), err)
	}
	found := make([]int64, len(locked))
	for i, o := range locked {
		found[i] = o.ID
	}
	items, err := loadItems(ctx, tx, found)
	if err != nil {
		return nil, err
	}
	orders := make(map[int64]*Order, len(locked))
	for i := range locked {
		locked[i].Items = items[locked[i].ID]
		orders[locked[i].ID] = &locked[i]
	}
	return orders, nil
}

func readOrder(ctx context.Context, q querier, id, customerID int64, forUpdate bool) (Order, error) {
	query, verb := `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND ($2 = 0 OR customer_id = $2)`, "load"
	if forUpdate {
		query, verb = query+` FOR UPDATE`, "lock"
	}
	o, err := scanOrder(q.QueryRow(ctx, query, id, customerID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrOrderNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("%s order %d: %w", verb, id, err)
	}
	items, err := loadItems(ctx, q, []int64{id})
	if err != nil {
		return Order{}, err
	}
	o.Items = items[id]
	return o, nil
}

func loadItems(ctx context.Context, q querier, orderIDs []int64) (map[int64][]Item, error) {
	rows, err := q.Query(ctx, `SELECT order_id, id, product_id, product_name, quantity, price FROM order_items WHERE order_id = ANY($1) ORDER BY id`, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("load order items: %w", err)
	}
	defer rows.Close()
	out := map[int64][]Item{}
	for rows.Next() {
		var orderID int64
		var it Item
		var unit string
		if err := rows.Scan(&orderID, &it.ID, &it.ProductID, &it.name, &it.Quantity, &unit); err != nil {
			return nil, err
		}
		if it.Price, err = money.Parse(unit); err != nil {
			return nil, err
		}
		out[orderID] = append(out[orderID], it)
	}
	return out, rows.Err()
}
