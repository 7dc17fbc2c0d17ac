package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// service is one running auth instance under test.
type service struct {
	*apitest.Client
	metrics *apitest.Client // the metrics port
	db      *pgxpool.Pool
}

func testConfig(t testing.TB) auth.Config {
	t.Helper()
	return auth.Config{
		ShutdownTimeout: 5 * time.Second,
		Database:        pg.Config{URL: testenv.NewDatabase(t), MaxConns: 10},
		Redis:           redisx.Config{Addrs: []string{testenv.RedisAddr(t)}},
		AMQP:            amqp.Config{URL: testenv.OwnAMQPURL(t)},
		BcryptCost:      bcrypt.MinCost, // production refuses below 10; tests want speed
		CodeTTL:         10 * time.Minute,
		CodeMaxAttempts: 5,
		// The limits are the tests' own: each test that is about one sets it.
		// Every test uses fresh addresses, but the client (127.0.0.1) and the
		// Redis are shared by every test of every run of the day.
		CodeGuessesPerDay:          1000,
		CodeGuessesPerClientPerDay: 1_000_000,
		CodeGuessBackoff:           time.Millisecond,
		ResendCooldown:             time.Millisecond,
		MailsPerDay:                1000,
		LoginFailuresPerAddress:    1000,
		LoginFailuresPerClient:     1_000_000,
		LoginFailureWindow:         15 * time.Minute,
		UnverifiedTTL:              24 * time.Hour,
		CleanupInterval:            time.Hour,
		JWKSReload:                 10 * time.Millisecond,
		JWKSAlgorithm:              tokens.EdDSA,
		TokenTTL:                   time.Hour,
		TokenIssuer:                "kshop-auth",
		TokenAudience:              "kshop",
	}
}

