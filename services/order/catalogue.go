package order

import (
	"context"
	"fmt"

	"github.com/kshop/kshop/services/events"
)

// ProductChanged applies product-created or product-updated unless the copy
// already holds that version or a newer one.
func (s *Saga) ProductChanged(ctx context.Context, p events.Product) error {
	_, err := s.db.Primary.Exec(ctx, `
		INSERT INTO products (id, name, description, price, quantity, version, deleted, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, false, $7)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
			price = excluded.price, quantity = excluded.quantity, version = excluded.version,
			updated_at = excluded.updated_at
		WHERE products.version < excluded.version AND NOT products.deleted`,
		p.ID, p.Name, p.Description, p.Price.String(), p.Quantity, p.Version, p.UpdatedAt)
	if err != nil {
		return fmt.Errorf("apply product %d version %d: %w", p.ID, p.Version, err)
	}
	return nil
}

// ProductDeleted marks the copy deleted, whatever arrives after it.
func (s *Saga) ProductDeleted(ctx context.Context, p events.ProductDeleted) error {
	_, err := s.db.Primary.Exec(ctx, `
		INSERT INTO products (id, version, deleted, updated_at) VALUES ($1, $2, true, $3)
		ON CONFLICT (id) DO UPDATE SET deleted = true, version = greatest(products.version, excluded.version), updated_at = excluded.updated_at`,
		p.ID, p.Version, p.DeletedAt)
	if err != nil {
		return fmt.Errorf("apply deletion of product %d: %w", p.ID, err)
	}
	return nil
}
