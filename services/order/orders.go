package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/shopspring/decimal"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
)

// Errors of the use cases, with the contract's messages; the HTTP layer maps
// each to its status.
var (
	ErrOrderNotFound     = errors.New("order not found")
	ErrProductNotFound   = errors.New("product not found")
	ErrInsufficientStock = errors.New("insufficient product stock")
	ErrRequestDuplicate  = errors.New("request duplicate")
	ErrAlreadyPaid       = errors.New("order already paid")
	ErrAlreadyCancelled  = errors.New("order already cancelled")
	ErrNotReserved       = errors.New("order stock is not reserved yet; try again shortly")
	ErrRequestReused     = errors.New("request_id was already used for another order")
	// The pending limits (Config.MaxPendingOrders, MaxPendingUnits): 409, the
	// state of the customer's other orders forbids this one.
	ErrTooManyPendingOrders = errors.New("too many pending orders")
	ErrTooManyPendingUnits  = errors.New("too many units in pending orders")
)

// Item is one line of an order.
type Item struct {
	ID        int64        `json:"id"`
	ProductID int64        `json:"product_id"`
	Quantity  int64        `json:"quantity"`
	Price     events.Money `json:"price"`
	name      string
}

// Order is an order as the API shows it.
type Order struct {
	ID           int64        `json:"id"`
	TotalAmount  events.Money `json:"total_amount"`
	Description  string       `json:"description"`
	Status       string       `json:"status"`
	CancelReason *string      `json:"cancel_reason"`
	Items        []Item       `json:"items"`
	CreatedAt    time.Time    `json:"created_at"`
	UpdatedAt    time.Time    `json:"updated_at"`

	customerID  int64
	email       string
	stockStatus string
}

// Customer is who places and owns orders (from the gateway's identity headers).
type Customer struct {
	ID    int64
	Email string
}

// Line is what a client orders: a product and a quantity.
type Line struct {
	ProductID int64
	Quantity  int64
}

// Orders holds the order use cases.
type Orders struct {
	db      *pg.DB
	redis   redis.UniversalClient
	cfg     Config
	logger  *slog.Logger
	created func() // counts creations; tests and metrics hook in
	// refused counts orders refused by a pending limit ("orders", "units"):
	// a customer who keeps meeting them may be hoarding.
	refused  func(limit string)
	counters orderCounters
}

// orderCounters count the orders' transitions for metrics; the hooks run only
// after the transaction that made the change committed.
type orderCounters struct {
	paid, completed func()
	cancelled       func(reason string)
}

func (c orderCounters) countPaid() {
	if c.paid != nil {
		c.paid()
	}
}

func (c orderCounters) countCompleted() {
	if c.completed != nil {
		c.completed()
	}
}

func (c orderCounters) countCancelled(reason string) {
	if c.cancelled != nil {
		c.cancelled(reason)
	}
}

