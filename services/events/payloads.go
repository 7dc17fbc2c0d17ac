package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/kshop/kshop/services/money"
)

// Product is the payload of product-created and product-updated. Version grows
// with every change, stock changes included, so consumers can ignore stale events.
type Product struct {
	ID          int64       `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Price       money.Money `json:"price"`
	Quantity    int64       `json:"quantity"`
	Version     int64       `json:"version"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// Validate checks what a consumer relies on.
func (p Product) Validate() error {
	return firstError(
		positive("id", p.ID), positive("version", p.Version),
		nonNegative("quantity", p.Quantity), notEmpty("name", p.Name),
	)
}

// ProductDeleted is the payload of product-deleted.
type ProductDeleted struct {
	ID        int64     `json:"id"`
	Version   int64     `json:"version"`
	DeletedAt time.Time `json:"deleted_at"`
}

// Validate checks what a consumer relies on.
func (p ProductDeleted) Validate() error {
	return firstError(positive("id", p.ID), positive("version", p.Version))
}

// OrderCreatedItem is one line of an order-created event.
type OrderCreatedItem struct {
	ProductID int64       `json:"product_id"`
	Quantity  int64       `json:"quantity"`
	Price     money.Money `json:"price"`
}

// OrderCreated asks the product service to reserve stock.
type OrderCreated struct {
	OrderID       int64              `json:"order_id"`
	CustomerID    int64              `json:"customer_id"`
	CustomerEmail string             `json:"customer_email"`
	Items         []OrderCreatedItem `json:"items"`
	TotalAmount   money.Money        `json:"total_amount"`
	CreatedAt     time.Time          `json:"created_at"`
}

// Validate checks what a consumer relies on.
func (o OrderCreated) Validate() error {
	errs := []error{positive("order_id", o.OrderID), positive("customer_id", o.CustomerID), address("customer_email", o.CustomerEmail)}
	if len(o.Items) == 0 {
		errs = append(errs, errors.New("items: must not be empty"))
	}
	for i, item := range o.Items {
		errs = append(errs, positive(fmt.Sprintf("items[%d].product_id", i), item.ProductID),
			positive(fmt.Sprintf("items[%d].quantity", i), item.Quantity))
	}
	return firstError(errs...)
}

// OrderPaid tells the product service that the units reserved for the order
// are sold: they will never be released.
type OrderPaid struct {
	OrderID    int64     `json:"order_id"`
	CustomerID int64     `json:"customer_id"`
	PaidAt     time.Time `json:"paid_at"`
}

// Validate checks what a consumer relies on.
func (o OrderPaid) Validate() error {
	return firstError(positive("order_id", o.OrderID), positive("customer_id", o.CustomerID))
}

// CancelledItem is one line of an order-cancelled event.
type CancelledItem struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// OrderCancelled tells the product service to release the order's reservation.
type OrderCancelled struct {
	OrderID    int64           `json:"order_id"`
	CustomerID int64           `json:"customer_id"`
	Reason     string          `json:"reason"`
	Items      []CancelledItem `json:"items"`
}

// Validate checks what a consumer relies on.
func (o OrderCancelled) Validate() error {
	errs := []error{positive("order_id", o.OrderID), positive("customer_id", o.CustomerID), oneOf("reason", o.Reason, CancelExpired, CancelOutOfStock, CancelCustomer)}
	for i, item := range o.Items {
		errs = append(errs, positive(fmt.Sprintf("items[%d].product_id", i), item.ProductID),
			positive(fmt.Sprintf("items[%d].quantity", i), item.Quantity))
	}
	return firstError(errs...)
}

// StockReserved confirms that every item of an order is reserved.
type StockReserved struct {
	OrderID int64 `json:"order_id"`
}

// Validate checks what a consumer relies on.
func (s StockReserved) Validate() error { return positive("order_id", s.OrderID) }

// Shortage names a product that had too little stock for an order.
type Shortage struct {
	ProductID int64 `json:"product_id"`
	Requested int64 `json:"requested"`
	Available int64 `json:"available"`
}

// StockRejected says an order could not be reserved, and why.
type StockRejected struct {
	OrderID   int64      `json:"order_id"`
	Reason    string     `json:"reason"`
	Shortages []Shortage `json:"shortages"`
}

// Validate checks what a consumer relies on.
func (s StockRejected) Validate() error {
	return firstError(positive("order_id", s.OrderID), notEmpty("reason", s.Reason))
}

// MailItem is an order line as an e-mail shows it.
type MailItem struct {
	ProductID int64       `json:"product_id"`
	Name      string      `json:"name"`
	Quantity  int64       `json:"quantity"`
	Price     money.Money `json:"price"`
}

// VerificationMail carries a new verification code.
type VerificationMail struct {
	Email     string    `json:"email"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Validate checks what the mail service relies on.
func (m VerificationMail) Validate() error {
	return firstError(address("email", m.Email), code("token", m.Token), notZero("expires_at", m.ExpiresAt))
}

// PasswordResetMail carries a code that lets the address's owner choose a new
// password.
type PasswordResetMail struct {
	Email     string    `json:"email"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Validate checks what the mail service relies on.
func (m PasswordResetMail) Validate() error {
	return firstError(address("email", m.Email), code("token", m.Token), notZero("expires_at", m.ExpiresAt))
}

// AccountExistsMail answers a registration (or a resend) for an address that
// already has a verified account: no code, the way to log in or reset instead.
type AccountExistsMail struct {
	Email string `json:"email"`
}

// Validate checks what the mail service relies on.
func (m AccountExistsMail) Validate() error { return address("email", m.Email) }

// AccountVerifiedMail confirms a verified account.
type AccountVerifiedMail struct {
	Email string `json:"email"`
}

// Validate checks what the mail service relies on.
func (m AccountVerifiedMail) Validate() error { return address("email", m.Email) }

// PaymentReminderMail reminds a customer to pay.
type PaymentReminderMail struct {
	Email          string      `json:"email"`
	OrderID        int64       `json:"order_id"`
	ReminderNumber int         `json:"reminder_number"`
	DueAt          time.Time   `json:"due_at"`
	TotalAmount    money.Money `json:"total_amount"`
	Items          []MailItem  `json:"items"`
}

// Validate checks what the mail service relies on.
func (m PaymentReminderMail) Validate() error {
	return firstError(address("email", m.Email), positive("order_id", m.OrderID),
		positive("reminder_number", int64(m.ReminderNumber)), notZero("due_at", m.DueAt), items(m.Items))
}

// OrderSuccessMail confirms a payment.
type OrderSuccessMail struct {
	Email       string      `json:"email"`
	OrderID     int64       `json:"order_id"`
	TotalAmount money.Money `json:"total_amount"`
	Items       []MailItem  `json:"items"`
}

// Validate checks what the mail service relies on.
func (m OrderSuccessMail) Validate() error {
	return firstError(address("email", m.Email), positive("order_id", m.OrderID), items(m.Items))
}

// OrderCancelledMail tells a customer an order was cancelled.
type OrderCancelledMail struct {
	Email       string      `json:"email"`
	OrderID     int64       `json:"order_id"`
	Reason      string      `json:"reason"`
	TotalAmount money.Money `json:"total_amount"`
	Items       []MailItem  `json:"items"`
}

// Validate checks what the mail service relies on.
func (m OrderCancelledMail) Validate() error {
	return firstError(address("email", m.Email), positive("order_id", m.OrderID),
		oneOf("reason", m.Reason, CancelExpired, CancelOutOfStock, CancelCustomer), items(m.Items))
}

// OrderReminder is the timer that fires a payment reminder.
type OrderReminder struct {
	OrderID        int64 `json:"order_id"`
	ReminderNumber int   `json:"reminder_number"`
}

// Validate checks what the order service relies on.
func (o OrderReminder) Validate() error {
	return firstError(positive("order_id", o.OrderID), positive("reminder_number", int64(o.ReminderNumber)))
}

// OrderExpiry is the timer that ends an order's wait: an unpaid order is
// cancelled, a paid one completed.
type OrderExpiry struct {
	OrderID int64 `json:"order_id"`
}

// Validate checks what the order service relies on.
func (o OrderExpiry) Validate() error { return positive("order_id", o.OrderID) }

// Payload is implemented by every message body above.
type Payload interface{ Validate() error }

// Decode reads a message body strictly: unknown fields, trailing data and
// payloads that fail Validate are errors, which consumers treat as permanent
// (the message goes to the dead-letter queue instead of being retried).
func Decode[T Payload](data []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode %T: %w", v, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, fmt.Errorf("decode %T: trailing data after the JSON object", v)
	}
	if err := v.Validate(); err != nil {
		return v, fmt.Errorf("invalid %T: %w", v, err)
	}
	return v, nil
}

func positive(field string, n int64) error {
	if n <= 0 {
		return fmt.Errorf("%s: must be positive, got %d", field, n)
	}
	return nil
}

func nonNegative(field string, n int64) error {
	if n < 0 {
		return fmt.Errorf("%s: must not be negative, got %d", field, n)
	}
	return nil
}

func notEmpty(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: must not be empty", field)
	}
	return nil
}

// code accepts a verification code: six ASCII digits, which the e-mail's
// subject carries.
func code(field, s string) error {
	if len(s) != 6 || strings.Trim(s, "0123456789") != "" {
		return fmt.Errorf("%s: %.20q is not six digits", field, s)
	}
	return nil
}

// address accepts one bare e-mail address, as auth stores them: no display
// name, no list, and no line break that could add a header to the e-mail.
func address(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: must not be empty", field)
	}
	// Not parsed.Address == s: auth accepts quoted local parts ("a b"@x.com),
	// which parsing unquotes.
	parsed, err := mail.ParseAddress(s)
	if err != nil || parsed.Name != "" || strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%s: %.80q is not one e-mail address", field, s)
	}
	return nil
}

func notZero(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%s: must be set", field)
	}
	return nil
}

func oneOf(field, s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%s: %q is not one of %v", field, s, allowed)
}

func items(list []MailItem) error {
	if len(list) == 0 {
		return errors.New("items: must not be empty")
	}
	for i, item := range list {
		if err := positive(fmt.Sprintf("items[%d].product_id", i), item.ProductID); err != nil {
			return err
		}
		if err := positive(fmt.Sprintf("items[%d].quantity", i), item.Quantity); err != nil {
			return err
		}
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
