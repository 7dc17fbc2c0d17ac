package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// service is one running auth instance under test.
type service struct {
	base string
	db   *pgxpool.Pool
}

func testConfig(t testing.TB) auth.Config {
	t.Helper()
	return auth.Config{
		ShutdownTimeout: 5 * time.Second,
		Database:        pg.Config{URL: testenv.NewDatabase(t), MaxConns: 10},
		Redis:           redisx.Config{Addrs: []string{testenv.RedisAddr(t)}},
		AMQPURL:         testenv.OwnAMQPURL(t),
		BcryptCost:      bcrypt.MinCost, // production refuses below 10; tests want speed
		CodeTTL:         10 * time.Minute,
		CodeMaxAttempts: 5,
		ResendCooldown:  time.Minute,
		JWKSReload:      10 * time.Millisecond,
		JWKSAlgorithm:   tokens.EdDSA,
		TokenTTL:        time.Hour,
		TokenIssuer:     "kshop-auth",
		TokenAudience:   "kshop",
	}
}

// serve runs an instance of cfg until the test ends.
func serve(t testing.TB, cfg auth.Config) *service {
	t.Helper()
	app, err := auth.New(cfg, quiet, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("auth service stopped with %v", err)
		}
	})
	return &service{base: "http://" + ln.Addr().String()}
}

