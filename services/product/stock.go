package product

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/batch"
	"github.com/kshop/kshop/services/platform/inbox"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
)

// Reasons a reservation is rejected.
const (
	ReasonInsufficientStock  = "insufficient_stock"
	ReasonProductUnavailable = "product_unavailable" // unknown or deleted product
)

// Stock reserves and releases units for orders. Each order gets one decision
// (order_stock), whatever number of times or under whatever event ids its events
// arrive, and each event id is handled once (inbox).
type Stock struct {
	db *pg.DB
	// decided counts reservation outcomes (reserved, rejected) for metrics.
	decided func(outcome string)
}

func (s *Stock) count(outcome string) {
	if s.decided != nil {
		s.decided(outcome)
	}
}

// Consumer names, for the inbox.
var (
	reserveConsumer = events.ConsumerGroup("product", events.TopicOrderCreated.Name())
	releaseConsumer = events.ConsumerGroup("product", events.TopicOrderCancelled.Name())
	sellConsumer    = events.ConsumerGroup("product", events.TopicOrderPaid.Name())
)

// Sell records that a paid order's reserved units are sold, once: the
// decision moves from reserved to sold (a sold order is never released) and
// each of its products gets a "sold" entry in its history. The stock does not
// move; it moved at the reservation. The products are locked in id order, as a
// reservation locks them, so the entry sits in the history after every change
// that committed before it and at the version it was sold at.
func (s *Stock) Sell(ctx context.Context, eventID string, paid events.OrderPaid) error {
	return pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		if first, err := inbox.Claim(ctx, tx, sellConsumer, eventID); err != nil || !first {
			return err
		}
		if _, err := tx.Exec(ctx, `
			WITH o AS (
				UPDATE order_stock SET status = 'sold', updated_at = now()
				WHERE order_id = $1 AND status = 'reserved'
				RETURNING order_id
			), p AS (
				SELECT p.id, p.version, r.quantity
				FROM products p JOIN reservations r ON r.product_id = p.id JOIN o ON o.order_id = r.order_id
				ORDER BY p.id
				FOR UPDATE OF p
			)
			INSERT INTO product_history (product_id, version, kind, changes, order_id, units)
			SELECT id, version, 'sold', '{}', $1, quantity FROM p`, paid.OrderID); err != nil {
			return fmt.Errorf("record the sale of order %d: %w", paid.OrderID, err)
		}
		return nil
	})
}

