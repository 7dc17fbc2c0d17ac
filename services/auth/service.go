package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/outbox"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/tokens"
)

// Roles carried in access tokens.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Errors of the use cases; the HTTP layer maps each to its status and message.
var (
	ErrEmailTaken      = errors.New("user already exist")
	ErrUserNotFound    = errors.New("user not found")
	ErrAlreadyVerified = errors.New("user already verified")
	ErrWrongCode       = errors.New("token is wrong")
	ErrCodeExpired     = errors.New("token expired")
	ErrBadCredentials  = errors.New("unauthorized")
	ErrNotVerified     = errors.New("user not verified")
)

// CooldownError says a code was sent too recently; RetryAfter is the wait.
type CooldownError struct{ RetryAfter time.Duration }

func (e *CooldownError) Error() string {
	return fmt.Sprintf("a verification code was sent less than a minute ago; retry in %s", e.RetryAfter.Round(time.Second))
}

// User is an account as the API shows it.
type User struct {
	ID         int64     `json:"id"`
	Email      string    `json:"email"`
	IsVerified bool      `json:"is_verified"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Token is a login's answer.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// Service holds the use cases.
type Service struct {
	db        *pg.DB
	redis     redis.UniversalClient
	signer    *tokens.Signer
	cfg       Config
	admins    []string
	dummyHash []byte
	now       func() time.Time
	logger    *slog.Logger
	// registered and verified count the accounts (metrics).
	registered, verified func()
}

func newService(db *pg.DB, rdb redis.UniversalClient, signer *tokens.Signer, cfg Config, logger *slog.Logger) (*Service, error) {
	// Login with an unknown e-mail compares against this hash, so it costs as much
	// as a wrong password and timing does not tell which e-mails exist.
	dummy, err := bcrypt.GenerateFromPassword([]byte("kshop-no-such-user"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("prepare the timing guard hash: %w", err)
	}
	return &Service{
		db: db, redis: rdb, signer: signer, cfg: cfg, admins: cfg.AdminEmails,
		dummyHash: dummy, now: time.Now, logger: logger,
	}, nil
}

// Register creates an unverified user and, in the same transaction, the
// verification e-mail's outbox row.
func (s *Service) Register(ctx context.Context, email, password string) (User, error) {
	email = normaliseEmail(email)
	passwordHash, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	code, codeHash, err := s.newCode()
	if err != nil {
		return User{}, err
	}
	expires := s.now().Add(s.cfg.CodeTTL)
	var u User
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO users (email, password_hash) VALUES ($1, $2)
			ON CONFLICT (email) DO NOTHING
			RETURNING id, email, is_verified, created_at, updated_at`, email, passwordHash,
		).Scan(&u.ID, &u.Email, &u.IsVerified, &u.CreatedAt, &u.UpdatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrEmailTaken
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		return s.issueCode(ctx, tx, u.ID, email, code, codeHash, expires)
	})
	if err != nil {
		return User{}, err
	}
	if s.registered != nil {
		s.registered()
	}
	// The code just mailed starts the resend cooldown. Best effort: without Redis
	// the user may get a second code a little early, nothing worse.
	if err := s.redis.Set(ctx, events.ResendCooldownKey(email), "1", s.cfg.ResendCooldown).Err(); err != nil {
		s.logger.WarnContext(ctx, "start resend cooldown", "error", err)
	}
	return u, nil
}

