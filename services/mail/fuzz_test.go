package mail

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/platform/amqp"
)

// FuzzRenderMail feeds every queue's decoder anything a broker could deliver:
// a body is refused (and dead-lettered) or becomes an e-mail whose headers
// cannot be split. Hostile seeds are committed under testdata/fuzz/FuzzRenderMail/.
func FuzzRenderMail(f *testing.F) {
	f.Add(uint8(0), []byte(`{"email":"a@kshop.dev","token":"123456","expires_at":"2026-11-24T10:10:00Z"}`))
	f.Add(uint8(2), []byte(`{"email":"a@kshop.dev","order_id":1,"reminder_number":2,"due_at":"2026-11-25T10:00:00Z","total_amount":"5.00","items":[{"product_id":1,"name":"Tea","quantity":1,"price":"5.00"}]}`))
	r, err := newRenderer()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, kindIndex uint8, body []byte) {
		k := kinds[int(kindIndex)%len(kinds)]
		var v view
		consume := k.consume(func(_ context.Context, _ string, decoded view) error { v = decoded; return nil })
		if err := consume(context.Background(), amqp.Delivery{MessageID: uuid.NewString(), Body: body}); err != nil {
			return // refused, as the consumer would dead-letter it
		}
		m, err := r.render(k.Template, v)
		if err != nil {
			t.Fatalf("%s: accepted %q but cannot render it: %v", k.Template, body, err)
		}
		if m.Subject == "" || m.Text == "" || m.HTML == "" {
			t.Fatalf("%s: %q renders an empty part: %+v", k.Template, body, m)
		}
		if strings.ContainsAny(m.Subject+m.To, "\r\n") {
			t.Fatalf("%s: %q puts a line break into a header: subject %q, to %q", k.Template, body, m.Subject, m.To)
		}
	})
}