// Reserve takes every item of the order from stock in one transaction, or
// nothing, and answers stock-reserved or stock-rejected through the outbox.
// Product rows are locked in id order, so concurrent orders never deadlock and
// never both take the last unit; the decrement itself is conditional as well.
func (s *Stock) Reserve(ctx context.Context, eventID string, order events.OrderCreated) error {
	return pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		if first, err := inbox.Claim(ctx, tx, reserveConsumer, eventID); err != nil || !first {
			return err
		}
		// The decision row comes first: a twin event for the same order waits on
		// it, then finds the order decided. A cancel that came first left one too.
		tag, err := tx.Exec(ctx, `INSERT INTO order_stock (order_id, status) VALUES ($1, 'reserved') ON CONFLICT (order_id) DO NOTHING`, order.OrderID)
		if err != nil {
			return fmt.Errorf("record the decision for order %d: %w", order.OrderID, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}

		wanted, ids := wantedUnits(order)
		available := map[int64]int64{}
		rows, err := tx.Query(ctx, `SELECT id, quantity FROM products WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE`, ids)
		if err != nil {
			return fmt.Errorf("lock products of order %d: %w", order.OrderID, err)
		}
		for rows.Next() {
			var id, quantity int64
			if err := rows.Scan(&id, &quantity); err != nil {
				rows.Close()
				return err
			}
			available[id] = quantity
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock products of order %d: %w", order.OrderID, err)
		}

		shortages, reason := shortagesOf(wanted, ids, func(id int64) (int64, bool) {
			have, exists := available[id]
			return have, exists
		})
		if len(shortages) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE order_stock SET status = 'rejected', reason = $2, updated_at = now() WHERE order_id = $1`, order.OrderID, reason); err != nil {
				return fmt.Errorf("reject order %d: %w", order.OrderID, err)
			}
			s.count("rejected")
			return outbox.Add(ctx, tx, outbox.Event(events.TopicStockRejected, events.Key(order.OrderID),
				events.StockRejected{OrderID: order.OrderID, Reason: reason, Shortages: shortages}))
		}

		// The product copies' updates and the answer go to the outbox in one
		// statement: one round trip per order, not one per line.
		messages := make([]outbox.Message, 0, len(ids)+1)
		for _, id := range ids {
			// The decrement, the reservation and the history row are one
			// statement: the order path pays no round trip for the history
			// (and one fewer than with a separate reservation insert).
			p, err := scanProduct(tx.QueryRow(ctx, `
				WITH p AS (
					UPDATE products SET quantity = quantity - $2, version = version + 1, updated_at = now()
					WHERE id = $1 AND quantity >= $2
					RETURNING `+productColumns+`
				), r AS (
					INSERT INTO reservations (order_id, product_id, quantity) SELECT $3, id, $2 FROM p
				), h AS (
					INSERT INTO product_history (product_id, version, kind, changes, order_id, units)
					SELECT id, version, 'reserved', jsonb_build_object('quantity', jsonb_build_object('from', quantity + $2, 'to', quantity)), $3, $2
					FROM p
				)
				SELECT `+productColumns+` FROM p`, id, wanted[id], order.OrderID))
			if err != nil {
				// Impossible under the row lock; if it ever happens, nothing commits.
				return fmt.Errorf("take %d of product %d for order %d: %w", wanted[id], id, order.OrderID, err)
			}
			// The order service's product copy follows the stock.
			messages = append(messages, outbox.Event(events.TopicProductUpdated, events.Key(p.ID), productEvent(p)))
		}
		s.count("reserved")
		messages = append(messages, outbox.Event(events.TopicStockReserved, events.Key(order.OrderID), events.StockReserved{OrderID: order.OrderID}))
		return outbox.Add(ctx, tx, messages...)
	})
}

// ReserveAll decides a batch of orders in one transaction, each as Reserve
// decides one: all of an order's items or nothing, in the batch's order, so an
// earlier order takes its units before a later one is weighed. Under load the
// consumer hands a partition's backlog here, and one commit and a few
// statements then do for dozens of orders. The products of every order of the
// batch are locked up front, in id order as Reserve locks them. The order
// service's product copy gets one product-updated per product, with its stock
// after the batch, and each order's answer is traced in its own order's trace.
func (s *Stock) ReserveAll(ctx context.Context, created []batch.Event[events.OrderCreated]) error {
	var reserved, rejected int
	err := pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		reserved, rejected = 0, 0
		orders, err := undecidedOrders(ctx, tx, created)
		if err != nil || len(orders) == 0 {
			return err
		}
		stock, err := lockStock(ctx, tx, orders)
		if err != nil {
			return err
		}
		var lines reservationLines
		var rejectedIDs []int64
		var reasons []string
		messages := make([]outbox.Message, 0, len(orders)+len(stock))
		for _, e := range orders {
			order := e.Payload
			wanted, ids := wantedUnits(order)
			shortages, reason := shortagesOf(wanted, ids, func(id int64) (int64, bool) {
				if p, exists := stock[id]; exists {
					return p.quantity, true
				}
				return 0, false
			})
			if len(shortages) > 0 {
				rejected++
				rejectedIDs, reasons = append(rejectedIDs, order.OrderID), append(reasons, reason)
				messages = append(messages, outbox.Event(events.TopicStockRejected, events.Key(order.OrderID),
					events.StockRejected{OrderID: order.OrderID, Reason: reason, Shortages: shortages}).In(e.Ctx))
				continue
			}
			for _, id := range ids {
				p := stock[id]
				p.quantity -= wanted[id]
				p.version++
				lines.add(order.OrderID, id, wanted[id], p.version, p.quantity)
			}
			reserved++
			messages = append(messages, outbox.Event(events.TopicStockReserved, events.Key(order.OrderID),
				events.StockReserved{OrderID: order.OrderID}).In(e.Ctx))
		}
		if len(rejectedIDs) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE order_stock o SET status = 'rejected', reason = r.reason, updated_at = now()
				FROM unnest($1::bigint[], $2::text[]) AS r(order_id, reason) WHERE o.order_id = r.order_id`, rejectedIDs, reasons); err != nil {
				return fmt.Errorf("reject %d orders: %w", len(rejectedIDs), err)
			}
		}
		if len(lines.orderIDs) > 0 {
			moved, err := lines.take(ctx, tx)
			if err != nil {
				return err
			}
			for _, p := range moved {
				messages = append(messages, outbox.Event(events.TopicProductUpdated, events.Key(p.ID), productEvent(p)))
			}
		}
		return outbox.Add(ctx, tx, messages...)
	})
	if err == nil {
		for range reserved {
			s.count("reserved")
		}
		for range rejected {
			s.count("rejected")
		}
	}
	return err
}

