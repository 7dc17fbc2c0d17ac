-- +goose Up
-- customers has a row per customer who ever placed an order. Placing an order
-- locks the customer's row until its transaction ends, so a customer's orders
-- are counted against the pending limits and created one at a time, however
-- many requests arrive in parallel.
CREATE TABLE customers (
    id bigint PRIMARY KEY
);

-- A customer's pending orders, counted at every order placed.
CREATE INDEX orders_pending_by_customer ON orders (customer_id) WHERE status = 'PENDING';
