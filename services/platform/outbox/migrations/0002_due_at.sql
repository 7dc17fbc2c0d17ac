-- +goose Up
-- due_at is when a delayed message should leave its delay queue: the publisher
-- sets the message's expiration to what is left until then (outbox.Delayed).
ALTER TABLE outbox ADD COLUMN due_at timestamptz;