// Create places an order once per (customer, request id). It returns the order
// and whether this call created it (false: an earlier request with the same id did).
func (o *Orders) Create(ctx context.Context, c Customer, requestID, description string, lines []Line) (Order, bool, error) {
	if existing, err := o.byRequest(ctx, c.ID, requestID); err == nil || !errors.Is(err, ErrOrderNotFound) {
		return existing, false, err
	}
	// The lock keeps a concurrent twin from doing the work twice; the unique key
	// (customer_id, request_id) is what guarantees one order, so when Redis is
	// down the request goes on without the lock.
	lock, err := redisx.Acquire(ctx, o.redis, events.OrderLockKey(c.ID, requestID), o.cfg.LockTTL)
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
	if existing, err := o.byRequest(ctx, c.ID, requestID); err == nil || !errors.Is(err, ErrOrderNotFound) {
		return existing, false, err
	}

	var order Order
	created := false
	err = pg.InTx(ctx, o.db.Primary, func(tx pgx.Tx) error {
		items, total, err := price(ctx, tx, lines)
		if err != nil {
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
		for i := range items {
			if err := tx.QueryRow(ctx, `
				INSERT INTO order_items (order_id, product_id, product_name, quantity, price)
				VALUES ($1, $2, $3, $4, $5) RETURNING id`,
				order.ID, items[i].ProductID, items[i].name, items[i].Quantity, items[i].Price.String()).Scan(&items[i].ID); err != nil {
				return fmt.Errorf("insert order item: %w", err)
			}
		}
		order.Items = items
		return o.announceCreated(ctx, tx, order)
	})
	if err != nil {
		if o.refused != nil {
			switch {
			case errors.Is(err, ErrTooManyPendingOrders):
				o.refused("orders")
			case errors.Is(err, ErrTooManyPendingUnits):
				o.refused("units")
			}
		}
		return Order{}, false, err
	}
	if !created {
		existing, err := o.byRequest(ctx, c.ID, requestID)
		return existing, false, err
	}
	if o.created != nil {
		o.created()
	}
	return order, true, nil
}

// withinLimits takes the customer's lock and refuses the order if it would
// take the customer past MaxPendingOrders or MaxPendingUnits. The lock is a row
// per customer, held until the transaction ends, so one customer's orders are
// counted and created one at a time: requests fired in parallel cannot all see
// the same count and all pass. Leaving PENDING (paid, cancelled, expired) needs
// no lock, since it only lowers the count. twin reports that an order with this
// request id committed while the lock was awaited; it is the answer, whatever
// the limits say now.
func (o *Orders) withinLimits(ctx context.Context, tx pgx.Tx, customerID int64, requestID string, lines []Line) (twin bool, err error) {
	if _, err := tx.Exec(ctx, `INSERT INTO customers (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, customerID); err != nil {
		return false, fmt.Errorf("record customer %d: %w", customerID, err)
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM customers WHERE id = $1 FOR UPDATE`, customerID); err != nil {
		return false, fmt.Errorf("lock customer %d: %w", customerID, err)
	}
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE customer_id = $1 AND request_id = $2)`, customerID, requestID).Scan(&twin); err != nil || twin {
		return twin, err
	}
	var orders, units int64
	if err := tx.QueryRow(ctx, `
		SELECT count(DISTINCT o.id), coalesce(sum(i.quantity), 0)
		FROM orders o JOIN order_items i ON i.order_id = o.id
		WHERE o.customer_id = $1 AND o.status = 'PENDING'`, customerID).Scan(&orders, &units); err != nil {
		return false, fmt.Errorf("count the pending orders of customer %d: %w", customerID, err)
	}
	var wanted int64
	for _, l := range lines {
		wanted += l.Quantity
	}
	switch {
	case orders >= int64(o.cfg.MaxPendingOrders):
		return false, fmt.Errorf("%w: a customer may have at most %d pending (unpaid) orders; pay or cancel one, or wait for one to expire",
			ErrTooManyPendingOrders, o.cfg.MaxPendingOrders)
	case units+wanted > o.cfg.MaxPendingUnits:
		return false, fmt.Errorf("%w: a customer may hold at most %d units in pending (unpaid) orders; %d are held and this order adds %d",
			ErrTooManyPendingUnits, o.cfg.MaxPendingUnits, units, wanted)
	}
	return false, nil
}

// price reads the products from the local copy and computes the lines and the
// total exactly. The local stock is a fast fail only; the product service's
// reservation decides.
func price(ctx context.Context, tx pgx.Tx, lines []Line) ([]Item, events.Money, error) {
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
		return nil, events.Money{}, fmt.Errorf("read products: %w", err)
	}
	for rows.Next() {
		var id int64
		var k known
		if err := rows.Scan(&id, &k.name, &k.price, &k.quantity); err != nil {
			rows.Close()
			return nil, events.Money{}, err
		}
		products[id] = k
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, events.Money{}, fmt.Errorf("read products: %w", err)
	}
	items := make([]Item, len(lines))
	total := events.MustMoney("0")
	for i, l := range lines {
		p, ok := products[l.ProductID]
		if !ok {
			return nil, events.Money{}, fmt.Errorf("%w: %d", ErrProductNotFound, l.ProductID)
		}
		if p.quantity < l.Quantity {
			return nil, events.Money{}, fmt.Errorf("%w: product %d has %d", ErrInsufficientStock, l.ProductID, p.quantity)
		}
		unit, err := events.ParseMoney(p.price)
		if err != nil {
			return nil, events.Money{}, err
		}
		items[i] = Item{ProductID: l.ProductID, Quantity: l.Quantity, Price: unit, name: p.name}
		total = events.Money{Decimal: total.Add(unit.Mul(decimal.NewFromInt(l.Quantity)))}
	}
	return items, total, nil
}

// announceCreated writes order-created and the order's timers, all in the
// order's transaction: either the order exists with its saga and timers, or
// nothing does.
func (o *Orders) announceCreated(ctx context.Context, tx pgx.Tx, order Order) error {
	created := events.OrderCreated{
		OrderID: order.ID, CustomerID: order.customerID, CustomerEmail: order.email,
		TotalAmount: order.TotalAmount, CreatedAt: order.CreatedAt,
	}
	for _, it := range order.Items {
		created.Items = append(created.Items, events.OrderCreatedItem{ProductID: it.ProductID, Quantity: it.Quantity, Price: it.Price})
	}
	// One statement for the event and every timer (outbox.Add).
	msgs := make([]outbox.Message, 0, len(o.cfg.ReminderDelays)+2)
	msg, err := eventMessage(events.TopicOrderCreated, order.ID, created)
	if err != nil {
		return err
	}
	msgs = append(msgs, msg)
	for i, delay := range o.cfg.ReminderDelays {
		if msg, err = timerMessage(delay, events.OrderReminder{OrderID: order.ID, ReminderNumber: i + 1}); err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	if msg, err = timerMessage(o.cfg.ExpiryDelay, events.OrderAutoCancel{OrderID: order.ID}); err != nil {
		return err
	}
	return outbox.Add(ctx, tx, append(msgs, msg)...)
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

// Get returns a customer's own order from the replica pool; anyone else's is
// "not found", so ids cannot be probed.
func (o *Orders) Get(ctx context.Context, customerID, id int64) (Order, error) {
	return load(ctx, o.db.Replica, id, customerID)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const orderColumns = `id, customer_id, customer_email, total_amount, description, status, cancel_reason, stock_status, created_at, updated_at`

func scanOrder(row pgx.Row) (Order, error) {
	var o Order
	var total string
	if err := row.Scan(&o.ID, &o.customerID, &o.email, &total, &o.Description, &o.Status, &o.CancelReason, &o.stockStatus, &o.CreatedAt, &o.UpdatedAt); err != nil {
		return Order{}, err
	}
	m, err := events.ParseMoney(total)
	if err != nil {
		return Order{}, err
	}
	o.TotalAmount = m
	return o, nil
}

// load reads an order with its items; customerID 0 means any owner (timers).
func load(ctx context.Context, q querier, id, customerID int64) (Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND ($2 = 0 OR customer_id = $2)`, id, customerID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrOrderNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("load order %d: %w", id, err)
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
		if it.Price, err = events.ParseMoney(unit); err != nil {
			return nil, err
		}
		out[orderID] = append(out[orderID], it)
	}
	return out, rows.Err()
}