func newApp(t testing.TB, cfg auth.Config) (*auth.App, *pgxpool.Pool) {
	t.Helper()
	app, err := auth.New(cfg, quiet, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return app, pool
}

// serve runs an instance of cfg until the test ends.
func serve(t testing.TB, cfg auth.Config) *service {
	t.Helper()
	app, pool := newApp(t, cfg)
	return &service{Client: apitest.Run(t, app.Serve), metrics: apitest.Run(t, app.ServeMetrics), db: pool}
}

// start is serve, then waits until the instance is ready.
func start(t testing.TB, cfg auth.Config) *service {
	t.Helper()
	app, pool := newApp(t, cfg)
	return &service{Client: apitest.Start(t, app.Serve), metrics: apitest.Run(t, app.ServeMetrics), db: pool}
}

func (s *service) post(t testing.TB, path string, body any) apitest.Reply {
	t.Helper()
	return s.Do(t, nil, http.MethodPost, path, body)
}

func newEmail(tag string) string {
	return fmt.Sprintf("%s-%s@example.com", tag, testenv.RandomSuffix())
}

var byEmail = amqptest.KeyOf("email")

func openMailbox(t testing.TB) *amqptest.Reader {
	t.Helper()
	return amqptest.NewReader(t, testenv.OwnAMQPURL(t))
}

// codeFor reads the next verification code mailed to email.
func codeFor(t testing.TB, mail *amqptest.Reader, email string) string {
	t.Helper()
	d := mail.Next(events.QueueVerification, byEmail, email)
	msg, err := events.Decode[events.VerificationMail](d.Body)
	if err != nil {
		t.Fatalf("verification message: %v\n%s", err, d.Body)
	}
	return msg.Token
}

func count(t testing.TB, db *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestRegisterVerifyLoginJourney(t *testing.T) {
	s := start(t, testConfig(t))
	mail := openMailbox(t)
	email := newEmail("Ann")
	const password = "correct horse battery"

	registered := s.post(t, "/register", map[string]any{"email": strings.ToUpper(email[:1]) + email[1:], "password": password})
	registered.Expect(t, http.StatusAccepted, "check your e-mail")
	if string(registered.Body.Data) != "" && string(registered.Body.Data) != "null" {
		t.Fatalf("register answered data %s: it must not depend on the address's state", registered.Body.Data)
	}
	email = strings.ToLower(email)
	var user struct{ ID int64 }
	if err := s.db.QueryRow(context.Background(), `SELECT id FROM users WHERE email = $1 AND NOT is_verified`, email).Scan(&user.ID); err != nil {
		t.Fatalf("the registration is not stored as an unverified user under the normalised address: %v", err)
	}

	d := mail.Next(events.QueueVerification, byEmail, email)
	msg, err := events.Decode[events.VerificationMail](d.Body)
	if err != nil {
		t.Fatalf("verification payload: %v\n%s", err, d.Body)
	}
	if len(msg.Token) != 6 || strings.Trim(msg.Token, "0123456789") != "" {
		t.Fatalf("code %q is not 6 digits", msg.Token)
	}
	if until := time.Until(msg.ExpiresAt); until < 9*time.Minute || until > 10*time.Minute {
		t.Fatalf("code expires in %v, want about 10 minutes", until)
	}
	if d.MessageId == "" || d.ContentType != "application/json" || d.Exchange != events.ExchangeNotifications || d.RoutingKey != events.RoutingVerification {
		t.Fatalf("delivery id %q type %q exchange %q key %q", d.MessageId, d.ContentType, d.Exchange, d.RoutingKey)
	}
	var stored string
	if err := s.db.QueryRow(context.Background(), `SELECT code_hash FROM verification_codes WHERE user_id = $1`, user.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, msg.Token) || bcrypt.CompareHashAndPassword([]byte(stored), []byte(msg.Token)) != nil {
		t.Fatal("the stored code is not a bcrypt hash of the mailed code")
	}
	testenv.WaitFor(t, 10*time.Second, "the delivered outbox row to be deleted", func() bool {
		return count(t, s.db, `SELECT count(*) FROM outbox`) == 0
	})

	s.post(t, "/login", map[string]any{"email": email, "password": password}).Expect(t, http.StatusForbidden, "user not verified")
	s.post(t, "/login", map[string]any{"email": email, "password": "wrong password"}).Expect(t, http.StatusUnauthorized, "unauthorized")

	wrong := "000000"
	if msg.Token == wrong {
		wrong = "111111"
	}
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": wrong}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
	verified := s.post(t, "/verify", map[string]any{"email": email, "verification_token": msg.Token})
	verified.Expect(t, http.StatusOK, "")
	var v map[string]any
	verified.Decode(t, &v)
	if v["is_verified"] != true || v["email"] != email || v["id"] != float64(user.ID) || len(v) != 3 {
		t.Fatalf("verify answered %v", v)
	}
	if got, err := events.Decode[events.AccountVerifiedMail](mail.Next(events.QueueAccountVerified, byEmail, email).Body); err != nil || got.Email != email {
		t.Fatalf("send.account.verified message %+v, %v", got, err)
	}
	// A used code is like any wrong one; a resend for a verified account
	// answers as any resend, and the e-mail says the account exists.
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": msg.Token}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
	s.post(t, "/resend-verification", map[string]any{"email": email}).Expect(t, http.StatusOK, "success")
	if got, err := events.Decode[events.AccountExistsMail](mail.Next(events.QueueAccountExists, byEmail, email).Body); err != nil || got.Email != email {
		t.Fatalf("send.account.exists message %+v, %v", got, err)
	}
	mail.None(events.QueueVerification, byEmail, email, 200*time.Millisecond)

	loggedIn := s.post(t, "/login", map[string]any{"email": email, "password": password})
	loggedIn.Expect(t, http.StatusOK, "")
	var token struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	loggedIn.Decode(t, &token)
	if token.TokenType != "Bearer" || token.ExpiresIn < 3590 || token.ExpiresIn > 3600 {
		t.Fatalf("token %+v", token)
	}
	claims := verifyWithPublishedKeys(t, s, token.AccessToken)
	if claims.Subject != fmt.Sprint(user.ID) || claims.Email != email || strings.Join(claims.Roles, ",") != "customer" {
		t.Fatalf("claims %+v", claims)
	}
	var credential string
	if err := s.db.QueryRow(context.Background(), `SELECT credential_id::text FROM users WHERE id = $1`, user.ID).Scan(&credential); err != nil || claims.CredentialID != credential {
		t.Fatalf("the token's credential_id %q is not the account's %q (%v)", claims.CredentialID, credential, err)
	}
	if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life != time.Hour {
		t.Fatalf("token lives %v, want 1h", life)
	}
}

// verifyWithPublishedKeys checks a token the way the gateway does: against the
// public JWKS the service serves.
func verifyWithPublishedKeys(t testing.TB, s *service, token string) *tokens.Claims {
	t.Helper()
	resp, err := http.Get(s.Base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(doc, []byte(`"d"`)) {
		t.Fatalf("JWKS: %d %s", resp.StatusCode, doc)
	}
	set, err := tokens.ParseJWKS(doc)
	if err != nil {
		t.Fatalf("published JWKS: %v\n%s", err, doc)
	}
	v := &tokens.Verifier{Keys: tokens.KeySetLookup{Source: tokens.Static(set)}, Issuer: "kshop-auth", Audience: "kshop"}
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("token does not verify with the published keys: %v", err)
	}
	return claims
}

func registerAndVerify(t testing.TB, s *service, mail *amqptest.Reader, email, password string) {
	t.Helper()
	s.post(t, "/register", map[string]any{"email": email, "password": password}).Expect(t, http.StatusAccepted, "")
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": codeFor(t, mail, email)}).Expect(t, http.StatusOK, "")
}

func login(t testing.TB, s *service, email, password string) string {
	t.Helper()
	r := s.post(t, "/login", map[string]any{"email": email, "password": password})
	r.Expect(t, http.StatusOK, "")
	var token struct {
		AccessToken string `json:"access_token"`
	}
	r.Decode(t, &token)
	return token.AccessToken
}

// TestAdminEmailsGetTheAdminRole: the addresses of ADMIN_EMAILS and
// TEST_ADMIN_EMAIL are administrators, and nobody else: without them no
// address is (there is no default admin).
func TestAdminEmailsGetTheAdminRole(t *testing.T) {
	cfg := testConfig(t)
	admin, journeyAdmin := newEmail("admin"), newEmail("journey-admin")
	cfg.AdminEmails = []string{" " + strings.ToUpper(admin)}
	cfg.TestAdminEmail = strings.ToUpper(journeyAdmin) + " "
	cfg.BcryptCost = 10
	if err := cfg.Validate(); err != nil { // normalises the list as config.Load does
		t.Fatal(err)
	}
	cfg.BcryptCost = bcrypt.MinCost
	s := start(t, cfg)
	mail := openMailbox(t)
	for _, email := range []string{admin, journeyAdmin} {
		registerAndVerify(t, s, mail, email, "password123")
		claims := verifyWithPublishedKeys(t, s, login(t, s, email, "password123"))
		if strings.Join(claims.Roles, ",") != "customer,admin" {
			t.Fatalf("%s: admin roles %v", email, claims.Roles)
		}
	}

	// The configuration the service ships with names nobody.
	t.Setenv("KSHOP_AUTH_DATABASE_URL", "postgres://db/auth")
	t.Setenv("KSHOP_AUTH_REDIS_ADDRS", "r:6379")
	t.Setenv("KSHOP_AUTH_AMQP_URL", "amqp://x/")
	var defaults auth.Config
	if err := config.Load(auth.Prefix, &defaults); err != nil {
		t.Fatal(err)
	}
	if len(defaults.AdminEmails) != 0 || defaults.TestAdminEmail != "" {
		t.Fatalf("default administrators %q, %q: there must be none", defaults.AdminEmails, defaults.TestAdminEmail)
	}
	defaults = testConfig(t)
	plain := start(t, defaults)
	for _, email := range []string{"admin@kshop.local", newEmail("someone")} {
		registerAndVerify(t, plain, mail, email, "password123")
		if claims := verifyWithPublishedKeys(t, plain, login(t, plain, email, "password123")); strings.Join(claims.Roles, ",") != "customer" {
			t.Fatalf("%s got roles %v without being named an admin", email, claims.Roles)
		}
	}
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	s := start(t, testConfig(t))
	long := strings.Repeat("a", 250) + "@example.com"
	for name, tc := range map[string]struct {
		path, contentType, body string
		status                  int
		message, field          string
	}{
		"not JSON content type":   {"/register", "text/plain", `{"email":"a@example.com","password":"password123"}`, 415, "content type must be application/json", ""},
		"no content type":         {"/login", "", `{}`, 415, "content type must be application/json", ""},
		"empty body":              {"/register", "application/json", ``, 400, "missing body request", ""},
		"malformed JSON":          {"/register", "application/json", `{"email":`, 400, "input validation error", "body"},
		"two JSON values":         {"/register", "application/json", `{"email":"a@example.com","password":"password123"} {}`, 400, "input validation error", "body"},
		"array body":              {"/register", "application/json", `[]`, 400, "input validation error", "body"},
		"wrong type":              {"/register", "application/json", `{"email":42,"password":"password123"}`, 400, "input validation error", "email"},
		"unknown field":           {"/register", "application/json", `{"email":"a@example.com","password":"password123","role":"admin"}`, 400, "input validation error", "role"},
		"missing email":           {"/register", "application/json", `{"password":"password123"}`, 400, "input validation error", "email"},
		"invalid email":           {"/register", "application/json", `{"email":"not-an-email","password":"password123"}`, 400, "input validation error", "email"},
		"over-long email":         {"/register", "application/json", `{"email":"` + long + `","password":"password123"}`, 400, "input validation error", "email"},
		"short password":          {"/register", "application/json", `{"email":"a@example.com","password":"short"}`, 400, "input validation error", "password"},
		"password over 72 bytes":  {"/register", "application/json", `{"email":"a@example.com","password":"` + strings.Repeat("é", 40) + `"}`, 400, "input validation error", "password"},
		"code not digits":         {"/verify", "application/json", `{"email":"a@example.com","verification_token":"12345a"}`, 400, "input validation error", "verification_token"},
		"code too short":          {"/verify", "application/json", `{"email":"a@example.com","verification_token":"12345"}`, 400, "input validation error", "verification_token"},
		"resend without email":    {"/resend-verification", "application/json", `{}`, 400, "input validation error", "email"},
		"login without password":  {"/login", "application/json", `{"email":"a@example.com"}`, 400, "input validation error", "password"},
		"reset without email":     {"/request-password-reset", "application/json", `{"email":""}`, 400, "input validation error", "email"},
		"reset code too short":    {"/reset-password", "application/json", `{"email":"a@example.com","reset_token":"12345","password":"password123"}`, 400, "input validation error", "reset_token"},
		"reset code signed":       {"/reset-password", "application/json", `{"email":"a@example.com","reset_token":"+12345","password":"password123"}`, 400, "input validation error", "reset_token"},
		"reset short password":    {"/reset-password", "application/json", `{"email":"a@example.com","reset_token":"123456","password":"short"}`, 400, "input validation error", "password"},
		"reset 80-byte password":  {"/reset-password", "application/json", `{"email":"a@example.com","reset_token":"123456","password":"` + strings.Repeat("é", 40) + `"}`, 400, "input validation error", "password"},
		"delete without password": {"/delete-account", "application/json", `{"email":"a@example.com"}`, 400, "input validation error", "password"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.Send(t, http.MethodPost, tc.path, tc.contentType, []byte(tc.body), nil)
			r.Expect(t, tc.status, tc.message)
			if tc.field != "" && (len(r.Body.Errors) == 0 || r.Body.Errors[0].Field != tc.field) {
				t.Fatalf("errors %+v, want field %q first\n%s", r.Body.Errors, tc.field, r.Raw)
			}
			if r.Header.Get("X-Request-ID") == "" {
				t.Fatal("no X-Request-ID on an error response")
			}
		})
	}
	huge := `{"email":"a@example.com","password":"` + strings.Repeat("x", 2<<20) + `"}`
	s.Send(t, http.MethodPost, "/register", "application/json", []byte(huge), nil).Expect(t, http.StatusRequestEntityTooLarge, "")
	s.Send(t, http.MethodGet, "/register", "", nil, nil).Expect(t, http.StatusMethodNotAllowed, "")
	s.Send(t, http.MethodPost, "/nothing-here", "application/json", []byte(`{}`), nil).Expect(t, http.StatusNotFound, "route not found")

	if n := count(t, s.db, `SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("%d users written by bad requests", n)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("%d outbox rows written by bad requests", n)
	}
}

// TestConcurrentRegistrationsOfOneEmailCreateOneUser: racing registrations
// of one address send one code: the e-mail cooldown admits one of them.
func TestConcurrentRegistrationsOfOneEmailCreateOneUser(t *testing.T) {
	cfg := testConfig(t)
	cfg.ResendCooldown = time.Minute
	s := start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("race")
	const racers = 16
	statuses := make(chan int, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, _ := json.Marshal(map[string]string{"email": email, "password": "password123"})
			resp, err := http.Post(s.Base+"/register", "application/json", bytes.NewReader(data))
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for st := range statuses {
		got[st]++
	}
	if got[http.StatusAccepted] != 1 || got[http.StatusTooManyRequests] != racers-1 {
		t.Fatalf("statuses %v, want one 202 and %d 429", got, racers-1)
	}
	if n := count(t, s.db, `SELECT count(*) FROM users WHERE email = $1`, email); n != 1 {
		t.Fatalf("%d users for one e-mail", n)
	}
	mail.Next(events.QueueVerification, byEmail, email)
	mail.None(events.QueueVerification, byEmail, email, 300*time.Millisecond)
}

func TestExpiredCodeIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.CodeTTL = 300 * time.Millisecond
	s := start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("late")
	s.post(t, "/register", map[string]any{"email": email, "password": "password123"}).Expect(t, http.StatusAccepted, "")
	code := codeFor(t, mail, email)
	time.Sleep(400 * time.Millisecond)
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": code}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
	if n := count(t, s.db, `SELECT count(*) FROM users WHERE email = $1 AND is_verified`, email); n != 0 {
		t.Fatal("an expired code verified the user")
	}
}

func TestWrongGuessesUseUpTheCode(t *testing.T) {
	cfg := testConfig(t)
	cfg.CodeMaxAttempts = 3
	s := start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("guess")
	s.post(t, "/register", map[string]any{"email": email, "password": "password123"}).Expect(t, http.StatusAccepted, "")
	code := codeFor(t, mail, email)
	wrong := "999999"
	if code == wrong {
		wrong = "888888"
	}
	for range cfg.CodeMaxAttempts {
		s.post(t, "/verify", map[string]any{"email": email, "verification_token": wrong}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
		time.Sleep(5 * time.Millisecond) // past the backoff after a wrong code
	}
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": code}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
}

func TestResendCooldownHoldsAcrossInstances(t *testing.T) {
	cfg := testConfig(t)
	cfg.ResendCooldown = time.Second
	a, b := start(t, cfg), start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("resend")
	a.post(t, "/register", map[string]any{"email": email, "password": "password123"}).Expect(t, http.StatusAccepted, "")
	first := codeFor(t, mail, email)

	refused := b.post(t, "/resend-verification", map[string]any{"email": email})
	refused.Expect(t, http.StatusTooManyRequests, "")
	if ra := refused.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1", ra)
	}
	time.Sleep(1100 * time.Millisecond)

	// After the cooldown, replicas racing for the same e-mail send one code.
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := a
			if i%2 == 1 {
				target = b
			}
			data, _ := json.Marshal(map[string]string{"email": email})
			resp, err := http.Post(target.Base+"/resend-verification", "application/json", bytes.NewReader(data))
			if err != nil {
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusOK] != 1 || statuses[http.StatusTooManyRequests] != 7 {
		t.Fatalf("racing resends: %v, want one 200 and seven 429", statuses)
	}
	second := codeFor(t, mail, email)
	mail.None(events.QueueVerification, byEmail, email, 200*time.Millisecond)
	if second != first {
		a.post(t, "/verify", map[string]any{"email": email, "verification_token": first}).Expect(t, http.StatusBadRequest, "token is wrong or expired")
		time.Sleep(5 * time.Millisecond) // past the backoff after a wrong code
	}
	b.post(t, "/verify", map[string]any{"email": email, "verification_token": second}).Expect(t, http.StatusOK, "")
}

func TestLoginDoesNotTellUnknownEmailFromWrongPassword(t *testing.T) {
	s := start(t, testConfig(t))
	mail := openMailbox(t)
	email := newEmail("known")
	registerAndVerify(t, s, mail, email, "password123")
	unknown := s.post(t, "/login", map[string]any{"email": newEmail("unknown"), "password": "password123"})
	wrong := s.post(t, "/login", map[string]any{"email": email, "password": "password124"})
	unknown.Expect(t, http.StatusUnauthorized, "unauthorized")
	wrong.Expect(t, http.StatusUnauthorized, "unauthorized")
	if !bytes.Equal(unknown.Raw, wrong.Raw) {
		t.Fatalf("bodies differ:\n%s\n%s", unknown.Raw, wrong.Raw)
	}
}

func writeJWKS(t testing.TB, path string, keys ...tokens.Key) {
	t.Helper()
	data, err := tokens.KeySet{Keys: keys}.MarshalJWKS(true)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func kidOf(t testing.TB, token string) string {
	t.Helper()
	var header struct{ Kid string }
	raw, err := jsonSegment(token)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatal(err)
	}
	return header.Kid
}

func TestKeyRotationWithoutRestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
	old, err := tokens.GenerateKey(tokens.EdDSA, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	writeJWKS(t, cfg.JWKSFile, old)
	s := start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("rotate")
	registerAndVerify(t, s, mail, email, "password123")
	before := login(t, s, email, "password123")
	if kidOf(t, before) != old.ID {
		t.Fatalf("signed with %s, want %s", kidOf(t, before), old.ID)
	}

	next, err := tokens.GenerateKey(tokens.ES256, time.Now(), time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	writeJWKS(t, cfg.JWKSFile, next, old)
	time.Sleep(50 * time.Millisecond)
	after := login(t, s, email, "password123")
	if kidOf(t, after) != next.ID {
		t.Fatalf("after rotation signed with %s, want the new key %s", kidOf(t, after), next.ID)
	}
	// During the grace period the published set holds both keys: old tokens stay valid.
	verifyWithPublishedKeys(t, s, before)
	verifyWithPublishedKeys(t, s, after)
}

func TestBrokenKeyFileStopsStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(cfg.JWKSFile, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := auth.New(cfg, quiet, prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "KSHOP_AUTH_JWKS_FILE") {
		t.Fatalf("New = %v, want an error naming KSHOP_AUTH_JWKS_FILE", err)
	}
}

func TestNotReadyWhileDependenciesAreDown(t *testing.T) {
	cfg := testConfig(t)
	cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	s := serve(t, cfg)
	testenv.WaitFor(t, 10*time.Second, "a /readyz answer naming redis", func() bool {
		r := s.Send(t, http.MethodGet, "/readyz", "", nil, nil)
		return r.Status == http.StatusServiceUnavailable && bytes.Contains(r.Raw, []byte("redis"))
	})
	s.Send(t, http.MethodGet, "/healthz", "", nil, nil).Expect(t, http.StatusOK, "")
}
