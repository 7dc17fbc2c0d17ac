package events

import (
	"encoding/json"
	"testing"
)

// The decoders face whatever a broker hands them: they must never panic, and what
// they accept must survive a round trip unchanged.

func FuzzDecodeOrderCreated(f *testing.F) {
	f.Add([]byte(`{"order_id":7,"customer_id":3,"customer_email":"a@kshop.dev","items":[{"product_id":1,"quantity":2,"price":"10.50"}],"total_amount":"21.00","created_at":"2026-11-24T10:00:00Z"}`))
	f.Add([]byte(`{"order_id":-1}`))
	f.Add([]byte(`{"items":[{"price":1e400}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		order, err := Decode[OrderCreated](data)
		if err != nil {
			return
		}
		again, err := json.Marshal(order)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		if _, err := Decode[OrderCreated](again); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %q: %v", data, again, err)
		}
	})
}

func FuzzDecodePaymentReminderMail(f *testing.F) {
	f.Add([]byte(`{"email":"a@kshop.dev","order_id":1,"reminder_number":2,"due_at":"2026-11-25T10:00:00Z","total_amount":"5.00","items":[{"product_id":1,"name":"Tea","quantity":1,"price":"5.00"}]}`))
	f.Add([]byte(`{"email":"","order_id":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		mail, err := Decode[PaymentReminderMail](data)
		if err != nil {
			return
		}
		again, err := json.Marshal(mail)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		if _, err := Decode[PaymentReminderMail](again); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %q: %v", data, again, err)
		}
	})
}
