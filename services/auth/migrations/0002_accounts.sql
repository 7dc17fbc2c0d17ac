-- +goose Up
-- registered_at is when the pending registration was made: a new registration
-- of an address not verified yet replaces the pending one (its password and its
-- code) and starts its expiry again. Registrations not verified within
-- KSHOP_AUTH_UNVERIFIED_TTL are deleted by the service's cleanup.
ALTER TABLE users ADD COLUMN registered_at timestamptz NOT NULL DEFAULT now();
UPDATE users SET registered_at = created_at;
CREATE INDEX users_unverified_registered_at ON users (registered_at) WHERE NOT is_verified;

-- credential_id names the current password. Tokens carry it; a password reset
-- or an account deletion revokes it (a Redis key the gateway reads), so every
-- token obtained with the old password is refused. It is random, so it means
-- nothing outside this database.
ALTER TABLE users ADD COLUMN credential_id uuid NOT NULL DEFAULT gen_random_uuid();

-- One live password reset code per user, under the rules of verification codes:
-- six digits, stored as a bcrypt hash, a limited life, voided by too many wrong
-- guesses, replaced by a new request.
CREATE TABLE password_reset_codes (
    user_id         bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash       text        NOT NULL,
    expires_at      timestamptz NOT NULL,
    failed_attempts integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_reset_codes_expires_at ON password_reset_codes (expires_at);