// undecidedOrders claims the batch's event ids and records a decision row for
// each order not decided yet (the first of its events in the batch), and
// returns those orders' events in the batch's order. A twin event, or a
// cancel that came first, leaves an order out, as in Reserve.
func undecidedOrders(ctx context.Context, tx pgx.Tx, created []batch.Event[events.OrderCreated]) ([]batch.Event[events.OrderCreated], error) {
	first, err := inbox.ClaimAll(ctx, tx, reserveConsumer, batch.IDs(created))
	if err != nil {
		return nil, err
	}
	var claimed []batch.Event[events.OrderCreated]
	var orderIDs []int64
	seen := map[int64]bool{}
	for _, e := range created {
		if first[e.ID] && !seen[e.Payload.OrderID] {
			delete(first, e.ID) // an event given twice is claimed once
			seen[e.Payload.OrderID] = true
			claimed = append(claimed, e)
			orderIDs = append(orderIDs, e.Payload.OrderID)
		}
	}
	if len(claimed) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO order_stock (order_id, status) SELECT unnest($1::bigint[]), 'reserved'
		ON CONFLICT (order_id) DO NOTHING RETURNING order_id`, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("record the decisions for %d orders: %w", len(orderIDs), err)
	}
	recorded, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("record the decisions for %d orders: %w", len(orderIDs), err)
	}
	undecided := make(map[int64]bool, len(recorded))
	for _, id := range recorded {
		undecided[id] = true
	}
	return slices.DeleteFunc(claimed, func(e batch.Event[events.OrderCreated]) bool { return !undecided[e.Payload.OrderID] }), nil
}

// lockedProduct is a product's stock as a batch of reservations moves it.
type lockedProduct struct{ quantity, version int64 }

// lockStock locks, in id order, every product the orders want that is on
// sale, and returns their stock.
func lockStock(ctx context.Context, tx pgx.Tx, orders []batch.Event[events.OrderCreated]) (map[int64]*lockedProduct, error) {
	var ids []int64
	for _, e := range orders {
		for _, item := range e.Payload.Items {
			ids = append(ids, item.ProductID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	rows, err := tx.Query(ctx, `SELECT id, quantity, version FROM products WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock the products of %d orders: %w", len(orders), err)
	}
	stock := make(map[int64]*lockedProduct, len(ids))
	var id int64
	var p lockedProduct
	_, err = pgx.ForEachRow(rows, []any{&id, &p.quantity, &p.version}, func() error {
		locked := p
		stock[id] = &locked
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock the products of %d orders: %w", len(orders), err)
	}
	return stock, nil
}

