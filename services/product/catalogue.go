package product

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
)

// ErrNotFound means no live product has the id.
var ErrNotFound = errors.New("product not found")

// ErrChanged means the product is no longer at the version the client read:
// a reservation, a release or another admin changed it since. Errors wrapping
// it are a *ChangedError carrying the product as it is now.
var ErrChanged = errors.New("product changed since it was read")

// ChangedError is ErrChanged with the product as it is now, so the client can
// reapply its change to it without reading again (reads go to a replica, which
// may lag).
type ChangedError struct{ Current Product }

func (e *ChangedError) Error() string {
	return fmt.Sprintf("%v: product %d is at version %d", ErrChanged, e.Current.ID, e.Current.version)
}

func (e *ChangedError) Unwrap() error { return ErrChanged }

// Product is a product as the API shows it.
type Product struct {
	ID          int64       `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Price       money.Money `json:"price"`
	Quantity    int64       `json:"quantity"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	version     int64
}

// Fields are what a client sets on a product (create, full replace).
type Fields struct {
	Name        string
	Description string
	Price       money.Money
	Quantity    int64
}

// Query is a search: substring filters and a page.
type Query struct {
	Name, Description string
	Page, Limit       int
}

// Catalogue holds the product use cases.
type Catalogue struct {
	db *pg.DB
}

const productColumns = `id, name, description, price, quantity, version, created_at, updated_at`

func scanProduct(row pgx.Row) (Product, error) {
	var p Product
	var price string
	if err := row.Scan(&p.ID, &p.Name, &p.Description, &price, &p.Quantity, &p.version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return Product{}, err
	}
	m, err := money.Parse(price)
	if err != nil {
		return Product{}, fmt.Errorf("price of product %d: %w", p.ID, err)
	}
	p.Price = m
	return p, nil
}

// Create adds a product, records its creation by admin in its history and
// announces it. The product and its history row are one statement.
func (c *Catalogue) Create(ctx context.Context, admin int64, f Fields) (Product, error) {
	var p Product
	err := pg.InTx(ctx, c.db.Primary, func(tx pgx.Tx) error {
		var err error
		p, err = scanProduct(tx.QueryRow(ctx, `
			WITH p AS (
				INSERT INTO products (name, description, price, quantity) VALUES ($1, $2, $3, $4)
				RETURNING `+productColumns+`
			), h AS (
				INSERT INTO product_history (product_id, version, kind, changes, user_id)
				SELECT id, version, 'created', jsonb_build_object(
					'name', jsonb_build_object('from', NULL, 'to', name),
					'description', jsonb_build_object('from', NULL, 'to', description),
					'price', jsonb_build_object('from', NULL, 'to', price::text),
					'quantity', jsonb_build_object('from', NULL, 'to', quantity)), $5
				FROM p
			)
			SELECT `+productColumns+` FROM p`, f.Name, f.Description, f.Price.String(), f.Quantity, admin))
		if err != nil {
			return fmt.Errorf("insert product: %w", err)
		}
		return outbox.Add(ctx, tx, outbox.Event(events.TopicProductCreated, events.Key(p.ID), productEvent(p)))
	})
	return p, err
}

// Update replaces a live product's four fields for admin, records what changed
// in its history and announces the change, if the product is still at one of
// the versions the client read (ifVersions, from If-Match). The quantity is
// absolute: set against any other version, it would overwrite the reservations
// and releases made since the client read it, losing or inventing units. The
// row is locked before its version is checked, so a reservation committing in
// between makes the replace fail (*ChangedError), never succeed on a stale
// quantity; the lock also gives the history its "before" values.
func (c *Catalogue) Update(ctx context.Context, admin, id int64, ifVersions []int64, f Fields) (Product, error) {
	var p Product
	err := pg.InTx(ctx, c.db.Primary, func(tx pgx.Tx) error {
		current, err := scanProduct(tx.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock product %d: %w", id, err)
		}
		if !slices.Contains(ifVersions, current.version) {
			return &ChangedError{Current: current}
		}
		entries, err := json.Marshal(replaceEntries(current, f))
		if err != nil {
			return fmt.Errorf("encode the history of product %d: %w", id, err)
		}
		p, err = scanProduct(tx.QueryRow(ctx, `
			WITH p AS (
				UPDATE products SET name = $2, description = $3, price = $4, quantity = $5,
					version = version + 1, updated_at = now()
				WHERE id = $1
				RETURNING `+productColumns+`
			), h AS (
				INSERT INTO product_history (product_id, version, kind, changes, units, user_id)
				SELECT p.id, p.version, e.value->>'kind', e.value->'changes', (e.value->>'units')::integer, $7
				FROM p, jsonb_array_elements($6::jsonb) WITH ORDINALITY AS e(value, n)
				ORDER BY e.n
			)
			SELECT `+productColumns+` FROM p`, id, f.Name, f.Description, f.Price.String(), f.Quantity, string(entries), admin))
		if err != nil {
			return fmt.Errorf("update product %d: %w", id, err)
		}
		return outbox.Add(ctx, tx, outbox.Event(events.TopicProductUpdated, events.Key(p.ID), productEvent(p)))
	})
	return p, err
}

