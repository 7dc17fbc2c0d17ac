-- +goose Up
-- An order's timers now come one at a time: placing it queues the first, and
-- each one that fires queues the next. Orders placed before this had all their
-- timers queued at once, so they must not schedule any more (false); every
-- order placed from now on does (the new default).
ALTER TABLE orders ADD COLUMN timers_chained boolean NOT NULL DEFAULT false;
ALTER TABLE orders ALTER COLUMN timers_chained SET DEFAULT true;
