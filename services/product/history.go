package product

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of history entries (docs/product.md, History).
const (
	HistoryRecorded = "recorded" // the product as it was when its history began (products older than history)
	HistoryCreated  = "created"  // created by an admin
	HistoryUpdated  = "updated"  // an admin's replace: the descriptive fields that changed
	HistoryAdjusted = "adjusted" // an admin's replace set another stock
	HistoryDeleted  = "deleted"  // deleted by an admin
	HistoryReserved = "reserved" // units taken for an order
	HistoryReleased = "released" // units given back by a cancelled order
	HistorySold     = "sold"     // a paid order's reserved units, sold (the stock does not move)
)

// FieldChange is one field's value before and after a change, as JSON: a
// string (name, description, price with two decimals), an integer
// (quantity) or a boolean (deleted); before is null at creation.
type FieldChange struct {
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
}

// HistoryEntry is one change of a product.
type HistoryEntry struct {
	ID        int64                  `json:"id"`
	ProductID int64                  `json:"product_id"`
	Version   int64                  `json:"version"`
	Kind      string                 `json:"kind"`
	Changes   map[string]FieldChange `json:"changes"`
	// Units is what a stock movement moved: taken for an order (reserved),
	// given back (released), sold, or added by an admin (adjusted, negative
	// when removed); null for other changes.
	Units   *int64    `json:"units"`
	OrderID *int64    `json:"order_id"`
	UserID  *int64    `json:"user_id"`
	At      time.Time `json:"at"`
}

// History reads a product's changes, newest first, a page at a time, with
// their total, from the primary: admins read it, and see their own last
// change in it. A deleted product keeps its history; an id that never was a
// product is ErrNotFound.
func (c *Catalogue) History(ctx context.Context, id int64, page, limit int) ([]HistoryEntry, int, error) {
	var total int
	if err := c.db.Primary.QueryRow(ctx, noLoadBalance+`SELECT count(*) FROM product_history WHERE product_id = $1`, id).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count the history of product %d: %w", id, err)
	}
	if total == 0 {
		// Every product has its creation (or its recording) in the history.
		return nil, 0, ErrNotFound
	}
	rows, err := c.db.Primary.Query(ctx, noLoadBalance+`
		SELECT id, product_id, version, kind, changes, units, order_id, user_id, at FROM product_history
		WHERE product_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3`, id, limit, (page-1)*limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read the history of product %d: %w", id, err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HistoryEntry, error) {
		var e HistoryEntry
		err := row.Scan(&e.ID, &e.ProductID, &e.Version, &e.Kind, &e.Changes, &e.Units, &e.OrderID, &e.UserID, &e.At)
		return e, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read the history of product %d: %w", id, err)
	}
	if list == nil {
		list = []HistoryEntry{}
	}
	return list, total, nil
}
