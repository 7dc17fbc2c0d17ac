package mail

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/amqp"
)

//go:embed templates/*
var templateFiles embed.FS

// view is what every template sees; each message kind fills its part.
type view struct {
	Email          string
	Subject        string
	Code           string
	ExpiresAt      time.Time
	OrderID        int64
	ReminderNumber int
	DueAt          time.Time
	ReasonText     string
	Total          string
	Items          []viewItem
}

type viewItem struct {
	Name      string
	Quantity  int64
	Price     string
	LineTotal string
}

func itemsView(items []events.MailItem, total money.Money) ([]viewItem, string) {
	out := make([]viewItem, len(items))
	for i, it := range items {
		name := it.Name
		if name == "" {
			name = fmt.Sprintf("product %d", it.ProductID)
		}
		out[i] = viewItem{Name: name, Quantity: it.Quantity, Price: it.Price.String(),
			LineTotal: money.Money{Decimal: it.Price.Mul(decimal.NewFromInt(it.Quantity))}.String()}
	}
	return out, total.String()
}

var reasonTexts = map[string]string{
	events.CancelExpired:    "it was not paid in time",
	events.CancelOutOfStock: "some items were out of stock",
	events.CancelCustomer:   "you cancelled it",
}

// kind is one of the mail messages: the queue it comes from, the templates
// that render it, and how its payload becomes a view.
type kind struct {
	Template string
	Queue    string
	// consume turns a sender of views into the queue's handler: the message id
	// checked, the payload decoded (package amqp's Handle), the view filled.
	consume func(send func(ctx context.Context, messageID string, v view) error) amqp.Handler
}

func mailKind[T events.Payload](template string, route events.Work[T], fill func(T) view) kind {
	return kind{Template: template, Queue: route.Queue,
		consume: func(send func(ctx context.Context, messageID string, v view) error) amqp.Handler {
			return amqp.Handle(route, func(ctx context.Context, messageID string, payload T) error {
				return send(ctx, messageID, fill(payload))
			})
		}}
}

var kinds = []kind{
	mailKind("verification", events.MailVerification, func(m events.VerificationMail) view {
		return view{Email: m.Email, Code: m.Token, ExpiresAt: m.ExpiresAt.UTC()}
	}),
	mailKind("account_verified", events.MailAccountVerified, func(m events.AccountVerifiedMail) view {
		return view{Email: m.Email}
	}),
	mailKind("payment_reminder", events.MailPaymentReminder, func(m events.PaymentReminderMail) view {
		v := view{Email: m.Email, OrderID: m.OrderID, ReminderNumber: m.ReminderNumber, DueAt: m.DueAt.UTC()}
		v.Items, v.Total = itemsView(m.Items, m.TotalAmount)
		return v
	}),
	mailKind("order_success", events.MailOrderSuccess, func(m events.OrderSuccessMail) view {
		v := view{Email: m.Email, OrderID: m.OrderID}
		v.Items, v.Total = itemsView(m.Items, m.TotalAmount)
		return v
	}),
	mailKind("order_cancelled", events.MailOrderCancelled, func(m events.OrderCancelledMail) view {
		v := view{Email: m.Email, OrderID: m.OrderID, ReasonText: reasonTexts[m.Reason]}
		v.Items, v.Total = itemsView(m.Items, m.TotalAmount)
		return v
	}),
	mailKind("password_reset", events.MailPasswordReset, func(m events.PasswordResetMail) view {
		return view{Email: m.Email, Code: m.Token, ExpiresAt: m.ExpiresAt.UTC()}
	}),
	mailKind("account_exists", events.MailAccountExists, func(m events.AccountExistsMail) view {
		return view{Email: m.Email}
	}),
}

// rendered is a message ready to send.
type rendered struct {
	To, Subject, Text, HTML string
}

// renderer holds the parsed templates, one text and one HTML set per kind.
type renderer struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

func newRenderer() (*renderer, error) {
	r := &renderer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, k := range kinds {
		t, err := texttemplate.New(k.Template).Option("missingkey=error").ParseFS(templateFiles, "templates/layout.txt", "templates/"+k.Template+".txt")
		if err != nil {
			return nil, fmt.Errorf("parse text template %s: %w", k.Template, err)
		}
		h, err := htmltemplate.New(k.Template).Option("missingkey=error").ParseFS(templateFiles, "templates/layout.html", "templates/"+k.Template+".html")
		if err != nil {
			return nil, fmt.Errorf("parse HTML template %s: %w", k.Template, err)
		}
		r.text[k.Template], r.html[k.Template] = t, h
	}
	return r, nil
}

func (r *renderer) render(template string, v view) (rendered, error) {
	var subject, text, html bytes.Buffer
	if err := r.text[template].ExecuteTemplate(&subject, "subject", v); err != nil {
		return rendered{}, fmt.Errorf("render %s subject: %w", template, err)
	}
	v.Subject = strings.TrimSpace(subject.String())
	if err := r.text[template].ExecuteTemplate(&text, "text", v); err != nil {
		return rendered{}, fmt.Errorf("render %s text: %w", template, err)
	}
	if err := r.html[template].ExecuteTemplate(&html, "layout", v); err != nil {
		return rendered{}, fmt.Errorf("render %s HTML: %w", template, err)
	}
	return rendered{To: v.Email, Subject: v.Subject, Text: text.String(), HTML: html.String()}, nil
}
