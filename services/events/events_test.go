package events

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestPayloadFieldNamesMatchTheSpec pins the JSON names of every payload to the
// wire contract: renaming a Go field must not rename a wire field.
func TestPayloadFieldNamesMatchTheSpec(t *testing.T) {
	for name, tc := range map[string]struct {
		payload any
		keys    string
	}{
		"product-created/updated": {Product{}, "created_at description id name price quantity updated_at version"},
		"product-deleted":         {ProductDeleted{}, "deleted_at id version"},
		"order-created":           {OrderCreated{Items: []OrderCreatedItem{{}}}, "created_at customer_email customer_id items order_id total_amount"},
		"order-created item":      {OrderCreatedItem{}, "price product_id quantity"},
		"order-cancelled":         {OrderCancelled{}, "customer_id items order_id reason"},
		"order-cancelled item":    {CancelledItem{}, "product_id quantity"},
		"order-paid":              {OrderPaid{}, "customer_id order_id paid_at"},
		"stock-reserved":          {StockReserved{}, "order_id"},
		"stock-rejected":          {StockRejected{}, "order_id reason shortages"},
		"shortage":                {Shortage{}, "available product_id requested"},
		"send.verification":       {VerificationMail{}, "email expires_at token"},
		"send.account.verified":   {AccountVerifiedMail{}, "email"},
		"send.account.exists":     {AccountExistsMail{}, "email"},
		"send.password.reset":     {PasswordResetMail{}, "email expires_at token"},
		"send.payment.reminder":   {PaymentReminderMail{}, "due_at email items order_id reminder_number total_amount"},
		"send.order.success":      {OrderSuccessMail{}, "email items order_id total_amount"},
		"send.order.cancelled":    {OrderCancelledMail{}, "email items order_id reason total_amount"},
		"mail item":               {MailItem{}, "name price product_id quantity"},
		"order.reminder":          {OrderReminder{}, "order_id reminder_number"},
		"order.expiry":            {OrderExpiry{}, "order_id"},
	} {
		data, err := json.Marshal(tc.payload)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var fields map[string]any
		if err := json.Unmarshal(data, &fields); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if got := strings.Join(keys, " "); got != tc.keys {
			t.Errorf("%s: JSON keys %q, want %q", name, got, tc.keys)
		}
	}
}

func TestDelayQueueNames(t *testing.T) {
	for d, want := range map[time.Duration]string{
		4 * time.Hour:           "order-reminder.delay.4h",
		24 * time.Hour:          "order-reminder.delay.24h",
		90 * time.Minute:        "order-reminder.delay.90m",
		30 * time.Second:        "order-reminder.delay.30s",
		1500 * time.Millisecond: "order-reminder.delay.1500ms",
		time.Millisecond:        "order-reminder.delay.1ms",
	} {
		if got := TimerOrderReminder.DelayQueueName(d); got != want {
			t.Errorf("DelayQueueName(%v) = %q, want %q", d, got, want)
		}
	}
	if got := TimerOrderExpiry.DelayQueueName(2 * time.Hour); got != "order-expiry.delay.2h" {
		t.Errorf("the expiry's delay queue of 2h is %q", got)
	}
}

