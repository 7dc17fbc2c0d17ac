package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
)

// RequestPasswordReset mails a reset code to an address that has an account
// (verified or not), voiding any earlier reset code, and sends nothing for an
// unknown address. The caller cannot tell which: the e-mail cooldown and the
// daily cap apply to every address alike.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	email = normaliseEmail(email)
	code, codeHash, err := s.newCode()
	if err != nil {
		return err
	}
	release, err := s.claimMail(ctx, email)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		id, _, found, err := lockUser(ctx, tx, email)
		if err != nil || !found {
			return err
		}
		expires := s.now().Add(s.cfg.CodeTTL)
		if err := storeCode(ctx, tx, "password_reset_codes", id, codeHash, expires); err != nil {
			return err
		}
		return outbox.Add(ctx, tx, outbox.Work(events.MailPasswordReset, events.PasswordResetMail{Email: email, Token: code, ExpiresAt: expires.UTC().Truncate(time.Second)}))
	})
	if err != nil {
		release()
	}
	return err
}

// ResetPassword sets a new password with a mailed reset code, under the
// rules of verification codes (ErrInvalidCode for every failure, one bcrypt
// comparison, counted against the address and the client). The code proves
// the caller reads the address's mail, so the account is verified from then
// on. The old password's credential is revoked: every token obtained with it
// is refused by the gateway from then on.
func (s *Service) ResetPassword(ctx context.Context, email, code, password, client string) error {
	email = normaliseEmail(email)
	passwordHash, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	var outcome error
	var undo func()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		var credentialID string
		err := tx.QueryRow(ctx, `SELECT id, credential_id::text FROM users WHERE email = $1 FOR UPDATE`, email).Scan(&id, &credentialID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find user: %w", err)
		}
		if err := s.checkGuesses(ctx, email, client); err != nil {
			return err
		}
		ok, err := s.checkCode(ctx, tx, "password_reset_codes", id, id != 0, code)
		if err != nil {
			return err
		}
		if !ok {
			outcome = ErrInvalidCode
			return s.countWrongGuess(ctx, email, client)
		}
		// Revoked before the commit: a token must never outlive the password
		// change. Should the commit fail, undo gives the tokens back.
		if undo, err = s.revokeCredential(ctx, credentialID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE users SET password_hash = $2, credential_id = $3, is_verified = true,
				verified_at = coalesce(verified_at, now()), updated_at = now()
			WHERE id = $1`, id, passwordHash, uuid.NewString()); err != nil {
			return fmt.Errorf("set the new password: %w", err)
		}
		// A pending verification code would otherwise stay usable.
		if _, err := tx.Exec(ctx, `DELETE FROM verification_codes WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("void the verification code: %w", err)
		}
		return nil
	})
	if err != nil {
		if undo != nil {
			undo()
		}
		return err
	}
	if outcome != nil {
		return outcome
	}
	// The owner (who reads the address's mail) may log in at once with the
	// new password, even while someone's wrong passwords hold the address:
	// guesses at the old password are moot now.
	if err := s.redis.Del(ctx, loginFailuresKey(email)).Err(); err != nil {
		s.logger.WarnContext(ctx, "clear the wrong passwords of a reset address", "error", err)
	}
	if s.counters.passwordsReset != nil {
		s.counters.passwordsReset()
	}
	return nil
}

// DeleteAccount removes an account whose password the caller gives, with
// its codes, and revokes its tokens. An unknown address and a wrong password
// get ErrBadCredentials after the same work, as at login, and count against
// the same limits: deletion must not be a way around them.
func (s *Service) DeleteAccount(ctx context.Context, email, password, client string) error {
	email = normaliseEmail(email)
	c, err := s.checkPassword(ctx, email, password, client)
	if err != nil {
		return err
	}
	var undo func()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if undo, err = s.revokeCredential(ctx, c.credentialID); err != nil {
			return err
		}
		// The credential is part of the condition: a password reset in
		// between makes this deletion delete nothing (the caller's password
		// is no longer the account's).
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1 AND credential_id::text = $2`, c.id, c.credentialID)
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrBadCredentials
		}
		return nil
	})
	if err != nil {
		if undo != nil && !errors.Is(err, ErrBadCredentials) {
			undo()
		}
		return err
	}
	if s.counters.accountsDeleted != nil {
		s.counters.accountsDeleted()
	}
	return nil
}