// lockOrder reads an order FOR UPDATE: payment, cancellation, the saga and the
// timers all take this lock, so each sees the others' outcome, never a mix.
func lockOrder(ctx context.Context, tx pgx.Tx, id, customerID int64) (Order, error) {
	o, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND ($2 = 0 OR customer_id = $2) FOR UPDATE`, id, customerID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrOrderNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("lock order %d: %w", id, err)
	}
	items, err := loadItems(ctx, tx, []int64{id})
	if err != nil {
		return Order{}, err
	}
	o.Items = items[id]
	return o, nil
}

// Action is the answer to pay and cancel.
type Action struct {
	OrderID int64  `json:"order_id"`
	Status  string `json:"status"`
}

// Pay marks a reserved PENDING order PAID, once per request id, and queues the
// order-success e-mail.
func (o *Orders) Pay(ctx context.Context, c Customer, requestID string, orderID int64) (Action, error) {
	changed := false
	answer, err := o.act(ctx, c, requestID, "pay", orderID, func(tx pgx.Tx, order Order) (Action, error) {
		changed = true
		if err := pendingOrWhy(order); err != nil {
			return Action{}, err
		}
		if order.stockStatus != "reserved" {
			return Action{}, ErrNotReserved
		}
		var paidAt time.Time
		if err := tx.QueryRow(ctx, `UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now() WHERE id = $1 RETURNING paid_at`, order.ID).Scan(&paidAt); err != nil {
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
		return Action{OrderID: order.ID, Status: events.StatusPaid}, nil
	})
	if err == nil && changed {
		o.counters.countPaid()
	}
	return answer, err
}

// CancelByCustomer cancels a PENDING order, once per request id.
func (o *Orders) CancelByCustomer(ctx context.Context, c Customer, requestID string, orderID int64) (Action, error) {
	changed := false
	answer, err := o.act(ctx, c, requestID, "cancel", orderID, func(tx pgx.Tx, order Order) (Action, error) {
		changed = true
		if err := pendingOrWhy(order); err != nil {
			return Action{}, err
		}
		if err := cancel(ctx, tx, order, events.CancelCustomer); err != nil {
			return Action{}, err
		}
		return Action{OrderID: order.ID, Status: events.StatusCancelled}, nil
	})
	if err == nil && changed {
		o.counters.countCancelled(events.CancelCustomer)
	}
	return answer, err
}

// act runs a customer's action on an order under the order's lock, recording
// the request id so that a retry gets the first answer back.
func (o *Orders) act(ctx context.Context, c Customer, requestID, action string, orderID int64, do func(pgx.Tx, Order) (Action, error)) (Action, error) {
	var answer Action
	err := pg.InTx(ctx, o.db.Primary, func(tx pgx.Tx) error {
		order, err := lockOrder(ctx, tx, orderID, c.ID)
		if err != nil {
			return err
		}
		var earlier int64
		err = tx.QueryRow(ctx, `SELECT order_id FROM order_actions WHERE customer_id = $1 AND action = $2 AND request_id = $3`, c.ID, action, requestID).Scan(&earlier)
		switch {
		case err == nil && earlier == orderID:
			answer = Action{OrderID: orderID, Status: map[string]string{"pay": events.StatusPaid, "cancel": events.StatusCancelled}[action]}
			return nil
		case err == nil:
			return ErrRequestReused
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("find earlier %s request: %w", action, err)
		}
		if answer, err = do(tx, order); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO order_actions (customer_id, request_id, action, order_id) VALUES ($1, $2, $3, $4)`, c.ID, requestID, action, orderID); err != nil {
			return fmt.Errorf("record %s request: %w", action, err)
		}
		return nil
	})
	return answer, err
}

