package auth

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
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
// None of them tells whether an account exists: an unknown address gets the
// answer a wrong password or a wrong code gets.
var (
	ErrInvalidCode    = errors.New("token is wrong or expired")
	ErrBadCredentials = errors.New("unauthorized")
	ErrNotVerified    = errors.New("user not verified")
)

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
	counters  counters
}

// counters are the metrics the use cases move; nil ones are skipped.
type counters struct {
	registered, verified, passwordsReset, accountsDeleted func()
	expired                                               func(n int64)
}

func newService(db *pg.DB, rdb redis.UniversalClient, signer *tokens.Signer, cfg Config, logger *slog.Logger) (*Service, error) {
	// A request about an address without an account compares against this
	// hash, so it costs what a wrong password or a wrong code costs and timing
	// does not tell which addresses have accounts.
	dummy, err := bcrypt.GenerateFromPassword([]byte("kshop-no-such-user"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("prepare the timing guard hash: %w", err)
	}
	// Zero login limits take the defaults: zero would refuse every login.
	cfg.LoginFailuresPerAddress = cmp.Or(cfg.LoginFailuresPerAddress, 10)
	cfg.LoginFailuresPerClient = cmp.Or(cfg.LoginFailuresPerClient, 100)
	cfg.LoginFailureWindow = cmp.Or(cfg.LoginFailureWindow, 15*time.Minute)
	admins := slices.Clone(cfg.AdminEmails)
	if cfg.TestAdminEmail != "" {
		admins = append(admins, cfg.TestAdminEmail)
	}
	return &Service{
		db: db, redis: rdb, signer: signer, cfg: cfg, admins: admins,
		dummyHash: dummy, now: time.Now, logger: logger,
	}, nil
}

// Register asks for an account. The answer is the same whatever the address's
// state; the e-mail says what happened:
//   - no account: an unverified one is created and a code mailed;
//   - an unverified one: this registration replaces it, its password and its
//     code (the old code is void), so a code always activates the password of
//     the registration it was mailed for, and the address's owner, registering
//     after a squatter, gets their own password;
//   - a verified one: nothing changes, the e-mail says the account exists.
func (s *Service) Register(ctx context.Context, email, password string) error {
	email = normaliseEmail(email)
	// The hashing comes first, for every state, so the answer takes as long.
	passwordHash, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	code, codeHash, err := s.newCode()
	if err != nil {
		return err
	}
	release, err := s.claimMail(ctx, email)
	if err != nil {
		return err
	}
	created := false
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		id, verified, found, err := lockUser(ctx, tx, email)
		switch {
		case err != nil:
			return err
		case !found:
			err := tx.QueryRow(ctx, `
				INSERT INTO users (email, password_hash) VALUES ($1, $2)
				ON CONFLICT (email) DO NOTHING RETURNING id`, email, passwordHash).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				// Another registration committed first (past the cooldown,
				// within this transaction): replace it as any pending one.
				if id, verified, found, err = lockUser(ctx, tx, email); err != nil || !found {
					return errors.Join(err, errors.New("the registration that won the race is gone"))
				}
				break
			}
			if err != nil {
				return fmt.Errorf("insert user: %w", err)
			}
			created = true
			return s.issueCode(ctx, tx, id, email, code, codeHash)
		}
		if verified {
			return outbox.Add(ctx, tx, outbox.Work(events.MailAccountExists, events.AccountExistsMail{Email: email}))
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, registered_at = now(), updated_at = now() WHERE id = $1`, id, passwordHash); err != nil {
			return fmt.Errorf("replace the pending registration: %w", err)
		}
		return s.issueCode(ctx, tx, id, email, code, codeHash)
	})
	if err != nil {
		release()
		return err
	}
	if created && s.counters.registered != nil {
		s.counters.registered()
	}
	return nil
}

// Verify checks a code and marks the user verified; the code is single use.
// Unknown addresses, verified accounts, wrong, used-up and expired codes all
// get ErrInvalidCode after one bcrypt comparison, and all count as a wrong
// guess for the address and the client (checkGuesses).
func (s *Service) Verify(ctx context.Context, email, code, client string) (User, error) {
	email = normaliseEmail(email)
	var u User
	// A wrong guess must be counted even though the request fails, so the
	// transaction commits in that case and the error is returned afterwards.
	var outcome error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The row lock serialises the guesses for one account, so the guess
		// counters are read after the previous guess was counted.
		err := tx.QueryRow(ctx, `SELECT id, email, is_verified, created_at, updated_at FROM users WHERE email = $1 FOR UPDATE`, email).
			Scan(&u.ID, &u.Email, &u.IsVerified, &u.CreatedAt, &u.UpdatedAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find user: %w", err)
		}
		if err := s.checkGuesses(ctx, email, client); err != nil {
			return err
		}
		pending := u.ID != 0 && !u.IsVerified
		ok, err := s.checkCode(ctx, tx, "verification_codes", u.ID, pending, code)
		if err != nil {
			return err
		}
		if !ok {
			outcome = ErrInvalidCode
			return s.countWrongGuess(ctx, email, client)
		}
		if err := tx.QueryRow(ctx, `UPDATE users SET is_verified = true, verified_at = now(), updated_at = now() WHERE id = $1 RETURNING updated_at`, u.ID).
			Scan(&u.UpdatedAt); err != nil {
			return fmt.Errorf("mark user verified: %w", err)
		}
		u.IsVerified = true
		return outbox.Add(ctx, tx, outbox.Work(events.MailAccountVerified, events.AccountVerifiedMail{Email: email}))
	})
	if err != nil {
		return User{}, err
	}
	if outcome != nil {
		return User{}, outcome
	}
	if s.counters.verified != nil {
		s.counters.verified()
	}
	return u, nil
}

// ResendVerification mails a new code for a pending registration, voiding
// the old one; for a verified account it mails that the account exists; for
// an unknown address it sends nothing. The caller cannot tell which: the
// cooldown and the daily cap apply to every address alike.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
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
		id, verified, found, err := lockUser(ctx, tx, email)
		switch {
		case err != nil:
			return err
		case !found:
			return nil
		case verified:
			return outbox.Add(ctx, tx, outbox.Work(events.MailAccountExists, events.AccountExistsMail{Email: email}))
		}
		return s.issueCode(ctx, tx, id, email, code, codeHash)
	})
	if err != nil {
		release()
	}
	return err
}

// Login checks the password and issues an access token. Every login is one
// query on the primary (a replica lagging behind a registration would only
// add a second one for some addresses) and one bcrypt comparison, against a
// fixed dummy hash for an unknown address: unknown address and wrong password
// give the same error after the same work. "Not verified" is only told to
// someone who gave the right password. Wrong passwords are limited per
// address and per client (checkPassword).
func (s *Service) Login(ctx context.Context, email, password, client string) (Token, error) {
	email = normaliseEmail(email)
	c, err := s.checkPassword(ctx, email, password, client)
	if err != nil {
		return Token{}, err
	}
	if !c.verified {
		return Token{}, ErrNotVerified
	}
	roles := []string{RoleCustomer}
	if slices.Contains(s.admins, email) {
		roles = append(roles, RoleAdmin)
	}
	signed, expires, err := s.signer.Sign(tokens.Identity{Subject: fmt.Sprint(c.id), Email: email, Roles: roles, CredentialID: c.credentialID})
	if err != nil {
		return Token{}, fmt.Errorf("sign access token: %w", err)
	}
	return Token{AccessToken: signed, TokenType: "Bearer", ExpiresIn: int64(time.Until(expires).Round(time.Second) / time.Second)}, nil
}

// credentialsOf is what a password check finds.
type credentialsOf struct {
	id           int64
	verified     bool
	credentialID string
}

// credentials checks email's password with one query and one bcrypt
// comparison, whether or not the account exists.
func (s *Service) credentials(ctx context.Context, email, password string) (credentialsOf, error) {
	var c credentialsOf
	var hash []byte
	err := s.db.Primary.QueryRow(ctx, `SELECT id, password_hash, is_verified, credential_id::text FROM users WHERE email = $1`, email).
		Scan(&c.id, &hash, &c.verified, &c.credentialID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return credentialsOf{}, ErrBadCredentials
	case err != nil:
		return credentialsOf{}, fmt.Errorf("find user: %w", err)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return credentialsOf{}, ErrBadCredentials
	}
	return c, nil
}

// lockUser reads the user row FOR UPDATE, which serialises everything that
// touches one account (two verifies, a verify and a resend, two resets).
func lockUser(ctx context.Context, tx pgx.Tx, email string) (id int64, verified, found bool, err error) {
	err = tx.QueryRow(ctx, `SELECT id, is_verified FROM users WHERE email = $1 FOR UPDATE`, email).Scan(&id, &verified)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, false, nil
	case err != nil:
		return 0, false, false, fmt.Errorf("find user: %w", err)
	}
	return id, verified, true, nil
}

// checkCode compares code with the live code of table (verification_codes or
// password_reset_codes) for userID, and uses it up when it matches. Without
// a live code (has false, none stored, expired) it compares against the dummy
// hash, so every outcome costs one bcrypt comparison. A wrong guess counts
// against the code: CodeMaxAttempts of them void it.
func (s *Service) checkCode(ctx context.Context, tx pgx.Tx, table string, userID int64, has bool, code string) (bool, error) {
	var codeHash string
	var expiresAt time.Time
	var failed int
	if has {
		err := tx.QueryRow(ctx, `SELECT code_hash, expires_at, failed_attempts FROM `+table+` WHERE user_id = $1`, userID).
			Scan(&codeHash, &expiresAt, &failed)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			has = false
		case err != nil:
			return false, fmt.Errorf("find the code: %w", err)
		case !s.now().Before(expiresAt):
			has = false
		}
	}
	if !has {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(code))
		return false, nil
	}
	if bcrypt.CompareHashAndPassword([]byte(codeHash), []byte(code)) == nil {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, userID); err != nil {
			return false, fmt.Errorf("use up the code: %w", err)
		}
		return true, nil
	}
	var err error
	if failed+1 >= s.cfg.CodeMaxAttempts {
		_, err = tx.Exec(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, userID)
	} else {
		_, err = tx.Exec(ctx, `UPDATE `+table+` SET failed_attempts = failed_attempts + 1 WHERE user_id = $1`, userID)
	}
	if err != nil {
		return false, fmt.Errorf("count a wrong code: %w", err)
	}
	return false, nil
}

// newCode draws six digits from the CSPRNG and hashes them.
func (s *Service) newCode() (code string, hash []byte, err error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", nil, fmt.Errorf("draw a code: %w", err)
	}
	code = fmt.Sprintf("%06d", n.Int64())
	hash, err = bcrypt.GenerateFromPassword([]byte(code), s.cfg.BcryptCost)
	if err != nil {
		return "", nil, fmt.Errorf("hash a code: %w", err)
	}
	return code, hash, nil
}

// storeCode replaces the user's code in table (voiding any earlier one).
func storeCode(ctx context.Context, tx pgx.Tx, table string, userID int64, hash []byte, expires time.Time) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO `+table+` (user_id, code_hash, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at,
			failed_attempts = 0, created_at = now()`, userID, hash, expires); err != nil {
		return fmt.Errorf("store the code: %w", err)
	}
	return nil
}

// issueCode replaces the user's verification code and queues its e-mail.
func (s *Service) issueCode(ctx context.Context, tx pgx.Tx, userID int64, email, code string, hash []byte) error {
	expires := s.now().Add(s.cfg.CodeTTL)
	if err := storeCode(ctx, tx, "verification_codes", userID, hash, expires); err != nil {
		return err
	}
	return outbox.Add(ctx, tx, outbox.Work(events.MailVerification, events.VerificationMail{Email: email, Token: code, ExpiresAt: expires.UTC().Truncate(time.Second)}))
}

func (s *Service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pg.InTx(ctx, s.db.Primary, fn)
}