// wantedUnits sums an order's units per product and lists the products in id
// order.
func wantedUnits(order events.OrderCreated) (map[int64]int64, []int64) {
	wanted := map[int64]int64{}
	for _, item := range order.Items {
		wanted[item.ProductID] += item.Quantity
	}
	ids := make([]int64, 0, len(wanted))
	for id := range wanted {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return wanted, ids
}

// shortagesOf lists the products of ids whose stock (have: the units on
// sale, and whether the product is on sale at all) is short of wanted, and the
// reason an order short of them is rejected: product_unavailable when one of
// them is unknown or deleted, insufficient_stock otherwise.
func shortagesOf(wanted map[int64]int64, ids []int64, have func(id int64) (units int64, onSale bool)) ([]events.Shortage, string) {
	var shortages []events.Shortage
	reason := ReasonInsufficientStock
	for _, id := range ids {
		units, onSale := have(id)
		if !onSale {
			reason = ReasonProductUnavailable
		}
		if units < wanted[id] {
			shortages = append(shortages, events.Shortage{ProductID: id, Requested: wanted[id], Available: units})
		}
	}
	return shortages, reason
}

// reservationLines are a batch's reservations, one per order and product,
// with the version and stock each leaves its product at.
type reservationLines struct {
	orderIDs, productIDs, units, versions, remaining []int64
}

func (l *reservationLines) add(orderID, productID, units, version, remaining int64) {
	l.orderIDs = append(l.orderIDs, orderID)
	l.productIDs = append(l.productIDs, productID)
	l.units = append(l.units, units)
	l.versions = append(l.versions, version)
	l.remaining = append(l.remaining, remaining)
}

// take writes the lines in one statement: the reservations, a history entry
// per line at the version it made, and each product's stock and version after
// the last of its lines; it returns the products as they are now. The products
// are locked (lockStock), so the stock cannot have moved since it was read; the
// decrement is conditional all the same, and a product it did not find fails
// the whole batch.
func (l *reservationLines) take(ctx context.Context, tx pgx.Tx) ([]Product, error) {
	rows, err := tx.Query(ctx, `
		WITH l AS (
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
				AS l(order_id, product_id, units, version, remaining)
		), r AS (
			INSERT INTO reservations (order_id, product_id, quantity) SELECT order_id, product_id, units FROM l
		), h AS (
			INSERT INTO product_history (product_id, version, kind, changes, order_id, units)
			SELECT product_id, version, 'reserved', jsonb_build_object('quantity', jsonb_build_object('from', remaining + units, 'to', remaining)), order_id, units
			FROM l
		), t AS (
			SELECT product_id, sum(units) AS taken, count(*) AS times FROM l GROUP BY product_id
		), moved AS (
			UPDATE products p SET quantity = p.quantity - t.taken, version = p.version + t.times, updated_at = now()
			FROM t WHERE p.id = t.product_id AND p.quantity >= t.taken
			RETURNING p.*
		)
		SELECT `+productColumns+` FROM moved ORDER BY id`, l.orderIDs, l.productIDs, l.units, l.versions, l.remaining)
	if err != nil {
		return nil, fmt.Errorf("take the stock of %d reservations: %w", len(l.orderIDs), err)
	}
	moved, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Product, error) { return scanProduct(row) })
	if err != nil {
		return nil, fmt.Errorf("take the stock of %d reservations: %w", len(l.orderIDs), err)
	}
	if products := len(slices.Compact(slices.Sorted(slices.Values(l.productIDs)))); len(moved) != products {
		// Impossible under the row locks; if it ever happens, nothing commits.
		return nil, fmt.Errorf("took the stock of %d products of %d", len(moved), products)
	}
	return moved, nil
}