func pendingOrWhy(order Order) error {
	switch order.Status {
	case events.StatusPending:
		return nil
	case events.StatusCancelled:
		return ErrAlreadyCancelled
	default: // PAID, COMPLETED
		return ErrAlreadyPaid
	}
}

// cancel moves a locked PENDING order to CANCELLED: order-cancelled for the
// product service (restock) and the cancellation e-mail.
func cancel(ctx context.Context, tx pgx.Tx, order Order, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'CANCELLED', cancel_reason = $2, updated_at = now() WHERE id = $1`, order.ID, reason); err != nil {
		return fmt.Errorf("cancel order %d: %w", order.ID, err)
	}
	cancelled := events.OrderCancelled{OrderID: order.ID, CustomerID: order.customerID, Reason: reason}
	for _, it := range order.Items {
		cancelled.Items = append(cancelled.Items, events.CancelledItem{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	event, err := eventMessage(events.TopicOrderCancelled, order.ID, cancelled)
	if err != nil {
		return err
	}
	notice, err := mailMessage(events.RoutingCancelNotice, events.CancelNotificationMail{
		Email: order.email, OrderID: order.ID, Reason: reason, TotalAmount: order.TotalAmount, Items: mailItems(order.Items),
	})
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, event, notice)
}

func mailItems(items []Item) []events.MailItem {
	out := make([]events.MailItem, len(items))
	for i, it := range items {
		out[i] = events.MailItem{ProductID: it.ProductID, Name: it.name, Quantity: it.Quantity, Price: it.Price}
	}
	return out
}

// eventMessage is a domain event for the outbox, keyed by the order id.
func eventMessage(topic string, id int64, payload any) (outbox.Message, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encode %s: %w", topic, err)
	}
	eventID := uuid.NewString()
	return outbox.Message{
		EventID: eventID, Destination: outbox.Kafka, Topic: topic, Key: events.Key(id),
		Headers: events.Headers(topic, eventID), Payload: body,
	}, nil
}

// mailMessage is an e-mail for the mail service, on the exchange its route names.
func mailMessage(routingKey string, payload any) (outbox.Message, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encode %s: %w", routingKey, err)
	}
	exchange := ""
	for _, r := range events.MailRoutes {
		if r.RoutingKey == routingKey {
			exchange = r.Exchange
		}
	}
	return outbox.Message{Destination: outbox.AMQP, Topic: exchange, Key: routingKey, Payload: body}, nil
}

// mail queues an e-mail for the mail service.
func mail(ctx context.Context, tx pgx.Tx, routingKey string, payload any) error {
	msg, err := mailMessage(routingKey, payload)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, msg)
}

// timerMessage is a message for the order service itself, delivered after
// delay: it waits in the delay's TTL queue (orders.delay.4h), which
// dead-letters it into the orders exchange with the routing key declared for
// that delay (Topology pairs them, one kind of timer per delay).
func timerMessage(delay time.Duration, payload any) (outbox.Message, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encode the %s timer: %w", delay, err)
	}
	return outbox.Message{Destination: outbox.AMQP, Topic: "", Key: events.DelayQueueName(delay), Payload: body}, nil
}

// ListQuery selects a customer's orders.
type ListQuery struct {
	From, To    time.Time // inclusive days, in UTC
	Status      string    // empty: any
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