// start is serve, then waits until the instance is ready.
func start(t testing.TB, cfg auth.Config) *service {
	t.Helper()
	s := serve(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "auth /readyz", func() bool {
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	pool, err := pgxpool.New(context.Background(), cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.db = pool
	return s
}

type envelope struct {
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Errors  []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

type reply struct {
	status int
	header http.Header
	body   envelope
	raw    []byte
}

func (s *service) post(t testing.TB, path string, body any) reply {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return s.send(t, http.MethodPost, path, "application/json", data)
}

func (s *service) send(t testing.TB, method, path, contentType string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: response is not the envelope: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

func (r reply) expect(t testing.TB, status int, message string) {
	t.Helper()
	if r.status != status || (message != "" && r.body.Message != message) {
		t.Fatalf("got %d %q, want %d %q\n%s", r.status, r.body.Message, status, message, r.raw)
	}
}

func (r reply) data(t testing.TB, dst any) {
	t.Helper()
	if err := json.Unmarshal(r.body.Data, dst); err != nil {
		t.Fatalf("decode data: %v\n%s", err, r.raw)
	}
}

func newEmail(tag string) string {
	return fmt.Sprintf("%s-%s@example.com", tag, testenv.RandomSuffix())
}

// mailbox reads the mail service's queues, as the mail service would.
type mailbox struct {
	t  testing.TB
	ch *amqp091.Channel
	mu sync.Mutex
	// seen holds messages of other e-mails read while looking for one.
	seen map[string][]amqp091.Delivery
}

func openMailbox(t testing.TB) *mailbox {
	t.Helper()
	conn, err := amqp091.Dial(testenv.OwnAMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return &mailbox{t: t, ch: ch, seen: map[string][]amqp091.Delivery{}}
}

// next returns the next message for email on queue, waiting up to 10 s.
func (m *mailbox) next(queue, email string) amqp091.Delivery {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	key := queue + " " + email
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pending := m.seen[key]; len(pending) > 0 {
			m.seen[key] = pending[1:]
			return pending[0]
		}
		d, ok, err := m.ch.Get(queue, true)
		if err != nil {
			m.t.Fatalf("get from %s: %v", queue, err)
		}
		if ok {
			var to struct{ Email string }
			_ = json.Unmarshal(d.Body, &to)
			k := queue + " " + to.Email
			m.seen[k] = append(m.seen[k], d)
			continue
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("no message for %s on queue %s within 10 s", email, queue)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// none asserts that no further message for email arrives on queue within wait.
func (m *mailbox) none(queue, email string, wait time.Duration) {
	m.t.Helper()
	time.Sleep(wait)
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		d, ok, err := m.ch.Get(queue, true)
		if err != nil {
			m.t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			break
		}
		var to struct{ Email string }
		_ = json.Unmarshal(d.Body, &to)
		k := queue + " " + to.Email
		m.seen[k] = append(m.seen[k], d)
	}
	if n := len(m.seen[queue+" "+email]); n > 0 {
		m.t.Fatalf("%d unexpected messages for %s on %s", n, email, queue)
	}
}

func (m *mailbox) code(email string) string {
	m.t.Helper()
	d := m.next(events.QueueVerification, email)
	msg, err := events.Decode[events.VerificationMail](d.Body)
	if err != nil {
		m.t.Fatalf("verification message: %v\n%s", err, d.Body)
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
	registered.expect(t, http.StatusCreated, "")
	var user struct {
		ID         int64     `json:"id"`
		Email      string    `json:"email"`
		IsVerified *bool     `json:"is_verified"`
		CreatedAt  time.Time `json:"created_at"`
		UpdatedAt  time.Time `json:"updated_at"`
	}
	registered.data(t, &user)
	if user.ID <= 0 || user.Email != strings.ToLower(email) || user.IsVerified == nil || *user.IsVerified || user.CreatedAt.IsZero() || user.UpdatedAt.IsZero() {
		t.Fatalf("registered user %+v", user)
	}
	email = strings.ToLower(email)

	d := mail.next(events.QueueVerification, email)
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
	if d.MessageId == "" || d.ContentType != "application/json" || d.Exchange != events.ExchangeNotifications || d.RoutingKey != events.RoutingSendVerification {
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

	s.post(t, "/login", map[string]any{"email": email, "password": password}).expect(t, http.StatusForbidden, "user not verified")
	s.post(t, "/login", map[string]any{"email": email, "password": "wrong password"}).expect(t, http.StatusUnauthorized, "unauthorized")

	wrong := "000000"
	if msg.Token == wrong {
		wrong = "111111"
	}
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": wrong}).expect(t, http.StatusBadRequest, "token is wrong")
	verified := s.post(t, "/verify", map[string]any{"email": email, "verification_token": msg.Token})
	verified.expect(t, http.StatusOK, "")
	var v map[string]any
	verified.data(t, &v)
	if v["is_verified"] != true || v["email"] != email || v["id"] != float64(user.ID) || len(v) != 3 {
		t.Fatalf("verify answered %v", v)
	}
	if got, err := events.Decode[events.AccountVerifiedMail](mail.next(events.QueueVerified, email).Body); err != nil || got.Email != email {
		t.Fatalf("account.verified message %+v, %v", got, err)
	}
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": msg.Token}).expect(t, http.StatusConflict, "user already verified")
	s.post(t, "/resend-verification", map[string]any{"email": email}).expect(t, http.StatusConflict, "user already verified")

	loggedIn := s.post(t, "/login", map[string]any{"email": email, "password": password})
	loggedIn.expect(t, http.StatusOK, "")
	var token struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	loggedIn.data(t, &token)
	if token.TokenType != "Bearer" || token.ExpiresIn < 3590 || token.ExpiresIn > 3600 {
		t.Fatalf("token %+v", token)
	}
	claims := verifyWithPublishedKeys(t, s, token.AccessToken)
	if claims.Subject != fmt.Sprint(user.ID) || claims.Email != email || strings.Join(claims.Roles, ",") != "customer" {
		t.Fatalf("claims %+v", claims)
	}
	if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life != time.Hour {
		t.Fatalf("token lives %v, want 1h", life)
	}
}

// verifyWithPublishedKeys checks a token the way the gateway does: against the
// public JWKS the service serves.
func verifyWithPublishedKeys(t testing.TB, s *service, token string) *tokens.Claims {
	t.Helper()
	resp, err := http.Get(s.base + "/.well-known/jwks.json")
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

func registerAndVerify(t testing.TB, s *service, mail *mailbox, email, password string) {
	t.Helper()
	s.post(t, "/register", map[string]any{"email": email, "password": password}).expect(t, http.StatusCreated, "")
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": mail.code(email)}).expect(t, http.StatusOK, "")
}

func login(t testing.TB, s *service, email, password string) string {
	t.Helper()
	r := s.post(t, "/login", map[string]any{"email": email, "password": password})
	r.expect(t, http.StatusOK, "")
	var token struct {
		AccessToken string `json:"access_token"`
	}
	r.data(t, &token)
	return token.AccessToken
}

func TestAdminEmailsGetTheAdminRole(t *testing.T) {
	cfg := testConfig(t)
	admin := newEmail("admin")
	cfg.AdminEmails = []string{" " + strings.ToUpper(admin)}
	cfg.BcryptCost = 10
	if err := cfg.Validate(); err != nil { // normalises the list as config.Load does
		t.Fatal(err)
	}
	cfg.BcryptCost = bcrypt.MinCost
	s := start(t, cfg)
	mail := openMailbox(t)
	registerAndVerify(t, s, mail, admin, "password123")
	claims := verifyWithPublishedKeys(t, s, login(t, s, admin, "password123"))
	if strings.Join(claims.Roles, ",") != "customer,admin" {
		t.Fatalf("admin roles %v", claims.Roles)
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
		"not JSON content type":  {"/register", "text/plain", `{"email":"a@example.com","password":"password123"}`, 415, "content type must be application/json", ""},
		"no content type":        {"/login", "", `{}`, 415, "content type must be application/json", ""},
		"empty body":             {"/register", "application/json", ``, 400, "missing body request", ""},
		"malformed JSON":         {"/register", "application/json", `{"email":`, 400, "input validation error", "body"},
		"two JSON values":        {"/register", "application/json", `{"email":"a@example.com","password":"password123"} {}`, 400, "input validation error", "body"},
		"array body":             {"/register", "application/json", `[]`, 400, "input validation error", "body"},
		"wrong type":             {"/register", "application/json", `{"email":42,"password":"password123"}`, 400, "input validation error", "email"},
		"unknown field":          {"/register", "application/json", `{"email":"a@example.com","password":"password123","role":"admin"}`, 400, "input validation error", "role"},
		"missing email":          {"/register", "application/json", `{"password":"password123"}`, 400, "input validation error", "email"},
		"invalid email":          {"/register", "application/json", `{"email":"not-an-email","password":"password123"}`, 400, "input validation error", "email"},
		"over-long email":        {"/register", "application/json", `{"email":"` + long + `","password":"password123"}`, 400, "input validation error", "email"},
		"short password":         {"/register", "application/json", `{"email":"a@example.com","password":"short"}`, 400, "input validation error", "password"},
		"password over 72 bytes": {"/register", "application/json", `{"email":"a@example.com","password":"` + strings.Repeat("é", 40) + `"}`, 400, "input validation error", "password"},
		"code not digits":        {"/verify", "application/json", `{"email":"a@example.com","verification_token":"12345a"}`, 400, "input validation error", "verification_token"},
		"code too short":         {"/verify", "application/json", `{"email":"a@example.com","verification_token":"12345"}`, 400, "input validation error", "verification_token"},
		"resend without email":   {"/resend-verification", "application/json", `{}`, 400, "input validation error", "email"},
		"login without password": {"/login", "application/json", `{"email":"a@example.com"}`, 400, "input validation error", "password"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.send(t, http.MethodPost, tc.path, tc.contentType, []byte(tc.body))
			r.expect(t, tc.status, tc.message)
			if tc.field != "" && (len(r.body.Errors) == 0 || r.body.Errors[0].Field != tc.field) {
				t.Fatalf("errors %+v, want field %q first\n%s", r.body.Errors, tc.field, r.raw)
			}
			if r.header.Get("X-Request-ID") == "" {
				t.Fatal("no X-Request-ID on an error response")
			}
		})
	}
	huge := `{"email":"a@example.com","password":"` + strings.Repeat("x", 2<<20) + `"}`
	s.send(t, http.MethodPost, "/register", "application/json", []byte(huge)).expect(t, http.StatusRequestEntityTooLarge, "")
	s.send(t, http.MethodGet, "/register", "", nil).expect(t, http.StatusMethodNotAllowed, "")
	s.send(t, http.MethodPost, "/nothing-here", "application/json", []byte(`{}`)).expect(t, http.StatusNotFound, "route not found")

	if n := count(t, s.db, `SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("%d users written by bad requests", n)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("%d outbox rows written by bad requests", n)
	}
}

func TestConcurrentRegistrationsOfOneEmailCreateOneUser(t *testing.T) {
	s := start(t, testConfig(t))
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
			resp, err := http.Post(s.base+"/register", "application/json", bytes.NewReader(data))
			if err != nil {
				statuses <- 0
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusConflict && !bytes.Contains(body, []byte(`"user already exist"`)) {
				statuses <- -1
				return
			}
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for st := range statuses {
		got[st]++
	}
	if got[http.StatusCreated] != 1 || got[http.StatusConflict] != racers-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409 \"user already exist\"", got, racers-1)
	}
	if n := count(t, s.db, `SELECT count(*) FROM users WHERE email = $1`, email); n != 1 {
		t.Fatalf("%d users for one e-mail", n)
	}
	mail.next(events.QueueVerification, email)
	mail.none(events.QueueVerification, email, 300*time.Millisecond)
}

func TestUnknownEmail(t *testing.T) {
	s := start(t, testConfig(t))
	email := newEmail("nobody")
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": "123456"}).expect(t, http.StatusNotFound, "user not found")
	s.post(t, "/resend-verification", map[string]any{"email": email}).expect(t, http.StatusNotFound, "user not found")
}

func TestExpiredCodeIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.CodeTTL = 300 * time.Millisecond
	s := start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("late")
	s.post(t, "/register", map[string]any{"email": email, "password": "password123"}).expect(t, http.StatusCreated, "")
	code := mail.code(email)
	time.Sleep(400 * time.Millisecond)
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": code}).expect(t, http.StatusBadRequest, "token expired")
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
	s.post(t, "/register", map[string]any{"email": email, "password": "password123"}).expect(t, http.StatusCreated, "")
	code := mail.code(email)
	wrong := "999999"
	if code == wrong {
		wrong = "888888"
	}
	for range cfg.CodeMaxAttempts {
		s.post(t, "/verify", map[string]any{"email": email, "verification_token": wrong}).expect(t, http.StatusBadRequest, "token is wrong")
	}
	s.post(t, "/verify", map[string]any{"email": email, "verification_token": code}).expect(t, http.StatusBadRequest, "token expired")
}

func TestResendCooldownHoldsAcrossInstances(t *testing.T) {
	cfg := testConfig(t)
	cfg.ResendCooldown = time.Second
	a, b := start(t, cfg), start(t, cfg)
	mail := openMailbox(t)
	email := newEmail("resend")
	a.post(t, "/register", map[string]any{"email": email, "password": "password123"}).expect(t, http.StatusCreated, "")
	first := mail.code(email)

	refused := b.post(t, "/resend-verification", map[string]any{"email": email})
	refused.expect(t, http.StatusTooManyRequests, "")
	if ra := refused.header.Get("Retry-After"); ra != "1" {
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
			resp, err := http.Post(target.base+"/resend-verification", "application/json", bytes.NewReader(data))
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
	second := mail.code(email)
	mail.none(events.QueueVerification, email, 200*time.Millisecond)
	if second != first {
		a.post(t, "/verify", map[string]any{"email": email, "verification_token": first}).expect(t, http.StatusBadRequest, "token is wrong")
	}
	b.post(t, "/verify", map[string]any{"email": email, "verification_token": second}).expect(t, http.StatusOK, "")
}

func TestLoginDoesNotTellUnknownEmailFromWrongPassword(t *testing.T) {
	s := start(t, testConfig(t))
	mail := openMailbox(t)
	email := newEmail("known")
	registerAndVerify(t, s, mail, email, "password123")
	unknown := s.post(t, "/login", map[string]any{"email": newEmail("unknown"), "password": "password123"})
	wrong := s.post(t, "/login", map[string]any{"email": email, "password": "password124"})
	unknown.expect(t, http.StatusUnauthorized, "unauthorized")
	wrong.expect(t, http.StatusUnauthorized, "unauthorized")
	if !bytes.Equal(unknown.raw, wrong.raw) {
		t.Fatalf("bodies differ:\n%s\n%s", unknown.raw, wrong.raw)
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
		r := s.send(t, http.MethodGet, "/readyz", "", nil)
		return r.status == http.StatusServiceUnavailable && bytes.Contains(r.raw, []byte("redis"))
	})
	s.send(t, http.MethodGet, "/healthz", "", nil).expect(t, http.StatusOK, "")
}