// Release gives back what was reserved for a cancelled order, exactly once. A
// cancel for an order not seen yet leaves a "cancelled" decision, so the order's
// late order-created reserves nothing.
func (s *Stock) Release(ctx context.Context, eventID string, cancel events.OrderCancelled) error {
	return pg.InTx(ctx, s.db.Primary, func(tx pgx.Tx) error {
		if first, err := inbox.Claim(ctx, tx, releaseConsumer, eventID); err != nil || !first {
			return err
		}
		var status string
		for attempt := 0; ; attempt++ {
			err := tx.QueryRow(ctx, `SELECT status FROM order_stock WHERE order_id = $1 FOR UPDATE`, cancel.OrderID).Scan(&status)
			if err == nil {
				break
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("read the decision for order %d: %w", cancel.OrderID, err)
			}
			tag, err := tx.Exec(ctx, `INSERT INTO order_stock (order_id, status, reason) VALUES ($1, 'cancelled', $2) ON CONFLICT (order_id) DO NOTHING`, cancel.OrderID, cancel.Reason)
			if err != nil {
				return fmt.Errorf("record the cancel of order %d: %w", cancel.OrderID, err)
			}
			if tag.RowsAffected() == 1 {
				return nil
			}
			if attempt > 0 {
				return fmt.Errorf("the decision for order %d keeps vanishing", cancel.OrderID)
			}
			// A reservation committed meanwhile: read it.
		}
		if status != "reserved" {
			return nil // rejected, already released or already cancelled: nothing is held
		}
		if _, err := tx.Exec(ctx, `UPDATE order_stock SET status = 'released', reason = $2, updated_at = now() WHERE order_id = $1`, cancel.OrderID, cancel.Reason); err != nil {
			return fmt.Errorf("release order %d: %w", cancel.OrderID, err)
		}
		// The products are locked in id order, as Reserve locks them, before the
		// restock updates them: an UPDATE … FROM locks in the join's order, and two
		// transactions taking the same products in different orders deadlock.
		if _, err := tx.Exec(ctx, `SELECT p.id FROM products p JOIN reservations r ON r.product_id = p.id
			WHERE r.order_id = $1 ORDER BY p.id FOR UPDATE OF p`, cancel.OrderID); err != nil {
			return fmt.Errorf("lock the products of order %d: %w", cancel.OrderID, err)
		}
		// Soft-deleted products get their units back too, but are not announced:
		// a product-updated would bring them back to life in the order service.
		// The restock and its history rows are one statement.
		rows, err := tx.Query(ctx, `
			WITH moved AS (
				UPDATE products p SET quantity = p.quantity + r.quantity, version = p.version + 1, updated_at = now()
				FROM reservations r
				WHERE r.order_id = $1 AND r.product_id = p.id
				RETURNING p.id, p.version, p.quantity, r.quantity AS released, p.deleted_at IS NULL AS live
			), h AS (
				INSERT INTO product_history (product_id, version, kind, changes, order_id, units)
				SELECT id, version, 'released', jsonb_build_object('quantity', jsonb_build_object('from', quantity - released, 'to', quantity)), $1, released
				FROM moved
			)
			SELECT id, live FROM moved`, cancel.OrderID)
		if err != nil {
			return fmt.Errorf("restock order %d: %w", cancel.OrderID, err)
		}
		var live []int64
		for rows.Next() {
			var id int64
			var isLive bool
			if err := rows.Scan(&id, &isLive); err != nil {
				rows.Close()
				return err
			}
			if isLive {
				live = append(live, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("restock order %d: %w", cancel.OrderID, err)
		}
		messages := make([]outbox.Message, 0, len(live))
		for _, id := range live {
			p, err := scanProduct(tx.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1`, id))
			if err != nil {
				return fmt.Errorf("read restocked product %d: %w", id, err)
			}
			messages = append(messages, outbox.Event(events.TopicProductUpdated, events.Key(p.ID), productEvent(p)))
		}
		return outbox.Add(ctx, tx, messages...)
	})
}
