-- +goose Up
-- product_history is every change of every product, written in the change's
-- own transaction (by the same statement wherever the change is one): its
-- creation, each replace (the fields that changed, before and after), its
-- deletion, and every stock movement with the order or the admin that caused
-- it, and every sale (an order paid: its reserved units are sold, the stock
-- does not move). Replaying a product's rows in id order rebuilds its row,
-- stock included.
--
-- product_id has no foreign key on purpose: every row is written from the
-- product row itself by the statement that changes it, and products are never
-- removed (deletion is soft), so the key would add nothing but a lookup per
-- row on the order path (a reservation writes one row per product).
CREATE TABLE product_history (
    id         bigserial   PRIMARY KEY,
    product_id bigint      NOT NULL,
    -- the product's version once the change was made
    version    bigint      NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('recorded', 'created', 'updated', 'adjusted', 'deleted', 'reserved', 'released', 'sold')),
    -- {"field": {"from": before, "to": after}}; "from" is null at creation
    changes    jsonb       NOT NULL,
    -- units a stock movement moved: taken (reserved), given back (released),
    -- sold, or added by an admin (adjusted; negative when removed)
    units      integer,
    order_id   bigint,
    user_id    bigint,
    at         timestamptz NOT NULL DEFAULT now()
);

-- A paid order's reservation is final: "sold" (payment arrives as order-paid).
ALTER TABLE order_stock DROP CONSTRAINT order_stock_status_check;
ALTER TABLE order_stock ADD CONSTRAINT order_stock_status_check
    CHECK (status IN ('reserved', 'rejected', 'released', 'cancelled', 'sold'));

-- A product's history is read newest first, a page at a time.
CREATE INDEX product_history_by_product ON product_history (product_id, id DESC);

-- Products older than the history start it with their state at that moment
-- ("recorded"), so that every product's history replays to its row.
INSERT INTO product_history (product_id, version, kind, changes, at)
SELECT id, version, 'recorded', jsonb_build_object(
        'name', jsonb_build_object('from', NULL, 'to', name),
        'description', jsonb_build_object('from', NULL, 'to', description),
        'price', jsonb_build_object('from', NULL, 'to', price::text),
        'quantity', jsonb_build_object('from', NULL, 'to', quantity),
        'deleted', jsonb_build_object('from', NULL, 'to', deleted_at IS NOT NULL)),
    now()
FROM products ORDER BY id;
