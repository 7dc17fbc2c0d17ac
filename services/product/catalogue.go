package product

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kshop/kshop/services/events"
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
	ID          int64        `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Price       events.Money `json:"price"`
	Quantity    int64        `json:"quantity"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	version     int64
}

// Fields are what a client sets on a product (create, full replace).
type Fields struct {
	Name        string
	Description string
	Price       events.Money
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
	m, err := events.ParseMoney(price)
	if err != nil {
		return Product{}, fmt.Errorf("price of product %d: %w", p.ID, err)
	}
	p.Price = m
	return p, nil
}

// Create adds a product and announces it.
func (c *Catalogue) Create(ctx context.Context, f Fields) (Product, error) {
	var p Product
	err := pg.InTx(ctx, c.db.Primary, func(tx pgx.Tx) error {
		var err error
		p, err = scanProduct(tx.QueryRow(ctx, `
			INSERT INTO products (name, description, price, quantity) VALUES ($1, $2, $3, $4)
			RETURNING `+productColumns, f.Name, f.Description, f.Price.String(), f.Quantity))
		if err != nil {
			return fmt.Errorf("insert product: %w", err)
		}
		return announce(ctx, tx, events.TopicProductCreated, p.ID, productEvent(p))
	})
	return p, err
}

// Update replaces a live product's four fields and announces the change, if
// the product is still at one of the versions the client read (ifVersions,
// from If-Match). The quantity is absolute: set against any other version, it
// would overwrite the reservations and releases made since the client read it,
// losing or inventing units. The version check and the write are one statement,
// so a reservation committing in between makes it fail (*ChangedError), never
// succeed on a stale quantity.
func (c *Catalogue) Update(ctx context.Context, id int64, ifVersions []int64, f Fields) (Product, error) {
	var p Product
	err := pg.InTx(ctx, c.db.Primary, func(tx pgx.Tx) error {
		var err error
		p, err = scanProduct(tx.QueryRow(ctx, `
			UPDATE products SET name = $2, description = $3, price = $4, quantity = $5,
				version = version + 1, updated_at = now()
			WHERE id = $1 AND deleted_at IS NULL AND version = ANY($6)
			RETURNING `+productColumns, id, f.Name, f.Description, f.Price.String(), f.Quantity, ifVersions))
		if errors.Is(err, pgx.ErrNoRows) {
			current, err := scanProduct(tx.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1 AND deleted_at IS NULL`, id))
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("read product %d: %w", id, err)
			}
			return &ChangedError{Current: current}
		}
		if err != nil {
			return fmt.Errorf("update product %d: %w", id, err)
		}
		return announce(ctx, tx, events.TopicProductUpdated, p.ID, productEvent(p))
	})
	return p, err
}

// Delete hides a product (soft delete: orders keep referring to it) and announces it.
func (c *Catalogue) Delete(ctx context.Context, id int64) error {
	return pg.InTx(ctx, c.db.Primary, func(tx pgx.Tx) error {
		var deleted events.ProductDeleted
		err := tx.QueryRow(ctx, `
			UPDATE products SET deleted_at = now(), updated_at = now(), version = version + 1
			WHERE id = $1 AND deleted_at IS NULL
			RETURNING id, version, deleted_at`, id).Scan(&deleted.ID, &deleted.Version, &deleted.DeletedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("delete product %d: %w", id, err)
		}
		return announce(ctx, tx, events.TopicProductDeleted, id, deleted)
	})
}

// Get reads a live product from the replica pool.
func (c *Catalogue) Get(ctx context.Context, id int64) (Product, error) {
	p, err := scanProduct(c.db.Replica.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", id, err)
	}
	return p, nil
}

// Search lists live products whose name and description contain the filters
// (case-insensitive), a page at a time, oldest first, with the total count.
func (c *Catalogue) Search(ctx context.Context, q Query) ([]Product, int, error) {
	const filter = `deleted_at IS NULL
		AND ($1 = '' OR name ILIKE '%' || $1 || '%' ESCAPE '\')
		AND ($2 = '' OR description ILIKE '%' || $2 || '%' ESCAPE '\')`
	name, description := escapeLike(q.Name), escapeLike(q.Description)
	var total int
	if err := c.db.Replica.QueryRow(ctx, `SELECT count(*) FROM products WHERE `+filter, name, description).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count products: %w", err)
	}
	rows, err := c.db.Replica.Query(ctx, `SELECT `+productColumns+` FROM products WHERE `+filter+`
		ORDER BY id LIMIT $3 OFFSET $4`, name, description, q.Limit, (q.Page-1)*q.Limit)
	if err != nil {
		return nil, 0, fmt.Errorf("search products: %w", err)
	}
	defer rows.Close()
	list := []Product{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, 0, err
		}
		list = append(list, p)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("search products: %w", err)
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

// announce writes a domain event to the outbox, keyed by the aggregate id so one
// product's events stay in order on one partition.
func announce(ctx context.Context, tx pgx.Tx, topic string, id int64, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", topic, err)
	}
	eventID := uuid.NewString()
	return outbox.Add(ctx, tx, outbox.Message{
		EventID:     eventID,
		Destination: outbox.Kafka,
		Topic:       topic,
		Key:         events.Key(id),
		Headers:     events.Headers(topic, eventID),
		Payload:     body,
	})
}