// Verify checks a code and marks the user verified; the code is single use.
func (s *Service) Verify(ctx context.Context, email, code string) (User, error) {
	email = normaliseEmail(email)
	var u User
	// A wrong guess must be counted even though the request fails, so the
	// transaction commits in that case and the error is returned afterwards.
	var outcome error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if u, err = lockUnverifiedUser(ctx, tx, email); err != nil {
			return err
		}
		var codeHash string
		var expiresAt time.Time
		var failed int
		err = tx.QueryRow(ctx, `SELECT code_hash, expires_at, failed_attempts FROM verification_codes WHERE user_id = $1`, u.ID).
			Scan(&codeHash, &expiresAt, &failed)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Used up by too many wrong guesses: only a new code helps.
			outcome = ErrCodeExpired
			return nil
		case err != nil:
			return fmt.Errorf("find verification code: %w", err)
		case !s.now().Before(expiresAt):
			outcome = ErrCodeExpired
			return nil
		}
		if bcrypt.CompareHashAndPassword([]byte(codeHash), []byte(code)) != nil {
			outcome = ErrWrongCode
			if failed+1 >= s.cfg.CodeMaxAttempts {
				_, err = tx.Exec(ctx, `DELETE FROM verification_codes WHERE user_id = $1`, u.ID)
			} else {
				_, err = tx.Exec(ctx, `UPDATE verification_codes SET failed_attempts = failed_attempts + 1 WHERE user_id = $1`, u.ID)
			}
			if err != nil {
				return fmt.Errorf("count a wrong code: %w", err)
			}
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM verification_codes WHERE user_id = $1`, u.ID); err != nil {
			return fmt.Errorf("use up the verification code: %w", err)
		}
		if err := tx.QueryRow(ctx, `UPDATE users SET is_verified = true, verified_at = now(), updated_at = now() WHERE id = $1 RETURNING updated_at`, u.ID).
			Scan(&u.UpdatedAt); err != nil {
			return fmt.Errorf("mark user verified: %w", err)
		}
		u.IsVerified = true
		return s.mail(ctx, tx, events.RoutingAccountVerified, email, events.AccountVerifiedMail{Email: email})
	})
	if err != nil {
		return User{}, err
	}
	if outcome != nil {
		return User{}, outcome
	}
	if s.verified != nil {
		s.verified()
	}
	return u, nil
}

// ResendVerification mails a new code, voiding the old one, at most once per
// cooldown per e-mail across all replicas.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
	email = normaliseEmail(email)
	code, codeHash, err := s.newCode()
	if err != nil {
		return err
	}
	cooldownKey := events.ResendCooldownKey(email)
	claimed := false
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		u, err := lockUnverifiedUser(ctx, tx, email)
		if err != nil {
			return err
		}
		id := u.ID
		// SET NX is the cross-replica gate: one request per cooldown wins it.
		ok, err := s.redis.SetNX(ctx, cooldownKey, "1", s.cfg.ResendCooldown).Result()
		if err != nil {
			return fmt.Errorf("check resend cooldown: %w", err)
		}
		if !ok {
			wait, err := s.redis.PTTL(ctx, cooldownKey).Result()
			if err != nil || wait <= 0 {
				wait = s.cfg.ResendCooldown
			}
			return &CooldownError{RetryAfter: wait}
		}
		claimed = true
		return s.issueCode(ctx, tx, id, email, code, codeHash, s.now().Add(s.cfg.CodeTTL))
	})
	if err != nil && claimed {
		// Nothing was sent, so the cooldown must not hold the user back.
		if delErr := s.redis.Del(context.WithoutCancel(ctx), cooldownKey).Err(); delErr != nil {
			s.logger.WarnContext(ctx, "release resend cooldown after a failed resend", "error", delErr)
		}
	}
	return err
}

// Login checks the password and issues an access token. Unknown e-mail and wrong
// password give the same error after the same bcrypt work; "not verified" is only
// told to someone who knows the password.
func (s *Service) Login(ctx context.Context, email, password string) (Token, error) {
	email = normaliseEmail(email)
	id, hash, verified, err := s.findCredentials(ctx, s.db.Replica, email)
	if err != nil {
		return Token{}, err
	}
	if id == 0 || !verified {
		// The replica may lag behind a registration or verification that just
		// committed; a negative answer is confirmed on the primary.
		if id, hash, verified, err = s.findCredentials(ctx, s.db.Primary, email); err != nil {
			return Token{}, err
		}
	}
	if id == 0 {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return Token{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return Token{}, ErrBadCredentials
	}
	if !verified {
		return Token{}, ErrNotVerified
	}
	roles := []string{RoleCustomer}
	if slices.Contains(s.admins, email) {
		roles = append(roles, RoleAdmin)
	}
	signed, expires, err := s.signer.Sign(strconv.FormatInt(id, 10), email, roles)
	if err != nil {
		return Token{}, fmt.Errorf("sign access token: %w", err)
	}
	return Token{AccessToken: signed, TokenType: "Bearer", ExpiresIn: int64(time.Until(expires).Round(time.Second) / time.Second)}, nil
}

// lockUnverifiedUser reads the user row FOR UPDATE, which serialises everything
// that touches one user's verification (two verifies, a verify and a resend).
func lockUnverifiedUser(ctx context.Context, tx pgx.Tx, email string) (User, error) {
	var u User
	err := tx.QueryRow(ctx, `SELECT id, email, is_verified, created_at, updated_at FROM users WHERE email = $1 FOR UPDATE`, email).
		Scan(&u.ID, &u.Email, &u.IsVerified, &u.CreatedAt, &u.UpdatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return User{}, ErrUserNotFound
	case err != nil:
		return User{}, fmt.Errorf("find user: %w", err)
	case u.IsVerified:
		return User{}, ErrAlreadyVerified
	}
	return u, nil
}

func (s *Service) findCredentials(ctx context.Context, q *pgxpool.Pool, email string) (id int64, hash []byte, verified bool, err error) {
	err = q.QueryRow(ctx, `SELECT id, password_hash, is_verified FROM users WHERE email = $1`, email).Scan(&id, &hash, &verified)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("find user: %w", err)
	}
	return id, hash, verified, nil
}

// newCode draws six digits from the CSPRNG and hashes them.
func (s *Service) newCode() (code string, hash []byte, err error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", nil, fmt.Errorf("draw verification code: %w", err)
	}
	code = fmt.Sprintf("%06d", n.Int64())
	hash, err = bcrypt.GenerateFromPassword([]byte(code), s.cfg.BcryptCost)
	if err != nil {
		return "", nil, fmt.Errorf("hash verification code: %w", err)
	}
	return code, hash, nil
}

// issueCode replaces the user's code (voiding any earlier one) and queues its e-mail.
func (s *Service) issueCode(ctx context.Context, tx pgx.Tx, userID int64, email, code string, hash []byte, expires time.Time) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO verification_codes (user_id, code_hash, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at,
			failed_attempts = 0, created_at = now()`, userID, hash, expires); err != nil {
		return fmt.Errorf("store verification code: %w", err)
	}
	return s.mail(ctx, tx, events.RoutingSendVerification, email, events.VerificationMail{Email: email, Token: code, ExpiresAt: expires.UTC().Truncate(time.Second)})
}

// mail queues a message for the mail service on the notifications exchange.
func (s *Service) mail(ctx context.Context, tx pgx.Tx, routingKey, email string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", routingKey, err)
	}
	return outbox.Add(ctx, tx, outbox.Message{
		Destination: outbox.AMQP,
		Topic:       events.ExchangeNotifications,
		Key:         routingKey,
		Payload:     body,
	})
}

func (s *Service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pg.InTx(ctx, s.db.Primary, fn)
}
