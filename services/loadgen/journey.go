package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// JourneyConfig says where the platform is and what to expect of it.
type JourneyConfig struct {
	Gateway string
	Inbox   Inbox
	// Admin is an address auth gives the admin role (KSHOP_AUTH_ADMIN_EMAILS
	// or KSHOP_AUTH_TEST_ADMIN_EMAIL), and the password to register it with.
	// The journey deletes the account when it ends, so the password is not
	// left usable behind it.
	Admin         string
	AdminPassword string
	// Reminders is how many payment reminders an unpaid order gets before it
	// expires; ExpiryWithin bounds the wait for the expiry.
	Reminders    int
	ExpiryWithin time.Duration
	// Step is told each step as it passes, for a progress line.
	Step func(format string, args ...any)
}

type product struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Price    string `json:"price"`
	Quantity int64  `json:"quantity"`
}

type orderView struct {
	ID           int64   `json:"id"`
	Status       string  `json:"status"`
	CancelReason *string `json:"cancel_reason"`
	TotalAmount  string  `json:"total_amount"`
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// Journey walks a customer's life through the gateway and checks every effect:
// register, read the code from the inbox, verify, log in; the admin creates a
// product; search it, order it, see the stock drop, pay, see the success e-mail;
// then an order left unpaid gets its reminders, expires and is restocked.
// Whatever happens, it deletes the accounts it signed in with at the end (the
// customer's and the admin's), and checks their tokens are refused then.
func Journey(ctx context.Context, cfg JourneyConfig) (err error) {
	step := cfg.Step
	if step == nil {
		step = func(string, ...any) {}
	}
	if cfg.Admin == "" || cfg.AdminPassword == "" {
		return errors.New("no admin to create the product with: give an address auth makes an admin, and its password")
	}
	api := NewClient(strings.TrimSuffix(cfg.Gateway, "/"))
	tag := fmt.Sprint(time.Now().UnixNano())
	email := "smoke-" + tag + "@example.com"
	password, err := RandomPassword()
	if err != nil {
		return err
	}

	// The accounts signed in so far; deleted when the journey ends.
	var accounts []account
	defer func() {
		var left []error
		for _, a := range accounts {
			if leaveErr := leave(ctx, a); leaveErr != nil {
				left = append(left, leaveErr)
			}
		}
		if err == nil && len(left) == 0 {
			step("deleted the journey's accounts (%s and the admin); their tokens are refused", email)
		}
		err = errors.Join(append([]error{err}, left...)...)
	}()
	customer, err := SignUp(ctx, api, cfg.Inbox, email, password)
	if err != nil {
		return err
	}
	accounts = append(accounts, account{customer, email, password})
	step("registered, verified through the mailed code and logged in as %s", email)
	admin, err := SignUp(ctx, api, cfg.Inbox, cfg.Admin, cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("admin %s: %w", cfg.Admin, err)
	}
	accounts = append(accounts, account{admin, cfg.Admin, cfg.AdminPassword})

	var p product
	name := "Smoke coffee " + tag
	if err := admin.Expect(ctx, http.StatusCreated, http.MethodPost, "/products",
		map[string]any{"name": name, "description": "roasted for the smoke test", "price": "12.50", "quantity": 5}, &p); err != nil {
		return fmt.Errorf("create a product as the admin: %w", err)
	}
	// A customer's search reads a replica, which may lag the admin's write
	// by up to its bound (KSHOP_PRODUCT_DATABASE_REPLICA_MAX_LAG): wait for it.
	if err := retryUntil(ctx, 30*time.Second, func() error {
		var found []product
		if err := api.Expect(ctx, http.StatusOK, http.MethodGet, "/products?name="+strings.ReplaceAll(name, " ", "+"), nil, &found); err != nil {
			return err
		}
		if len(found) != 1 || found[0].ID != p.ID {
			return fmt.Errorf("search for %q found %+v, want product %d", name, found, p.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	step("admin created product %d; search finds it", p.ID)

	// The order service learns about the product from Kafka; wait for it.
	var paid orderView
	if err := retryUntil(ctx, 30*time.Second, func() error {
		return customer.Expect(ctx, http.StatusCreated, http.MethodPost, "/orders",
			map[string]any{"request_id": "smoke-paid-" + tag, "items": []map[string]any{{"product_id": p.ID, "quantity": 2}}}, &paid)
	}); err != nil {
		return fmt.Errorf("place an order: %w", err)
	}
	if paid.TotalAmount != "25.00" || paid.Status != "PENDING" {
		return fmt.Errorf("new order %+v, want PENDING with total 25.00", paid)
	}
	if err := awaitStock(ctx, api, p.ID, 3); err != nil {
		return err
	}
	step("order %d placed; stock dropped from 5 to 3", paid.ID)
	if err := retryUntil(ctx, 30*time.Second, func() error {
		return customer.Expect(ctx, http.StatusOK, http.MethodPost, "/orders/pay", map[string]any{"request_id": "smoke-pay-" + tag, "order_id": paid.ID}, nil)
	}); err != nil {
		return fmt.Errorf("pay order %d: %w", paid.ID, err)
	}
	if err := awaitMail(ctx, cfg.Inbox, email, fmt.Sprintf("Order #%d is paid", paid.ID), 30*time.Second); err != nil {
		return err
	}
	step("order %d paid; the success e-mail arrived", paid.ID)

	var unpaid orderView
	if err := customer.Expect(ctx, http.StatusCreated, http.MethodPost, "/orders",
		map[string]any{"request_id": "smoke-unpaid-" + tag, "items": []map[string]any{{"product_id": p.ID, "quantity": 1}}}, &unpaid); err != nil {
		return fmt.Errorf("place the unpaid order: %w", err)
	}
	if err := awaitStock(ctx, api, p.ID, 2); err != nil {
		return err
	}
	step("order %d left unpaid; stock at 2; waiting up to %v for its reminders and expiry", unpaid.ID, cfg.ExpiryWithin)
	deadline := time.Now().Add(cfg.ExpiryWithin)
	for {
		var o orderView
		if err := customer.Expect(ctx, http.StatusOK, http.MethodGet, fmt.Sprintf("/orders/%d", unpaid.ID), nil, &o); err != nil {
			return err
		}
		if o.Status == "CANCELLED" {
			if o.CancelReason == nil || *o.CancelReason != "expired" {
				return fmt.Errorf("order %d cancelled for %v, want expired", unpaid.ID, o.CancelReason)
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("order %d still %s after %v: are the timers shortened (KSHOP_ORDER_EXPIRY_DELAY)?", unpaid.ID, o.Status, cfg.ExpiryWithin)
		}
		time.Sleep(500 * time.Millisecond)
	}
	reminders, err := countMail(ctx, cfg.Inbox, email, fmt.Sprintf("order #%d is waiting for payment", unpaid.ID))
	if err != nil {
		return err
	}
	if reminders != cfg.Reminders {
		return fmt.Errorf("%d payment reminders for order %d, want %d", reminders, unpaid.ID, cfg.Reminders)
	}
	if err := awaitMail(ctx, cfg.Inbox, email, fmt.Sprintf("Order #%d is cancelled", unpaid.ID), 30*time.Second); err != nil {
		return err
	}
	if err := awaitStock(ctx, api, p.ID, 3); err != nil {
		return fmt.Errorf("restock after the expiry: %w", err)
	}
	step("order %d: %d reminders, expired, cancellation e-mail, stock back to 3", unpaid.ID, reminders)
	return nil
}

// Subjects of the e-mails SignUp reads.
const (
	subjectCode   = "verification code"
	subjectExists = "You already have a kshop account"
)

// longestWait is the longest Retry-After SignUp waits for on its own.
const longestWait = 2 * time.Minute

// SignUp logs in as email and returns a client that sends its token. When the
// address has no account yet (or a pending one) it registers it with
// password, reads the mailed code from the inbox, verifies and logs in.
func SignUp(ctx context.Context, api *Client, inbox Inbox, email, password string) (*Client, error) {
	login := func() (Reply, error) {
		return api.Call(ctx, http.MethodPost, "/auth/login", map[string]any{"email": email, "password": password})
	}
	r, err := login()
	if err != nil {
		return nil, err
	}
	if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden { // no account, or not verified yet
		codesBefore, err := countMail(ctx, inbox, email, subjectCode)
		if err != nil {
			return nil, err
		}
		existsBefore, _ := countMail(ctx, inbox, email, subjectExists)
		if err := callPatiently(ctx, api, http.StatusAccepted, "/auth/register", map[string]any{"email": email, "password": password}); err != nil {
			return nil, fmt.Errorf("register %s: %w", email, err)
		}
		mail, err := awaitNewMail(ctx, inbox, email, subjectCode, codesBefore, 30*time.Second)
		if err != nil {
			if exists, _ := countMail(ctx, inbox, email, subjectExists); exists > existsBefore {
				return nil, fmt.Errorf("%s already has a verified account with another password than the one given", email)
			}
			return nil, err
		}
		code := sixDigits.FindString(mail.Subject)
		if err := api.Expect(ctx, http.StatusOK, http.MethodPost, "/auth/verify", map[string]any{"email": email, "verification_token": code}, nil); err != nil {
			return nil, fmt.Errorf("verify %s with %q: %w", email, code, err)
		}
		if r, err = login(); err != nil {
			return nil, err
		}
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("log in as %s: %d %s", email, r.Status, r.Raw)
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if err := jsonDecode(r.Data, &token); err != nil || token.AccessToken == "" {
		return nil, fmt.Errorf("login answer %s", r.Raw)
	}
	return api.As(token.AccessToken), nil
}

// callPatiently posts body and expects status; a 429 (an e-mail cooldown,
// a rate limit) is waited out when its Retry-After is short.
func callPatiently(ctx context.Context, api *Client, status int, path string, body any) error {
	for {
		r, err := api.Call(ctx, http.MethodPost, path, body)
		if err != nil {
			return err
		}
		if r.Status == status {
			return nil
		}
		wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != http.StatusTooManyRequests || time.Duration(wait)*time.Second > longestWait {
			return fmt.Errorf("%d %s", r.Status, r.Raw)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(max(wait, 1)) * time.Second):
		}
	}
}

// DeleteAccount deletes the account email, proven with its password.
func DeleteAccount(ctx context.Context, api *Client, email, password string) error {
	return api.Expect(ctx, http.StatusOK, http.MethodPost, "/auth/delete-account", map[string]any{"email": email, "password": password}, nil)
}

// account is one the journey signed in as.
type account struct {
	client          *Client
	email, password string
}

// revocationWithin bounds the wait for the gateway to refuse the token of a
// deleted account: its KSHOP_GATEWAY_REVOCATION_CACHE (5 s by default).
const revocationWithin = 30 * time.Second

// leave deletes the account and checks that its token is refused afterwards.
// It runs when the journey ends, failed or not, so a cancelled ctx only
// shortens it.
func leave(ctx context.Context, a account) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revocationWithin+30*time.Second)
	defer cancel()
	if err := DeleteAccount(ctx, a.client.As(""), a.email, a.password); err != nil {
		return fmt.Errorf("delete the account %s: %w", a.email, err)
	}
	err := retryUntil(ctx, revocationWithin, func() error {
		r, err := a.client.Call(ctx, http.MethodGet, "/orders", nil)
		if err != nil {
			return err
		}
		if r.Status != http.StatusUnauthorized {
			return fmt.Errorf("GET /orders answered %d", r.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the token of the deleted account %s still works after %v: %w", a.email, revocationWithin, err)
	}
	return nil
}

// RandomPassword returns 24 random letters and digits.
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw a password: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

func awaitStock(ctx context.Context, api *Client, id, want int64) error {
	var p product
	err := retryUntil(ctx, 30*time.Second, func() error {
		if err := api.Expect(ctx, http.StatusOK, http.MethodGet, fmt.Sprintf("/products/%d", id), nil, &p); err != nil {
			return err
		}
		if p.Quantity != want {
			return fmt.Errorf("product %d has %d in stock, want %d", id, p.Quantity, want)
		}
		return nil
	})
	return err
}

// retryUntil repeats fn until it succeeds or within passes: the platform is
// eventually consistent between services by design.
func retryUntil(ctx context.Context, within time.Duration, fn func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
