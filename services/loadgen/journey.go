package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// JourneyConfig says where the platform is and what to expect of it.
type JourneyConfig struct {
	Gateway string
	Inbox   Inbox
	// Admin is the e-mail that gets the admin role (KSHOP_AUTH_ADMIN_EMAILS).
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
func Journey(ctx context.Context, cfg JourneyConfig) error {
	step := cfg.Step
	if step == nil {
		step = func(string, ...any) {}
	}
	api := NewClient(strings.TrimSuffix(cfg.Gateway, "/"))
	tag := fmt.Sprint(time.Now().UnixNano())
	email := "smoke-" + tag + "@example.com"

	customer, err := SignUp(ctx, api, cfg.Inbox, email, "journey-password")
	if err != nil {
		return err
	}
	step("registered, verified through the mailed code and logged in as %s", email)
	admin, err := SignUp(ctx, api, cfg.Inbox, cfg.Admin, cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("admin %s: %w", cfg.Admin, err)
	}

	var p product
	name := "Smoke coffee " + tag
	if err := admin.Expect(ctx, http.StatusCreated, http.MethodPost, "/products",
		map[string]any{"name": name, "description": "roasted for the smoke test", "price": "12.50", "quantity": 5}, &p); err != nil {
		return fmt.Errorf("create a product as the admin: %w", err)
	}
	var found []product
	if err := api.Expect(ctx, http.StatusOK, http.MethodGet, "/products?name="+strings.ReplaceAll(name, " ", "+"), nil, &found); err != nil {
		return err
	}
	if len(found) != 1 || found[0].ID != p.ID {
		return fmt.Errorf("search for %q found %+v, want product %d", name, found, p.ID)
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
	if _, err := awaitMail(ctx, cfg.Inbox, email, fmt.Sprintf("Order #%d is paid", paid.ID), 30*time.Second); err != nil {
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
	if _, err := awaitMail(ctx, cfg.Inbox, email, fmt.Sprintf("Order #%d is cancelled", unpaid.ID), 30*time.Second); err != nil {
		return err
	}
	if err := awaitStock(ctx, api, p.ID, 3); err != nil {
		return fmt.Errorf("restock after the expiry: %w", err)
	}
	step("order %d: %d reminders, expired, cancellation e-mail, stock back to 3", unpaid.ID, reminders)
	return nil
}

// SignUp registers (or finds) an account, verifies it with the mailed code and
// logs in, returning a client that sends its token.
func SignUp(ctx context.Context, api *Client, inbox Inbox, email, password string) (*Client, error) {
	r, err := api.Call(ctx, http.MethodPost, "/auth/register", map[string]any{"email": email, "password": password})
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusCreated && r.Status != http.StatusConflict {
		return nil, fmt.Errorf("register %s: %d %s", email, r.Status, r.Raw)
	}
	login := func() (Reply, error) {
		return api.Call(ctx, http.MethodPost, "/auth/login", map[string]any{"email": email, "password": password})
	}
	r, err = login()
	if err != nil {
		return nil, err
	}
	if r.Status == http.StatusForbidden { // registered, not verified yet
		mail, err := awaitMail(ctx, inbox, email, "verification code", 30*time.Second)
		if err != nil {
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
