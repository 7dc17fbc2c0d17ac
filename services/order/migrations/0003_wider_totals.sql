-- +goose Up
-- The largest order the contract admits (50 lines of 1000 units at
-- 99 999 999.99) totals 4 999 999 999 500.00: 13 digits before the point, one
-- more than numeric(14,2) holds. numeric(15,2) holds every order. Raising a
-- numeric's precision with the same scale rewrites nothing (the stored values
-- are valid as they are); the total's check is verified again by one scan.
ALTER TABLE orders ALTER COLUMN total_amount TYPE numeric(15,2);
