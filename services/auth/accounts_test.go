package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

// The tests of issue 20's "Accounts and tokens": squatting, password reset,
// code guessing, e-mail bombing, enumeration.

func resetCodeFor(t testing.TB, mail *amqptest.Reader, email string) string {
	t.Helper()
	d := mail.Next(events.QueuePasswordReset, byEmail, email)
	msg, err := events.Decode[events.PasswordResetMail](d.Body)
	if err != nil {
		t.Fatalf("password reset message: %v\n%s", err, d.Body)
	}
	return msg.Token
}

func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// from makes a request look as if the gateway forwarded it for client.
func from(client string) http.Header { return http.Header{"X-Forwarded-For": {client}} }

func (s *service) postFrom(t testing.TB, client, path, body string) apitest.Reply {
	t.Helper()
	return s.Send(t, http.MethodPost, path, "application/json", []byte(body), from(client))
}

// newClientIP is an address of TEST-NET-3 no other test uses, so its
// counters start at zero on the shared Redis.
func newClientIP() string {
	n, _ := strconv.ParseUint(testenv.RandomSuffix()[:6], 16, 32)
	return fmt.Sprintf("203.0.%d.%d", n%256, (n/256)%254+1)
}

// TestSquattingAPendingAddressGivesTheSquatterNothing reproduces the takeover
// of issue 20: someone registers an address they do not own with their own
// password; the owner registers it too and verifies it with the code they
// receive. The owner's password is the account's, the squatter's is refused.
// (Before, the owner's registration answered 409 and the verification bound
// the squatter's password.) The squatter's own code is void too.
func TestSquattingAPendingAddressGivesTheSquatterNothing(t *testing.T) {
	s := start(t, testConfig(t))
	mail := openMailbox(t)
	email := newEmail("owner")
	s.post(t, "/register", map[string]any{"email": email, "password": "squatter-password"}).Expect(t, http.StatusAccepted, "")
	squattersCode := codeFor(t, mail, email)
	s.post(t, "/register", map[string]any{"email": email, "password": "owner-password"}).Expect(t, http.StatusAccepted, "")
	ownersCode := codeFor(t, mail, email)

	if squattersCode != ownersCode {
		s.post(t, "/verify", map[string]any{"email": email, "verification_token": squattersCode}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
		time.Sleep(5 * time.Millisecond) // past the backoff after a wrong code
	}
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": ownersCode}).Expect(t, http.StatusOK, "")
	s.post(t, "/login", map[string]any{"email": email, "password": "squatter-password"}).Expect(t, http.StatusUnauthorized, "unauthorized")
	login(t, s, email, "owner-password")
	if n := count(t, s.db, `SELECT count(*) FROM users WHERE email = $1`, email); n != 1 {
		t.Fatalf("%d users for one address", n)
	}
}

// TestUnverifiedRegistrationsExpire: a registration not verified within
// UNVERIFIED_TTL is deleted by the scheduled cleanup, and counted; verified
// accounts stay. The address can then be registered afresh.
func TestUnverifiedRegistrationsExpire(t *testing.T) {
	cfg := testConfig(t)
	cfg.UnverifiedTTL = 500 * time.Millisecond
	cfg.CleanupInterval = 100 * time.Millisecond
	s := start(t, cfg)
	mail := openMailbox(t)
	pending, verified := newEmail("pending"), newEmail("verified")
	registerAndVerify(t, s, mail, verified, "password123")
	s.post(t, "/register", map[string]any{"email": pending, "password": "password123"}).Expect(t, http.StatusAccepted, "")
	code := codeFor(t, mail, pending)

	testenv.WaitFor(t, 10*time.Second, "the pending registration to be deleted", func() bool {
		return count(t, s.db, `SELECT count(*) FROM users WHERE email = $1`, pending) == 0
	})
	if n := count(t, s.db, `SELECT count(*) FROM users WHERE email = $1 AND is_verified`, verified); n != 1 {
		t.Fatal("the cleanup deleted a verified account")
	}
	if n := count(t, s.db, `SELECT count(*) FROM verification_codes`); n != 0 {
		t.Fatalf("%d codes outlived their registration", n)
	}
	s.post(t, "/verify", map[string]any{"email": pending, "verification_token": code}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
	metrics := s.metrics.Send(t, http.MethodGet, "/metrics", "", nil, nil)
	if !bytes.Contains(metrics.Raw, []byte("kshop_auth_unverified_expired_total 1")) {
		t.Fatalf("the expiry is not counted:\n%s", metrics.Raw)
	}
}

// TestPasswordResetReplacesThePasswordAndRevokesItsTokens: a reset code is
// mailed, guesses count against it as against verification codes, and the
// right one sets the new password, revokes the old password's credential
// (the key the gateway reads, for as long as a token can live) and is single
// use. Requests for unknown addresses answer the same and mail nothing.
func TestPasswordResetReplacesThePasswordAndRevokesItsTokens(t *testing.T) {
	cfg := testConfig(t)
	s := start(t, cfg)
	mail := openMailbox(t)
	rdb := redisClient(t)
	email := newEmail("forgetful")
	registerAndVerify(t, s, mail, email, "old-password")
	before := verifyWithPublishedKeys(t, s, login(t, s, email, "old-password"))

	s.post(t, "/request-password-reset", map[string]any{"email": email}).Expect(t, http.StatusAccepted, "check your e-mail")
	code := resetCodeFor(t, mail, email)
	body := func(code, password string) map[string]any {
		return map[string]any{"email": email, "reset_token": code, "password": password}
	}
	s.post(t, "/reset-password", body(otherCode(code), "new-password")).Expect(t, http.StatusBadRequest, "token is wrong or expired")
	time.Sleep(5 * time.Millisecond) // past the backoff after a wrong code
	// A verification code is not a reset code.
	s.post(t, "/resend-verification", map[string]any{"email": email}).Expect(t, http.StatusOK, "")
	mail.Next(events.QueueAccountExists, byEmail, email)
	s.post(t, "/reset-password", body(code, "new-password")).Expect(t, http.StatusOK, "password changed")

	s.post(t, "/login", map[string]any{"email": email, "password": "old-password"}).Expect(t, http.StatusUnauthorized, "unauthorized")
	after := verifyWithPublishedKeys(t, s, login(t, s, email, "new-password"))
	if after.CredentialID == "" || after.CredentialID == before.CredentialID {
		t.Fatalf("credential %q after the reset, %q before: a new password must get a new credential", after.CredentialID, before.CredentialID)
	}
	ttl, err := rdb.PTTL(context.Background(), tokens.RevokedCredentialKey(before.CredentialID)).Result()
	if err != nil || ttl < cfg.TokenTTL {
		t.Fatalf("the old credential's revocation lives %v (%v), want at least the token lifetime %v", ttl, err, cfg.TokenTTL)
	}
	if n, _ := rdb.Exists(context.Background(), tokens.RevokedCredentialKey(after.CredentialID)).Result(); n != 0 {
		t.Fatal("the new credential is revoked")
	}
	time.Sleep(5 * time.Millisecond)
	s.post(t, "/reset-password", body(code, "third-password")).Expect(t, http.StatusBadRequest, "token is wrong or expired")

	unknown := newEmail("nobody")
	s.post(t, "/request-password-reset", map[string]any{"email": unknown}).Expect(t, http.StatusAccepted, "check your e-mail")
	mail.None(events.QueuePasswordReset, byEmail, unknown, 300*time.Millisecond)
	metrics := s.metrics.Send(t, http.MethodGet, "/metrics", "", nil, nil)
	if !bytes.Contains(metrics.Raw, []byte("kshop_auth_password_resets_total 1")) {
		t.Fatalf("the reset is not counted:\n%s", metrics.Raw)
	}
}

// TestAResetTakesAPendingAddressBackFromASquatter: the owner of an address
// a squatter registered does not have to wait for the registration to
// expire: a reset code proves they read the address's mail, sets their
// password and verifies the account.
func TestAResetTakesAPendingAddressBackFromASquatter(t *testing.T) {
	s := start(t, testConfig(t))
	mail := openMailbox(t)
	email := newEmail("taken-back")
	s.post(t, "/register", map[string]any{"email": email, "password": "squatter-password"}).Expect(t, http.StatusAccepted, "")
	squattersCode := codeFor(t, mail, email)
	s.post(t, "/request-password-reset", map[string]any{"email": email}).Expect(t, http.StatusAccepted, "")
	s.post(t, "/reset-password", map[string]any{"email": email, "reset_token": resetCodeFor(t, mail, email), "password": "owner-password"}).
		Expect(t, http.StatusOK, "")
	login(t, s, email, "owner-password")
	s.post(t, "/login", map[string]any{"email": email, "password": "squatter-password"}).Expect(t, http.StatusUnauthorized, "")
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": squattersCode}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
}

// TestDeleteAccount: the owner, with the password, deletes the account; its
// tokens' credential is revoked and the address is free again. A wrong
// password and an unknown address get login's answer.
func TestDeleteAccount(t *testing.T) {
	s := start(t, testConfig(t))
	mail := openMailbox(t)
	rdb := redisClient(t)
	email := newEmail("leaving")
	registerAndVerify(t, s, mail, email, "password123")
	claims := verifyWithPublishedKeys(t, s, login(t, s, email, "password123"))

	wrong := s.post(t, "/delete-account", map[string]any{"email": email, "password": "password124"})
	unknown := s.post(t, "/delete-account", map[string]any{"email": newEmail("nobody"), "password": "password123"})
	wrong.Expect(t, http.StatusUnauthorized, "unauthorized")
	if !bytes.Equal(wrong.Raw, unknown.Raw) || unknown.Status != wrong.Status {
		t.Fatalf("a wrong password and an unknown address differ:\n%s\n%s", wrong.Raw, unknown.Raw)
	}
	s.post(t, "/delete-account", map[string]any{"email": email, "password": "password123"}).Expect(t, http.StatusOK, "account deleted")
	if n := count(t, s.db, `SELECT count(*) FROM users WHERE email = $1`, email); n != 0 {
		t.Fatal("the account is still there")
	}
	if n, _ := rdb.Exists(context.Background(), tokens.RevokedCredentialKey(claims.CredentialID)).Result(); n != 1 {
		t.Fatal("the deleted account's tokens are not revoked")
	}
	s.post(t, "/login", map[string]any{"email": email, "password": "password123"}).Expect(t, http.StatusUnauthorized, "")
	registerAndVerify(t, s, mail, email, "another-password")
	login(t, s, email, "another-password")
}

// TestCodeGuessesAreCappedPerAddressPerDay: five guesses per code and a new
// code a minute made about 7 200 guesses a day possible against one address.
// Now CODE_GUESSES_PER_DAY wrong codes for an address, whatever code they were
// aimed at (verification or reset, old or new), end its guessing for the day
// with 429 and Retry-After; the right code does not help then. An unknown
// address is counted alike, so the answers tell nothing.
func TestCodeGuessesAreCappedPerAddressPerDay(t *testing.T) {
	cfg := testConfig(t)
	cfg.CodeGuessesPerDay = 4
	s := start(t, cfg)
	mail := openMailbox(t)
	for _, known := range []bool{true, false} {
		email := newEmail("guessed")
		code := "123456"
		if known {
			s.post(t, "/register", map[string]any{"email": email, "password": "password123"}).Expect(t, http.StatusAccepted, "")
			code = codeFor(t, mail, email)
		}
		for i := range cfg.CodeGuessesPerDay {
			if i == 2 && known { // a new code does not give new guesses
				s.post(t, "/resend-verification", map[string]any{"email": email}).Expect(t, http.StatusOK, "")
				code = codeFor(t, mail, email)
			}
			time.Sleep(5 * time.Millisecond) // past the backoff after a wrong code
			s.post(t, "/verify", map[string]any{"email": email, "verification_token": otherCode(code)}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
		}
		time.Sleep(5 * time.Millisecond)
		for _, refused := range []apitest.Reply{
			s.post(t, "/verify", map[string]any{"email": email, "verification_token": code}),
			s.post(t, "/reset-password", map[string]any{"email": email, "reset_token": code, "password": "password123"}),
		} {
			refused.Expect(t, http.StatusTooManyRequests, "")
			if ra, _ := strconv.Atoi(refused.Header.Get("Retry-After")); ra < 23*3600 || ra > 24*3600 {
				t.Fatalf("known=%v: Retry-After %q, want the rest of the day", known, refused.Header.Get("Retry-After"))
			}
		}
		if known && count(t, s.db, `SELECT count(*) FROM users WHERE email = $1 AND is_verified`, email) != 0 {
			t.Fatal("verified past the cap")
		}
	}
}

// TestWrongCodesBackOff: after each wrong code the next guess for the
// address waits, twice as long each time (CODE_GUESS_BACKOFF, doubling).
func TestWrongCodesBackOff(t *testing.T) {
	cfg := testConfig(t)
	cfg.CodeGuessBackoff = time.Second
	s := start(t, cfg)
	email := newEmail("hasty")
	guess := func() apitest.Reply {
		return s.post(t, "/verify", map[string]any{"email": email, "verification_token": "123456"})
	}
	guess().Expect(t, http.StatusBadRequest, "token is wrong or expired")
	if r := guess().Expect(t, http.StatusTooManyRequests, ""); r.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q after the first wrong code, want 1", r.Header.Get("Retry-After"))
	}
	time.Sleep(1100 * time.Millisecond)
	guess().Expect(t, http.StatusBadRequest, "token is wrong or expired")
	if r := guess().Expect(t, http.StatusTooManyRequests, ""); r.Header.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After %q after the second wrong code, want 2", r.Header.Get("Retry-After"))
	}
}

// TestCodeGuessesAreCappedPerClient: one client spreading its guesses over
// many addresses is stopped after CODE_GUESSES_PER_CLIENT_PER_DAY wrong codes;
// another client is not.
func TestCodeGuessesAreCappedPerClient(t *testing.T) {
	cfg := testConfig(t)
	cfg.CodeGuessesPerClientPerDay = 3
	s := start(t, cfg)
	guesser, bystander := newClientIP(), newClientIP()
	guess := func(client string) apitest.Reply {
		return s.postFrom(t, client, "/verify", fmt.Sprintf(`{"email":%q,"verification_token":"123456"}`, newEmail("target")))
	}
	for range cfg.CodeGuessesPerClientPerDay {
		guess(guesser).Expect(t, http.StatusBadRequest, "token is wrong or expired")
	}
	if r := guess(guesser).Expect(t, http.StatusTooManyRequests, ""); r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	guess(bystander).Expect(t, http.StatusBadRequest, "token is wrong or expired")
}

// TestMailsToOneAddressAreCappedPerDay: registrations, resends and reset
// requests, together, mail one address at most MAILS_PER_DAY times a day and
// once per cooldown, whether it has an account or not (the answers are the
// same), so the platform cannot be used to bomb an inbox.
func TestMailsToOneAddressAreCappedPerDay(t *testing.T) {
	cfg := testConfig(t)
	cfg.MailsPerDay = 3
	cfg.ResendCooldown = 300 * time.Millisecond
	s := start(t, cfg)
	mail := openMailbox(t)
	var answers [2][]string
	for i, known := range []bool{true, false} {
		email := newEmail("bombed")
		steps := []func() apitest.Reply{
			func() apitest.Reply { return s.post(t, "/resend-verification", map[string]any{"email": email}) },
			func() apitest.Reply { return s.post(t, "/request-password-reset", map[string]any{"email": email}) },
			func() apitest.Reply { return s.post(t, "/resend-verification", map[string]any{"email": email}) },
			func() apitest.Reply { return s.post(t, "/request-password-reset", map[string]any{"email": email}) },
		}
		if known {
			steps[0] = func() apitest.Reply {
				return s.post(t, "/register", map[string]any{"email": email, "password": "password123"})
			}
		}
		record := func(r apitest.Reply) {
			ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			// The wait the message names counts down ("retry in 23h59m59s"), and a
			// slow machine crosses a second between the two addresses: compared
			// is the answer, and whether the wait runs into tomorrow.
			message, _, _ := strings.Cut(r.Body.Message, "; retry in")
			answers[i] = append(answers[i], fmt.Sprintf("%d %s retry-after>1h:%v", r.Status, message, ra > 3600))
		}
		for n, step := range steps {
			record(step())
			if n == 0 { // at once again: within the cooldown
				record(steps[2]())
			}
			time.Sleep(cfg.ResendCooldown + 50*time.Millisecond)
		}
		if known { // a registration's code, a reset code, a new code
			mail.Next(events.QueueVerification, byEmail, email)
			mail.Next(events.QueuePasswordReset, byEmail, email)
			mail.Next(events.QueueVerification, byEmail, email)
			mail.None(events.QueuePasswordReset, byEmail, email, 300*time.Millisecond)
		}
	}
	last := answers[0][len(answers[0])-1]
	if answers[0][1][:3] != "429" || last[:3] != "429" || !bytes.HasSuffix([]byte(last), []byte("retry-after>1h:true")) {
		t.Fatalf("answers %q: want 429 within the cooldown and 429 until tomorrow past the cap", answers[0])
	}
	if fmt.Sprint(answers[0][1:]) != fmt.Sprint(answers[1][1:]) {
		t.Fatalf("an address with an account and one without get different answers:\n%q\n%q", answers[0], answers[1])
	}
}

// TestWrongPasswordsAreCappedPerAddressAcrossClients: after
// LOGIN_FAILURES_PER_ADDRESS wrong passwords for an address, from as many
// clients as the guesser likes, every password check for it is refused with
// 429 and Retry-After until the window ends: the right password too (or the
// limit would be no limit), and account deletion too (which takes a
// password). Right passwords do not use the budget. An address without an
// account answers exactly the same. A password reset frees the address at
// once, else the window's end does. (Before,
// only the gateway's per-client rate limited logins: an address could be
// guessed at from any number of clients.)
func TestWrongPasswordsAreCappedPerAddressAcrossClients(t *testing.T) {
	cfg := testConfig(t)
	cfg.LoginFailuresPerAddress = 3
	cfg.LoginFailureWindow = 3 * time.Second
	s := start(t, cfg)
	mail := openMailbox(t)
	attempt := func(path, email, password string) apitest.Reply {
		return s.postFrom(t, newClientIP(), path, fmt.Sprintf(`{"email":%q,"password":%q}`, email, password))
	}
	var answers [2][]string
	victim, bystander := newEmail("victim"), newEmail("bystander")
	registerAndVerify(t, s, mail, victim, "right-password")
	registerAndVerify(t, s, mail, bystander, "right-password")
	for i, email := range []string{victim, newEmail("nobody")} {
		record := func(r apitest.Reply) {
			retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			answers[i] = append(answers[i], fmt.Sprintf("%d %q retry-after in [1,3]: %v", r.Status, r.Body.Message, retry >= 1 && retry <= 3))
		}
		for n := range cfg.LoginFailuresPerAddress {
			record(attempt("/login", email, "wrong-password"))
			if n == 0 && email == victim {
				attempt("/login", victim, "right-password").Expect(t, http.StatusOK, "") // not counted
			}
		}
		record(attempt("/login", email, "wrong-password"))
		record(attempt("/login", email, "right-password"))
		record(attempt("/delete-account", email, "right-password"))
	}
	want := []string{
		`401 "unauthorized" retry-after in [1,3]: false`,
		`401 "unauthorized" retry-after in [1,3]: false`,
		`401 "unauthorized" retry-after in [1,3]: false`,
		`429 "too many wrong passwords were entered for this address; retry in 3s" retry-after in [1,3]: true`,
		`429 "too many wrong passwords were entered for this address; retry in 3s" retry-after in [1,3]: true`,
		`429 "too many wrong passwords were entered for this address; retry in 3s" retry-after in [1,3]: true`,
	}
	for i, who := range []string{"the account", "the address without one"} {
		if !slices.EqualFunc(answers[i], want, func(got, want string) bool {
			// The message's seconds round what is left of the window.
			return got == want || strings.Replace(got, "retry in 2s", "retry in 3s", 1) == want
		}) {
			t.Errorf("%s: answers\n%s\nwant\n%s", who, strings.Join(answers[i], "\n"), strings.Join(want, "\n"))
		}
	}
	metrics := s.metrics.Send(t, http.MethodGet, "/metrics", "", nil, nil)
	if !bytes.Contains(metrics.Raw, []byte(`kshop_auth_limited_total{limit="login_failures"} 6`)) {
		t.Errorf("the refusals are not counted:\n%s", metrics.Raw)
	}
	login(t, s, bystander, "right-password") // another address is not held
	// The owner, who reads the mail, resets the password and logs in at once.
	s.post(t, "/request-password-reset", map[string]any{"email": victim}).Expect(t, http.StatusAccepted, "")
	s.post(t, "/reset-password", map[string]any{"email": victim, "reset_token": resetCodeFor(t, mail, victim), "password": "new-password"}).Expect(t, http.StatusOK, "")
	login(t, s, victim, "new-password")
	// Otherwise the window ends: the guessing stops holding the address.
	for range cfg.LoginFailuresPerAddress + 1 {
		attempt("/login", bystander, "wrong-password")
	}
	attempt("/login", bystander, "right-password").Expect(t, http.StatusTooManyRequests, "")
	testenv.WaitFor(t, 10*time.Second, "the window to end", func() bool {
		return attempt("/login", bystander, "right-password").Status == http.StatusOK
	})
}

// TestWrongPasswordsAreCappedPerClient: one client trying one password on
// many addresses (credential stuffing) is refused after
// LOGIN_FAILURES_PER_CLIENT wrong ones; another client is not.
func TestWrongPasswordsAreCappedPerClient(t *testing.T) {
	cfg := testConfig(t)
	cfg.LoginFailuresPerClient = 3
	s := start(t, cfg)
	stuffer, bystander := newClientIP(), newClientIP()
	try := func(client string) apitest.Reply {
		return s.postFrom(t, client, "/login", fmt.Sprintf(`{"email":%q,"password":"password123"}`, newEmail("stuffed")))
	}
	for range cfg.LoginFailuresPerClient {
		try(stuffer).Expect(t, http.StatusUnauthorized, "unauthorized")
	}
	r := try(stuffer)
	if r.Status != http.StatusTooManyRequests || !strings.HasPrefix(r.Body.Message, "too many wrong passwords were entered from this client") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the client's 4th wrong password: %d %s %v", r.Status, r.Raw, r.Header)
	}
	try(bystander).Expect(t, http.StatusUnauthorized, "unauthorized")
}
