package order

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
)

// Create places an order once per (customer, request id). It returns the order
// and whether this call created it (false: an earlier request with the same id did).
func (o *Orders) Create(ctx context.Context, c Customer, requestID, description string, lines []Line) (Order, bool, error) {
	// The lock keeps a concurrent twin from doing the work twice; the unique key
	// (customer_id, request_id) is what guarantees one order, so when Redis is
	// down the request goes on without the lock. A retry of a request that
	// already made its order finds it in the transaction (withinLimits, or
	// twinCommitted when pricing fails), so nothing is asked of PostgreSQL
	// before: placing an order is the common case.
	lock, err := redisx.Acquire(ctx, o.redis, orderLockKey(c.ID, requestID), o.cfg.LockTTL)
	switch {
	case errors.Is(err, redisx.ErrLocked):
		return Order{}, false, ErrRequestDuplicate
	case err != nil:
		o.logger.WarnContext(ctx, "order lock unavailable; relying on the unique request id", "error", err)
	default:
		defer func() {
			if _, err := lock.Release(context.WithoutCancel(ctx)); err != nil {
				o.logger.WarnContext(ctx, "release order lock", "error", err)
			}
		}()
	}

	var order Order
	created := false
	err = pg.InTx(ctx, o.db.Primary, func(tx pgx.Tx) error {
		items, total, err := price(ctx, tx, lines)
		if err != nil {
			// A retry of a request that made its order gets the order, whatever
			// became of its products since.
			// (When the error was PostgreSQL's, the transaction is aborted and
			// the check fails: the error stands.)
			if twin, twinErr := twinCommitted(ctx, tx, c.ID, requestID); twinErr == nil && twin {
				return nil
			}
			return err
		}
		if twin, err := o.withinLimits(ctx, tx, c.ID, requestID, lines); err != nil || twin {
			return err // a twin committed first: created stays false
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO orders (customer_id, customer_email, request_id, description, total_amount)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (customer_id, request_id) DO NOTHING
			RETURNING id, status, created_at, updated_at`,
			c.ID, c.Email, requestID, description, total.String(),
		).Scan(&order.ID, &order.Status, &order.CreatedAt, &order.UpdatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // a twin without the lock committed first
		}
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		created = true
		order.TotalAmount, order.Description, order.customerID, order.email = total, description, c.ID, c.Email
		if err := insertItems(ctx, tx, order.ID, items); err != nil {
			return err
		}
		order.Items = items
		return o.announceCreated(ctx, tx, order)
	})
	if err != nil {
		o.metrics.countRefused(err)
		return Order{}, false, err
	}
	if !created {
		existing, err := o.byRequest(ctx, c.ID, requestID)
		return existing, false, err
	}
	o.metrics.created.Inc()
	return order, true, nil
}

// insertItems writes an order's lines in one statement and gives each its id.
// The rows are inserted in the lines' order (ORDER BY n), so their ids, drawn
// from the sequence one row after the other, increase in that order too.
func insertItems(ctx context.Context, tx pgx.Tx, orderID int64, items []Item) error {
	products, names, quantities, prices := make([]int64, len(items)), make([]string, len(items)), make([]int64, len(items)), make([]string, len(items))
	for i, it := range items {
		products[i], names[i], quantities[i], prices[i] = it.ProductID, it.name, it.Quantity, it.Price.String()
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO order_items (order_id, product_id, product_name, quantity, price)
		SELECT $1, l.product_id, l.product_name, l.quantity, l.price::numeric
		FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY AS l(product_id, product_name, quantity, price, n)
		ORDER BY l.n
		RETURNING id`, orderID, products, names, quantities, prices)
	if err != nil {
		return fmt.Errorf("insert order items: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("insert order items: %w", err)
	}
	if len(ids) != len(items) {
		return fmt.Errorf("insert order items: %d rows for %d lines", len(ids), len(items))
	}
	slices.Sort(ids)
	for i := range items {
		items[i].ID = ids[i]
	}
	return nil
}

// withinLimits takes the customer's lock and refuses the order if it would
// take the customer past MaxPendingOrders or MaxPendingUnits. The lock is a row
// per customer, held until the transaction ends, so one customer's orders are
// counted and created one at a time: requests fired in parallel cannot all see
// the same count and all pass. The row carries the customer's pending orders
// and units, kept by triggers (migration 0005) as orders are placed and leave
// PENDING. twin reports that an order with this request id exists: a retry of
// a request that made its order, or a twin that committed while the lock was
// awaited; it is the answer, whatever the limits say now.
func (o *Orders) withinLimits(ctx context.Context, tx pgx.Tx, customerID int64, requestID string, lines []Line) (twin bool, err error) {
	// One statement records the customer, locks the row and reads its counts: a
	// new row is locked by its insert, an existing one by ON CONFLICT DO
	// UPDATE, which waits for whoever holds it and then works on the latest
	// committed version, so the counts are those every earlier order left.
	// The twin check in RETURNING reads the statement's snapshot, taken before
	// the wait: a twin that committed meanwhile is caught by the order's unique
	// key instead, or, when the limits refuse, by twinCommitted.
	var orders, units int64
	if err := tx.QueryRow(ctx, `
		INSERT INTO customers AS c (id) VALUES ($1)
		ON CONFLICT (id) DO UPDATE SET pending_orders = c.pending_orders
		RETURNING pending_orders, pending_units,
			EXISTS (SELECT 1 FROM orders WHERE customer_id = $1 AND request_id = $2)`,
		customerID, requestID).Scan(&orders, &units, &twin); err != nil {
		return false, fmt.Errorf("record and lock customer %d: %w", customerID, err)
	}
	if twin {
		return true, nil
	}
	var wanted int64
	for _, l := range lines {
		wanted += l.Quantity
	}
	var refusal error
	switch {
	case orders >= int64(o.cfg.MaxPendingOrders):
		refusal = &PendingLimitError{Limit: ErrTooManyPendingOrders, Detail: fmt.Sprintf(
			"a customer may have at most %d pending (unpaid) orders; pay or cancel one, or wait for one to expire", o.cfg.MaxPendingOrders)}
	case units+wanted > o.cfg.MaxPendingUnits:
		refusal = &PendingLimitError{Limit: ErrTooManyPendingUnits, Detail: fmt.Sprintf(
			"a customer may hold at most %d units in pending (unpaid) orders; %d are held and this order adds %d", o.cfg.MaxPendingUnits, units, wanted)}
	default:
		return false, nil
	}
	if twin, err := twinCommitted(ctx, tx, customerID, requestID); err != nil || twin {
		return twin, err
	}
	return false, refusal
}

// twinCommitted reports whether an order with this request id exists now
// (a statement of its own: it sees every commit before it).
func twinCommitted(ctx context.Context, tx pgx.Tx, customerID int64, requestID string) (bool, error) {
	var twin bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE customer_id = $1 AND request_id = $2)`,
		customerID, requestID).Scan(&twin); err != nil {
		return false, fmt.Errorf("find order by request id: %w", err)
	}
	return twin, nil
}

// price reads the products from the local copy and computes the lines and the
// total exactly. The local stock is a fast fail only; the product service's
// reservation decides.
func price(ctx context.Context, tx pgx.Tx, lines []Line) ([]Item, money.Money, error) {
	ids := make([]int64, len(lines))
	for i, l := range lines {
		ids[i] = l.ProductID
	}
	type known struct {
		name     string
		price    string
		quantity int64
	}
	products := map[int64]known{}
	rows, err := tx.Query(ctx, `SELECT id, name, price, quantity FROM products WHERE id = ANY($1) AND NOT deleted`, ids)
	if err != nil {
		return nil, money.Money{}, fmt.Errorf("read products: %w", err)
	}
	for rows.Next() {
		var id int64
		var k known
		if err := rows.Scan(&id, &k.name, &k.price, &k.quantity); err != nil {
			rows.Close()
			return nil, money.Money{}, err
		}
		products[id] = k
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, money.Money{}, fmt.Errorf("read products: %w", err)
	}
	items := make([]Item, len(lines))
	total := money.MustParse("0")
	for i, l := range lines {
		p, ok := products[l.ProductID]
		if !ok {
			return nil, money.Money{}, notOnSale(ctx, tx, l.ProductID)
		}
		if p.quantity < l.Quantity {
			return nil, money.Money{}, fmt.Errorf("%w: product %d has %d", ErrInsufficientStock, l.ProductID, p.quantity)
		}
		unit, err := money.Parse(p.price)
		if err != nil {
			return nil, money.Money{}, err
		}
		items[i] = Item{ProductID: l.ProductID, Quantity: l.Quantity, Price: unit, name: p.name}
		total = money.Money{Decimal: total.Add(unit.Mul(decimal.NewFromInt(l.Quantity)))}
	}
	return items, total, nil
}

// announceCreated writes order-created and the first of the order's timers
// (timerChain), in the order's transaction: either the order exists with its
// saga and timers, or nothing does.
func (o *Orders) announceCreated(ctx context.Context, tx pgx.Tx, order Order) error {
	created := events.OrderCreated{
		OrderID: order.ID, CustomerID: order.customerID, CustomerEmail: order.email,
		TotalAmount: order.TotalAmount, CreatedAt: order.CreatedAt,
	}
	for _, it := range order.Items {
		created.Items = append(created.Items, events.OrderCreatedItem{ProductID: it.ProductID, Quantity: it.Quantity, Price: it.Price})
	}
	first := timerChain(o.cfg.ReminderDelays, o.cfg.ExpiryDelay)[0]
	return outbox.Add(ctx, tx, outbox.Event(events.TopicOrderCreated, events.Key(order.ID), created), first.message(order.ID, order.CreatedAt))
}

// orderLockKey is the Redis key of the idempotency lock of one order request.
func orderLockKey(customerID int64, requestID string) string {
	return "order:lock:" + strconv.FormatInt(customerID, 10) + ":" + requestID
}

// byRequest finds the order a customer's request id created (on the primary:
// it must see a twin's order the moment it commits).
func (o *Orders) byRequest(ctx context.Context, customerID int64, requestID string) (Order, error) {
	var id int64
	err := o.db.Primary.QueryRow(ctx, `SELECT id FROM orders WHERE customer_id = $1 AND request_id = $2`, customerID, requestID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrOrderNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("find order by request id: %w", err)
	}
	return load(ctx, o.db.Primary, id, customerID)
}

// productsInFlight bounds how far above the highest product id the catalogue
// copy holds an order may name a product that exists but whose product-created
// event has not arrived: ids are handed out in sequence, so that many products
// would have to be created faster than their events travel. Beyond it, an id is
// not a product (a hostile or mistyped one, 9223372036854775807 say).
const productsInFlight = 1000

// notOnSale tells a product the catalogue copy has not heard of yet from one
// that is not for sale. Product ids grow, and the copy keeps deleted products
// as tombstones: an id just above every id it holds may belong to a product
// created a moment ago whose event is still on its way (the first one after a
// start takes longest), so the answer is "retry", not "no such product". An id
// below the highest it holds is almost always a product that does not exist or
// was deleted; the exception is a product created within the same few
// milliseconds as a higher one whose event took another partition.
func notOnSale(ctx context.Context, tx pgx.Tx, productID int64) error {
	// arrived: the event committed between the pricing query and this one
	// (each statement of the transaction sees the latest commits).
	var highest int64
	var arrived bool
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0), coalesce(bool_or(id = $1 AND NOT deleted), false) FROM products`, productID).Scan(&highest, &arrived); err != nil {
		return fmt.Errorf("read the highest product id: %w", err)
	}
	if arrived || (productID > highest && productID-highest <= productsInFlight) {
		return &ProductNotYetKnownError{ProductID: productID}
	}
	return &ProductNotOnSaleError{ProductID: productID}
}
