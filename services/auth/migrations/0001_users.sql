-- +goose Up
-- users are the accounts of the shop. E-mails are stored normalised (trimmed,
-- lower case), so the unique index is what decides "user already exist" even when
-- two registrations of the same address race.
CREATE TABLE users (
    id            bigserial   PRIMARY KEY,
    email         text        NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 255),
    password_hash text        NOT NULL,
    is_verified   boolean     NOT NULL DEFAULT false,
    verified_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One live verification code per user: issuing a new one replaces the row, which
-- is what voids the old code. Only a bcrypt hash of the code is stored.
CREATE TABLE verification_codes (
    user_id     bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash   text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    failed_attempts integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
