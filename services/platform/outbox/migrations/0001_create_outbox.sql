-- +goose Up
-- outbox holds messages written in the same transaction as the state change they
-- announce; the relay publishes them and stamps sent_at once the broker confirmed.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    destination text        NOT NULL CHECK (destination IN ('kafka', 'amqp')),
    topic       text        NOT NULL,
    key         text        NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    sent_at     timestamptz
);

-- The relay only ever looks for unsent rows, oldest first; sent rows stay for a
-- while for auditing and are pruned later.
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
