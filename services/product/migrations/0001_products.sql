-- +goose Up
-- products is the catalogue. Prices are exact decimals; quantity is the stock
-- that can still be reserved, and can never go below zero. version grows with
-- every change (stock included) and travels in the events, so a consumer can
-- ignore an event older than what it has.
CREATE TABLE products (
    id          bigserial     PRIMARY KEY,
    name        text          NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    description text          NOT NULL CHECK (char_length(description) <= 5000),
    price       numeric(10,2) NOT NULL CHECK (price > 0),
    quantity    integer       NOT NULL CHECK (quantity >= 0),
    version     bigint        NOT NULL DEFAULT 1,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- Listing pages walk live products by id.
CREATE INDEX products_live ON products (id) WHERE deleted_at IS NULL;

-- order_stock is the decision taken for each order, whatever event brought it:
-- reserved, rejected, released (after a cancel), or cancelled (a cancel that
-- arrived before the order itself, so a late order-created reserves nothing).
CREATE TABLE order_stock (
    order_id   bigint      PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN ('reserved', 'rejected', 'released', 'cancelled')),
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- reservations are the units taken from stock for an order, released at most once.
CREATE TABLE reservations (
    order_id   bigint      NOT NULL REFERENCES order_stock (order_id),
    product_id bigint      NOT NULL REFERENCES products (id),
    quantity   integer     NOT NULL CHECK (quantity > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, product_id)
);
