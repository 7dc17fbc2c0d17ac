package events

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The decoders face whatever a broker hands them: they must never panic, and
// what they accept must be valid and survive a round trip unchanged. Each
// payload a consumer reads has a target; the hostile seeds are committed under
// testdata/fuzz/<target>/.

func fuzzPayload[T Payload](f *testing.F, valid string) {
	f.Add([]byte(valid))
	f.Fuzz(func(t *testing.T, data []byte) {
		payload, err := Decode[T](data)
		if err != nil {
			return
		}
		if err := payload.Validate(); err != nil {
			t.Fatalf("accepted %q although it is invalid: %v", data, err)
		}
		again, err := json.Marshal(payload)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		decoded, err := Decode[T](again)
		if err != nil {
			t.Fatalf("accepted %q but not its re-encoding %s: %v", data, again, err)
		}
		// Money is compared by value: "1.5" and "1.50" are one amount.
		if encoded, _ := json.Marshal(decoded); !reflect.DeepEqual(encoded, again) {
			t.Fatalf("%q changed in a round trip: %s, then %s", data, again, encoded)
		}
	})
}

func FuzzDecodeProduct(f *testing.F) {
	fuzzPayload[Product](f, `{"id":1,"name":"Tea","description":"Black","price":"4.50","quantity":10,"version":1,"created_at":"2026-11-24T10:00:00Z","updated_at":"2026-11-24T10:00:00Z"}`)
}

func FuzzDecodeProductDeleted(f *testing.F) {
	fuzzPayload[ProductDeleted](f, `{"id":1,"version":2,"deleted_at":"2026-11-24T10:00:00Z"}`)
}

func FuzzDecodeOrderCreated(f *testing.F) {
	fuzzPayload[OrderCreated](f, `{"order_id":7,"customer_id":3,"customer_email":"a@kshop.dev","items":[{"product_id":1,"quantity":2,"price":"10.50"}],"total_amount":"21.00","created_at":"2026-11-24T10:00:00Z"}`)
}

func FuzzDecodeOrderCancelled(f *testing.F) {
	fuzzPayload[OrderCancelled](f, `{"order_id":7,"customer_id":3,"reason":"expired","items":[{"product_id":1,"quantity":2}]}`)
}

func FuzzDecodeStockReserved(f *testing.F) {
	fuzzPayload[StockReserved](f, `{"order_id":7}`)
}

func FuzzDecodeStockRejected(f *testing.F) {
	fuzzPayload[StockRejected](f, `{"order_id":7,"reason":"insufficient stock","shortages":[{"product_id":1,"requested":5,"available":2}]}`)
}

func FuzzDecodeVerificationMail(f *testing.F) {
	fuzzPayload[VerificationMail](f, `{"email":"a@kshop.dev","token":"123456","expires_at":"2026-11-24T10:10:00Z"}`)
}

func FuzzDecodePasswordResetMail(f *testing.F) {
	fuzzPayload[PasswordResetMail](f, `{"email":"a@kshop.dev","token":"123456","expires_at":"2026-11-24T10:10:00Z"}`)
}

func FuzzDecodeAccountExistsMail(f *testing.F) {
	fuzzPayload[AccountExistsMail](f, `{"email":"a@kshop.dev"}`)
}

func FuzzDecodeAccountVerifiedMail(f *testing.F) {
	fuzzPayload[AccountVerifiedMail](f, `{"email":"a@kshop.dev"}`)
}

func FuzzDecodePaymentReminderMail(f *testing.F) {
	fuzzPayload[PaymentReminderMail](f, `{"email":"a@kshop.dev","order_id":1,"reminder_number":2,"due_at":"2026-11-25T10:00:00Z","total_amount":"5.00","items":[{"product_id":1,"name":"Tea","quantity":1,"price":"5.00"}]}`)
}

func FuzzDecodeOrderSuccessMail(f *testing.F) {
	fuzzPayload[OrderSuccessMail](f, `{"email":"a@kshop.dev","order_id":1,"total_amount":"5.00","items":[{"product_id":1,"name":"Tea","quantity":1,"price":"5.00"}]}`)
}

func FuzzDecodeOrderCancelledMail(f *testing.F) {
	fuzzPayload[OrderCancelledMail](f, `{"email":"a@kshop.dev","order_id":1,"reason":"expired","total_amount":"5.00","items":[{"product_id":1,"name":"Tea","quantity":1,"price":"5.00"}]}`)
}

func FuzzDecodeOrderReminder(f *testing.F) {
	fuzzPayload[OrderReminder](f, `{"order_id":1,"reminder_number":1}`)
}

func FuzzDecodeOrderExpiry(f *testing.F) {
	fuzzPayload[OrderExpiry](f, `{"order_id":1}`)
}
