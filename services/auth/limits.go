package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/platform/tokens"
)

// The limits below are kept in Redis, so they hold across replicas, and are
// keyed by the address asked about (or the client asking), never by whether an
// account exists: an answer that depends on them tells nothing about accounts.

// window is the length of the "per day" counters. A counter's window starts
// with its first count and ends a day later.
const window = 24 * time.Hour

// maxBackoff bounds the wait between two code guesses for one address.
const maxBackoff = 15 * time.Minute

// LimitError refuses a request for now: the contract's 429 with Retry-After.
type LimitError struct {
	// Limit names the limit for the metrics: cooldown, mails_per_day,
	// guess_backoff, guesses_per_day, client_guesses_per_day, login_failures,
	// client_login_failures.
	Limit      string
	Message    string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s; retry in %s", e.Message, e.RetryAfter.Round(time.Second))
}

func limited(limit, message string, retryAfter time.Duration) *LimitError {
	return &LimitError{Limit: limit, Message: message, RetryAfter: max(retryAfter, time.Second)}
}

// claimMail lets one e-mail go to email: at most one per ResendCooldown and
// MailsPerDay per day, whatever the account's state and whether an e-mail is
// in the end sent at all. release gives the cooldown back when nothing was
// sent because of an error, so the user is not held back by our failure.
func (s *Service) claimMail(ctx context.Context, email string) (release func(), err error) {
	cooldownKey := resendCooldownKey(email)
	ok, err := s.redis.SetNX(ctx, cooldownKey, "1", s.cfg.ResendCooldown).Result()
	if err != nil {
		return nil, fmt.Errorf("check the e-mail cooldown: %w", err)
	}
	if !ok {
		wait, err := s.redis.PTTL(ctx, cooldownKey).Result()
		if err != nil || wait <= 0 {
			wait = s.cfg.ResendCooldown
		}
		return nil, limited("cooldown", fmt.Sprintf("an e-mail was sent to this address less than %s ago", s.cfg.ResendCooldown), wait)
	}
	release = func() {
		if err := s.redis.Del(context.WithoutCancel(ctx), cooldownKey).Err(); err != nil {
			s.logger.WarnContext(ctx, "release the e-mail cooldown after a failure", "error", err)
		}
	}
	sent, left, err := s.count(ctx, mailsSentKey(email))
	if err != nil {
		release()
		return nil, fmt.Errorf("count the e-mails to the address: %w", err)
	}
	if sent > int64(s.cfg.MailsPerDay) {
		return nil, limited("mails_per_day", fmt.Sprintf("%d e-mails were sent to this address today, the most there may be", s.cfg.MailsPerDay), left)
	}
	return release, nil
}

// checkGuesses refuses a code guess for email from client when the address
// must wait after its last wrong guess, or the address or the client has
// used up its wrong guesses for the day.
func (s *Service) checkGuesses(ctx context.Context, email, client string) error {
	pipe := s.redis.Pipeline()
	backoff := pipe.PTTL(ctx, codeBackoffKey(email))
	guesses, guessesLeft := pipe.Get(ctx, codeGuessesKey(email)), pipe.PTTL(ctx, codeGuessesKey(email))
	clientGuesses, clientLeft := pipe.Get(ctx, codeGuessesClientKey(client)), pipe.PTTL(ctx, codeGuessesClientKey(client))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read the code guess counters: %w", err)
	}
	// The longest wait first, so Retry-After is worth waiting for.
	if n, _ := strconv.Atoi(guesses.Val()); n >= s.cfg.CodeGuessesPerDay {
		return limited("guesses_per_day", "too many wrong codes were entered for this address today", guessesLeft.Val())
	}
	if n, _ := strconv.Atoi(clientGuesses.Val()); n >= s.cfg.CodeGuessesPerClientPerDay {
		return limited("client_guesses_per_day", "too many wrong codes were entered from this client today", clientLeft.Val())
	}
	if wait := backoff.Val(); wait > 0 {
		return limited("guess_backoff", "a wrong code was entered for this address moments ago", wait)
	}
	return nil
}

