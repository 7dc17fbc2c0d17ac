-- +goose Up
-- products is this service's copy of the catalogue, fed by the product events.
-- version decides: an event older than the row never overwrites it, whatever
-- order the events arrive in. A deletion can arrive before the creation, so
-- every column but the key has a default.
CREATE TABLE products (
    id          bigint        PRIMARY KEY,
    name        text          NOT NULL DEFAULT '',
    description text          NOT NULL DEFAULT '',
    price       numeric(10,2) NOT NULL DEFAULT 0,
    quantity    integer       NOT NULL DEFAULT 0,
    version     bigint        NOT NULL,
    deleted     boolean       NOT NULL DEFAULT false,
    updated_at  timestamptz   NOT NULL DEFAULT now()
);

-- orders: PENDING -> PAID -> COMPLETED, or PENDING -> CANCELLED. stock_status
-- follows the product service's answer; an order is payable once it is reserved.
-- (customer_id, request_id) makes creation idempotent even without Redis.
CREATE TABLE orders (
    id             bigserial     PRIMARY KEY,
    customer_id    bigint        NOT NULL,
    customer_email text          NOT NULL,
    request_id     text          NOT NULL CHECK (char_length(request_id) BETWEEN 1 AND 64),
    description    text          NOT NULL DEFAULT '',
    total_amount   numeric(14,2) NOT NULL CHECK (total_amount > 0),
    status         text          NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'PAID', 'COMPLETED', 'CANCELLED')),
    cancel_reason  text          CHECK (cancel_reason IN ('expired', 'out_of_stock', 'customer')),
    stock_status   text          NOT NULL DEFAULT 'pending' CHECK (stock_status IN ('pending', 'reserved', 'rejected')),
    paid_at        timestamptz,
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (customer_id, request_id),
    CHECK ((status = 'CANCELLED') = (cancel_reason IS NOT NULL))
);

-- A customer's orders, newest first, by date.
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC);

CREATE TABLE order_items (
    id           bigserial     PRIMARY KEY,
    order_id     bigint        NOT NULL REFERENCES orders (id),
    product_id   bigint        NOT NULL,
    product_name text          NOT NULL,
    quantity     integer       NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    price        numeric(10,2) NOT NULL CHECK (price > 0),
    UNIQUE (order_id, product_id)
);

-- order_actions makes pay and cancel idempotent by the client's request id: the
-- same request again gets the same answer.
CREATE TABLE order_actions (
    customer_id bigint      NOT NULL,
    request_id  text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('pay', 'cancel')),
    order_id    bigint      NOT NULL REFERENCES orders (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, action, request_id)
);