func TestDecodeIsStrict(t *testing.T) {
	valid := `{"order_id":7,"customer_id":3,"customer_email":"a@kshop.dev","items":[{"product_id":1,"quantity":2,"price":"10.50"}],"total_amount":"21.00","created_at":"2026-11-24T10:00:00Z"}`
	order, err := Decode[OrderCreated]([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if order.OrderID != 7 || order.Items[0].Price.String() != "10.50" || order.TotalAmount.String() != "21.00" {
		t.Fatalf("decoded %+v", order)
	}
	for name, body := range map[string]string{
		"unknown field":  strings.Replace(valid, `"order_id":7`, `"order_id":7,"admin":true`, 1),
		"trailing data":  valid + `{}`,
		"missing id":     strings.Replace(valid, `"order_id":7`, `"order_id":0`, 1),
		"no items":       strings.Replace(valid, `[{"product_id":1,"quantity":2,"price":"10.50"}]`, `[]`, 1),
		"zero quantity":  strings.Replace(valid, `"quantity":2`, `"quantity":0`, 1),
		"wrong type":     strings.Replace(valid, `"order_id":7`, `"order_id":"7"`, 1),
		"not json":       `order 7`,
		"float quantity": strings.Replace(valid, `"quantity":2`, `"quantity":2.5`, 1),
	} {
		if _, err := Decode[OrderCreated]([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Decode[OrderCancelledMail]([]byte(`{"email":"a@kshop.dev","order_id":1,"reason":"bored","total_amount":"1.00","items":[{"product_id":1,"name":"x","quantity":1,"price":"1.00"}]}`)); err == nil ||
		!strings.Contains(err.Error(), "reason") {
		t.Errorf("an unknown cancel reason was accepted or not named: %v", err)
	}
}

func TestRoutesAreConsistent(t *testing.T) {
	for _, r := range append(append([]Route{}, MailRoutes...), TimerRoutes...) {
		if _, ok := ExchangeKinds[r.Exchange]; !ok {
			t.Errorf("route %+v uses an undeclared exchange", r)
		}
	}
	if len(MailRoutes) != 7 || len(TimerRoutes) != 2 {
		t.Errorf("%d mail routes and %d timer routes, want 7 and 2", len(MailRoutes), len(TimerRoutes))
	}
	if got := ConsumerGroup("product", TopicOrderCreated.Name()); got != "product.order-created" {
		t.Errorf("ConsumerGroup = %q", got)
	}
	if h := TopicOrderCreated.Headers(); !reflect.DeepEqual(h, map[string]string{"event-type": "order-created", "event-version": "1"}) {
		t.Errorf("Headers = %v", h)
	}
	for _, r := range []Route{MailOrderCancelled.Route, TimerOrderExpiry.Route} {
		if exchange, key := r.Address(); exchange != r.Exchange || key != r.RoutingKey || r.QueueName() != r.Queue || r.ExchangeKind() != ExchangeKinds[r.Exchange] {
			t.Errorf("route %+v: Address %q %q, queue %q, kind %q", r, exchange, key, r.QueueName(), r.ExchangeKind())
		}
	}
}

// A topic's and a route's Decode are the strict Decode of their payload type.
func TestTopicsAndRoutesDecodeTheirPayloadStrictly(t *testing.T) {
	if p, err := TopicStockReserved.Decode([]byte(`{"order_id":7}`)); err != nil || p.OrderID != 7 {
		t.Errorf("TopicStockReserved.Decode = %+v, %v", p, err)
	}
	if _, err := TopicStockReserved.Decode([]byte(`{"order_id":7,"extra":1}`)); err == nil {
		t.Error("an unknown field was accepted")
	}
	if p, err := TimerOrderExpiry.Decode([]byte(`{"order_id":9}`)); err != nil || p.OrderID != 9 {
		t.Errorf("TimerOrderExpiry.Decode = %+v, %v", p, err)
	}
	if _, err := TimerOrderExpiry.Decode([]byte(`{"order_id":0}`)); err == nil {
		t.Error("an invalid payload was accepted")
	}
}

// Mail payloads carry one address as auth accepted it, never a header.
func TestMailAddressesAreOneAddress(t *testing.T) {
	for email, ok := range map[string]bool{
		"a@kshop.dev": true, `"a b"@example.com`: true, "a+b@example.com": true, "üser@exämple.com": true,
		"": false, "a@kshop.dev\r\nBcc: victim@example.com": false, "a@x.com, b@y.com": false,
		"Evil <a@x.com>": false, "not an address": false,
	} {
		err := AccountVerifiedMail{Email: email}.Validate()
		if (err == nil) != ok {
			t.Errorf("%q: Validate() = %v, want ok=%v", email, err, ok)
		}
	}
}