// countWrongGuess records a wrong code for email from client, and makes the
// next guess for email wait: GuessBackoff after the first wrong one of the
// day, doubling with each (at most 15 minutes).
func (s *Service) countWrongGuess(ctx context.Context, email, client string) error {
	n, _, err := s.count(ctx, codeGuessesKey(email))
	if err != nil {
		return fmt.Errorf("count a wrong code: %w", err)
	}
	if _, _, err := s.count(ctx, codeGuessesClientKey(client)); err != nil {
		return fmt.Errorf("count a wrong code of the client: %w", err)
	}
	if err := s.redis.Set(ctx, codeBackoffKey(email), "1", backoff(s.cfg.CodeGuessBackoff, n)).Err(); err != nil {
		return fmt.Errorf("start the wait after a wrong code: %w", err)
	}
	if n == int64(s.cfg.CodeGuessesPerDay) {
		s.logger.WarnContext(ctx, "an address used up its wrong codes for the day", "client", client)
	}
	return nil
}

// backoff is the wait after the nth wrong guess of the day: base, doubling.
func backoff(base time.Duration, n int64) time.Duration {
	d := base
	for i := int64(1); i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// checkPassword is credentials behind the wrong-password limits of the
// address and the client. Each attempt is counted before the password is
// compared, so concurrent guesses (on any replica) cannot slip past the limit
// together, and given back unless the password was wrong: only wrong
// passwords use the budget. A refused attempt costs no bcrypt comparison. The
// counters are keyed by the address asked about, never by the account, so
// the answer tells nothing about whether one exists.
func (s *Service) checkPassword(ctx context.Context, email, password, client string) (credentialsOf, error) {
	addressKey, clientKey := loginFailuresKey(email), loginFailuresClientKey(client)
	pipe := s.redis.TxPipeline()
	addressCount, addressLeft := countIn(ctx, pipe, addressKey, s.cfg.LoginFailureWindow)
	clientCount, clientLeft := countIn(ctx, pipe, clientKey, s.cfg.LoginFailureWindow)
	if _, err := pipe.Exec(ctx); err != nil {
		return credentialsOf{}, fmt.Errorf("count the password attempt: %w", err)
	}
	giveBack := func() {
		if err := s.redis.Decr(context.WithoutCancel(ctx), addressKey).Err(); err != nil {
			s.logger.WarnContext(ctx, "give back a password attempt", "error", err)
		}
		if err := s.redis.Decr(context.WithoutCancel(ctx), clientKey).Err(); err != nil {
			s.logger.WarnContext(ctx, "give back a password attempt of the client", "error", err)
		}
	}
	// The attempt that would be one too many is refused, and stays counted:
	// it changes nothing, the window does not move.
	if addressCount.Val() > int64(s.cfg.LoginFailuresPerAddress) {
		return credentialsOf{}, limited("login_failures", "too many wrong passwords were entered for this address", addressLeft.Val())
	}
	if clientCount.Val() > int64(s.cfg.LoginFailuresPerClient) {
		return credentialsOf{}, limited("client_login_failures", "too many wrong passwords were entered from this client", clientLeft.Val())
	}
	c, err := s.credentials(ctx, email, password)
	if !errors.Is(err, ErrBadCredentials) {
		giveBack()
	}
	return c, err
}

// countIn queues on pipe (a transaction) one more count at key in a window
// that starts with the first count.
func countIn(ctx context.Context, pipe redis.Pipeliner, key string, window time.Duration) (*redis.IntCmd, *redis.DurationCmd) {
	pipe.SetNX(ctx, key, 0, window)
	return pipe.Incr(ctx, key), pipe.PTTL(ctx, key)
}

// count adds one to the day-long counter at key, returning the new count and
// the time left in its window. The window starts with the first count (the
// key gets its expiry then, in the same transaction).
func (s *Service) count(ctx context.Context, key string) (int64, time.Duration, error) {
	pipe := s.redis.TxPipeline()
	pipe.SetNX(ctx, key, 0, window)
	incr := pipe.Incr(ctx, key)
	left := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, err
	}
	return incr.Val(), left.Val(), nil
}

// revokeCredential makes the gateway refuse every token carrying id, for as
// long as one can be unexpired (the token lifetime and the gateway's clock
// leeway, with room to spare). It returns the undo, for a transaction that
// does not commit after all.
func (s *Service) revokeCredential(ctx context.Context, id string) (undo func(), err error) {
	key := tokens.RevokedCredentialKey(id)
	if err := s.redis.Set(ctx, key, "1", s.cfg.TokenTTL+5*time.Minute).Err(); err != nil {
		return nil, fmt.Errorf("revoke the old password's tokens: %w", err)
	}
	return func() {
		if err := s.redis.Del(context.WithoutCancel(ctx), key).Err(); err != nil {
			s.logger.ErrorContext(ctx, "undo a revocation whose change did not commit: the account's tokens are refused until they expire", "error", err)
		}
	}, nil
}
