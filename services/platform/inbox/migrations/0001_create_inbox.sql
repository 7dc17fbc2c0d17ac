-- +goose Up
-- inbox remembers which events a consumer has processed, so a redelivered event
-- (Kafka after a rebalance, RabbitMQ after a reconnect) changes nothing.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);