// historyEntry is one row of product_history about to be written.
type historyEntry struct {
	Kind    string                 `json:"kind"`
	Changes map[string]FieldChange `json:"changes"`
	Units   *int64                 `json:"units,omitempty"`
}

// replaceEntries are the history rows of replacing before's fields with f:
// "updated" with the descriptive fields that changed (none, for a replace
// that changed nothing but still made a version), and "adjusted" when the
// admin set another stock.
func replaceEntries(before Product, f Fields) []historyEntry {
	changed := map[string]FieldChange{}
	diff := func(field string, from, to any, same bool) {
		if !same {
			changed[field] = FieldChange{From: mustJSON(from), To: mustJSON(to)}
		}
	}
	diff("name", before.Name, f.Name, before.Name == f.Name)
	diff("description", before.Description, f.Description, before.Description == f.Description)
	diff("price", before.Price.String(), f.Price.String(), before.Price.String() == f.Price.String())
	entries := []historyEntry{{Kind: HistoryUpdated, Changes: changed}}
	if before.Quantity != f.Quantity {
		added := f.Quantity - before.Quantity
		entries = append(entries, historyEntry{Kind: HistoryAdjusted, Units: &added, Changes: map[string]FieldChange{
			"quantity": {From: mustJSON(before.Quantity), To: mustJSON(f.Quantity)},
		}})
	}
	return entries
}

// mustJSON encodes strings and integers, which cannot fail.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Delete hides a product for admin (soft delete: orders keep referring to it),
// records it in its history and announces it.
func (c *Catalogue) Delete(ctx context.Context, admin, id int64) error {
	return pg.InTx(ctx, c.db.Primary, func(tx pgx.Tx) error {
		var deleted events.ProductDeleted
		err := tx.QueryRow(ctx, `
			WITH p AS (
				UPDATE products SET deleted_at = now(), updated_at = now(), version = version + 1
				WHERE id = $1 AND deleted_at IS NULL
				RETURNING id, version, deleted_at
			), h AS (
				INSERT INTO product_history (product_id, version, kind, changes, user_id)
				SELECT id, version, 'deleted', '{"deleted": {"from": false, "to": true}}', $2 FROM p
			)
			SELECT id, version, deleted_at FROM p`, id, admin).Scan(&deleted.ID, &deleted.Version, &deleted.DeletedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("delete product %d: %w", id, err)
		}
		return outbox.Add(ctx, tx, outbox.Event(events.TopicProductDeleted, events.Key(id), deleted))
	})
}

// noLoadBalance starts a read that must see every committed write. Locally
// such reads go to the primary pool; behind pgpool (the chart's postgresql-ha)
// both pools are pgpool, which sends a SELECT that starts with a comment to
// the primary instead of balancing it onto a standby. PostgreSQL ignores it.
const noLoadBalance = "/*NO LOAD BALANCE*/ "

// Get reads a live product: from the replica when it keeps up, or, fresh,
// from the primary (for admins, who must see what they just wrote).
func (c *Catalogue) Get(ctx context.Context, id int64, fresh bool) (Product, error) {
	query := `SELECT ` + productColumns + ` FROM products WHERE id = $1 AND deleted_at IS NULL`
	if fresh {
		query = noLoadBalance + query
	}
	var p Product
	err := c.db.Read(ctx, fresh, func(pool *pgxpool.Pool) error {
		var err error
		p, err = scanProduct(pool.QueryRow(ctx, query, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", id, err)
	}
	return p, nil
}

// Search lists live products whose name and description contain the filters
// (case-insensitive), a page at a time, oldest first, with the total count:
// from the replica when it keeps up, or, fresh, from the primary. Count and
// page come from one pool, so they agree with each other.
func (c *Catalogue) Search(ctx context.Context, q Query, fresh bool) ([]Product, int, error) {
	const filter = `deleted_at IS NULL
		AND ($1 = '' OR name ILIKE '%' || $1 || '%' ESCAPE '\')
		AND ($2 = '' OR description ILIKE '%' || $2 || '%' ESCAPE '\')`
	name, description := escapeLike(q.Name), escapeLike(q.Description)
	prefix := ""
	if fresh {
		prefix = noLoadBalance
	}
	var total int
	var list []Product
	err := c.db.Read(ctx, fresh, func(pool *pgxpool.Pool) error {
		if err := pool.QueryRow(ctx, prefix+`SELECT count(*) FROM products WHERE `+filter, name, description).Scan(&total); err != nil {
			return fmt.Errorf("count products: %w", err)
		}
		rows, err := pool.Query(ctx, prefix+`SELECT `+productColumns+` FROM products WHERE `+filter+`
			ORDER BY id LIMIT $3 OFFSET $4`, name, description, q.Limit, (q.Page-1)*q.Limit)
		if err != nil {
			return fmt.Errorf("search products: %w", err)
		}
		list, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Product, error) { return scanProduct(row) })
		if err != nil {
			return fmt.Errorf("search products: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if list == nil {
		list = []Product{}
	}
	return list, total, nil
}

// escapeLike makes user text match itself literally inside ILIKE: % and _ are
// wildcards only when the query puts them there.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func productEvent(p Product) events.Product {
	return events.Product{
		ID: p.ID, Name: p.Name, Description: p.Description, Price: p.Price, Quantity: p.Quantity,
		Version: p.version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}
