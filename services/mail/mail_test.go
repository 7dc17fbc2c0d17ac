package mail_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/amqptest"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	smtp     *smtptest.Server
	amqpURL  string
	registry *prometheus.Registry
	db       *pgxpool.Pool
	ch       *amqp091.Channel
}

func start(t *testing.T, maxAttempts int, smtpOptions ...smtptest.Option) *harness {
	t.Helper()
	srv := smtptest.Start(t, smtpOptions...)
	amqpURL := testenv.OwnAMQPURL(t)
	purgeEarlierTests(t, amqpURL)
	cfg := mail.Config{
		ShutdownTimeout: 5 * time.Second,
		Database:        pg.Config{URL: testenv.NewDatabase(t), MaxConns: 10},
		AMQP:            amqp.Config{URL: amqpURL},
		SMTP:            mail.SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: mail.TLSNone, From: "kshop <no-reply@kshop.local>", Timeout: 5 * time.Second},
		MaxAttempts:     maxAttempts,
		Retry:           retry.Pace{Initial: 200 * time.Millisecond, Max: 2 * time.Second},
		Concurrency:     2,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	app, err := mail.New(cfg, quiet, registry)
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, app.Serve)
	pool, err := pgxpool.New(context.Background(), cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	conn := amqptest.Dial(t, cfg.AMQP.URL)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return &harness{smtp: srv, amqpURL: cfg.AMQP.URL, registry: registry, db: pool, ch: ch}
}

// purgeEarlierTests empties the queues of the package's virtual host before a
// test's service starts: a message an earlier test's service was still
// handling when it stopped went back to its queue, and the next test's
// service would send it (a test counting SMTP attempts saw four for three).
// The queues do not exist before the first test; each purge has a channel of
// its own because a missing queue closes the channel.
func purgeEarlierTests(t *testing.T, amqpURL string) {
	t.Helper()
	conn := amqptest.Dial(t, amqpURL)
	for _, route := range events.MailRoutes {
		for _, name := range []string{route.Queue, amqp.DeadLetterQueue(route.Queue)} {
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = ch.QueuePurge(name, false)
			_ = ch.Close()
		}
	}
}

func (h *harness) publish(t *testing.T, exchange, key, messageID string, body []byte) {
	t.Helper()
	if err := h.ch.PublishWithContext(context.Background(), exchange, key, true, false, amqp091.Publishing{
		MessageId: messageID, ContentType: "application/json", DeliveryMode: amqp091.Persistent, Body: body,
	}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) publishJSON(t *testing.T, exchange, key string, payload any) string {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	h.publish(t, exchange, key, id, body)
	return id
}

func (h *harness) awaitMail(t *testing.T, to string) smtptest.Message {
	t.Helper()
	var got smtptest.Message
	testenv.WaitFor(t, 20*time.Second, "an e-mail to "+to, func() bool {
		list := h.smtp.To(to)
		if len(list) > 0 {
			got = list[0]
		}
		return len(list) > 0
	})
	return got
}

func (h *harness) counter(t *testing.T, name, template string) float64 {
	t.Helper()
	families, err := h.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "template") == template {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

var order = []events.MailItem{
	{ProductID: 1, Name: "Kopi Luwak", Quantity: 2, Price: money.MustParse("12.50")},
	{ProductID: 2, Name: "Teh <Hijau> & co", Quantity: 1, Price: money.MustParse("0.10")},
}

func TestEveryMailIsRenderedAndSent(t *testing.T) {
	h := start(t, 3)
	due := time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)
	cases := []struct {
		exchange, key, to string
		payload           any
		subject           string
		text              []string
	}{
		{events.ExchangeNotifications, events.RoutingVerification, "ver@example.com",
			events.VerificationMail{Email: "ver@example.com", Token: "042917", ExpiresAt: due},
			"Your kshop verification code: 042917", []string{"042917", "2026-11-26 10:30 UTC"}},
		{events.ExchangeNotifications, events.RoutingAccountVerified, "ok@example.com",
			events.AccountVerifiedMail{Email: "ok@example.com"}, "Your kshop account is verified", []string{"ok@example.com is verified"}},
		{events.ExchangePayments, events.RoutingPaymentReminder, "remind@example.com",
			events.PaymentReminderMail{Email: "remind@example.com", OrderID: 41, ReminderNumber: 2, DueAt: due, TotalAmount: money.MustParse("25.10"), Items: order},
			"Reminder 2: order #41 is waiting for payment", []string{"#41", "Kopi Luwak x 2 @ 12.50 = 25.00", "Order total: 25.10", "2026-11-26 10:30 UTC"}},
		{events.ExchangeNotifications, events.RoutingOrderSuccess, "paid@example.com",
			events.OrderSuccessMail{Email: "paid@example.com", OrderID: 42, TotalAmount: money.MustParse("25.10"), Items: order},
			"Order #42 is paid", []string{"order #42", "Teh <Hijau> & co x 1 @ 0.10 = 0.10", "Order total: 25.10"}},
		{events.ExchangeNotifications, events.RoutingOrderCancelled, "gone@example.com",
			events.OrderCancelledMail{Email: "gone@example.com", OrderID: 43, Reason: events.CancelExpired, TotalAmount: money.MustParse("25.10"), Items: order},
			"Order #43 is cancelled", []string{"#43 is cancelled: it was not paid in time", "Order total: 25.10"}},
		{events.ExchangeNotifications, events.RoutingPasswordReset, "reset@example.com",
			events.PasswordResetMail{Email: "reset@example.com", Token: "310577", ExpiresAt: due},
			"Your kshop password reset code: 310577", []string{"310577", "2026-11-26 10:30 UTC", "ends every session"}},
		{events.ExchangeNotifications, events.RoutingAccountExists, "again@example.com",
			events.AccountExistsMail{Email: "again@example.com"}, "You already have a kshop account", []string{"already has a verified account", "password reset"}},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.to] = h.publishJSON(t, c.exchange, c.key, c.payload)
	}
	for _, c := range cases {
		got := h.awaitMail(t, c.to)
		header := got.Header
		if header.Get("To") != "<"+c.to+">" && header.Get("To") != c.to {
			t.Errorf("%s: To %q", c.to, header.Get("To"))
		}
		if !strings.Contains(header.Get("From"), "no-reply@kshop.local") || got.From != "no-reply@kshop.local" {
			t.Errorf("%s: From %q, envelope from %q", c.to, header.Get("From"), got.From)
		}
		if header.Get("Subject") != c.subject {
			t.Errorf("%s: Subject %q, want %q", c.to, header.Get("Subject"), c.subject)
		}
		if header.Get("Message-Id") != "<"+ids[c.to]+"@kshop>" {
			t.Errorf("%s: Message-ID %q, want the AMQP message id", c.to, header.Get("Message-Id"))
		}
		if _, err := header.Date(); err != nil {
			t.Errorf("%s: Date: %v", c.to, err)
		}
		if !strings.HasPrefix(header.Get("Content-Type"), "multipart/alternative") {
			t.Errorf("%s: Content-Type %q, want multipart/alternative", c.to, header.Get("Content-Type"))
		}
		plain := decodedBody(t, got.Raw)
		for _, want := range c.text {
			if !strings.Contains(plain, want) {
				t.Errorf("%s: body lacks %q\n%s", c.to, want, plain)
			}
		}
	}
	// The HTML part escapes what it shows.
	paid := decodedBody(t, h.awaitMail(t, "paid@example.com").Raw)
	if !strings.Contains(paid, "Teh &lt;Hijau&gt; &amp; co") {
		t.Errorf("HTML part does not escape product names:\n%s", paid)
	}
	// The counter moves once the send's transaction committed, just after the
	// SMTP server has the message.
	testenv.WaitFor(t, 5*time.Second, "the sent counter for order_success", func() bool {
		return h.counter(t, "kshop_mail_sent_total", "order_success") == 1
	})
}

// decodedBody undoes quoted-printable soft line breaks and escapes, enough to
// search the text and HTML parts.
func decodedBody(t *testing.T, raw string) string {
	t.Helper()
	r := strings.NewReplacer("=\r\n", "", "=\n", "", "=3D", "=", "=20", " ")
	return r.Replace(raw)
}

func TestTransientFailuresAreRetriedWithGrowingGaps(t *testing.T) {
	h := start(t, 5)
	h.smtp.FailWith(func(n int, _ string) error {
		if n <= 2 {
			return smtptest.Temporary
		}
		return nil
	})
	h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: "retry@example.com"})
	h.awaitMail(t, "retry@example.com")
	attempts := h.smtp.Attempts()
	if len(attempts) != 3 {
		t.Fatalf("%d attempts, want 3", len(attempts))
	}
	first, second := attempts[1].Sub(attempts[0]), attempts[2].Sub(attempts[1])
	if second <= first {
		t.Fatalf("gaps %v then %v: the backoff does not grow", first, second)
	}
	t.Logf("gaps between attempts: %v, %v", first, second)
	if got := h.counter(t, "kshop_mail_retried_total", "account_verified"); got != 2 {
		t.Fatalf("retried counter %v, want 2", got)
	}
}

func deadLetters(t *testing.T, h *harness, queue string, want int) []amqp091.Delivery {
	t.Helper()
	var got []amqp091.Delivery
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d messages on %s.dlq", want, queue), func() bool {
		d, ok, err := h.ch.Get(queue+".dlq", true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, d)
		}
		return len(got) >= want
	})
	return got
}

func TestAServerThatAlwaysFailsEndsInTheDeadLetterQueue(t *testing.T) {
	h := start(t, 3)
	h.smtp.FailWith(func(int, string) error { return smtptest.Temporary })
	h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: "never@example.com"})
	dead := deadLetters(t, h, events.QueueAccountVerified, 1)
	if attempts := h.smtp.Attempts(); len(attempts) != 3 {
		t.Fatalf("%d attempts before dead-lettering, want 3", len(attempts))
	}
	if reason := fmt.Sprint(dead[0].Headers["x-death-reason"]); !strings.Contains(reason, "451") {
		t.Fatalf("dead letter reason %q does not name the SMTP answer", reason)
	}
	if got := h.counter(t, "kshop_mail_dead_lettered_total", "account_verified"); got != 1 {
		t.Fatalf("dead-lettered counter %v", got)
	}
}

func TestPermanentRejectionIsNotRetried(t *testing.T) {
	h := start(t, 5)
	h.smtp.FailWith(func(int, string) error { return smtptest.Rejected })
	h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: "nobody@example.com"})
	deadLetters(t, h, events.QueueAccountVerified, 1)
	if attempts := h.smtp.Attempts(); len(attempts) != 1 {
		t.Fatalf("%d attempts for a 550, want 1", len(attempts))
	}
}

func TestMalformedMessagesAreDeadLetteredWithoutSending(t *testing.T) {
	h := start(t, 5)
	h.publish(t, events.ExchangeNotifications, events.RoutingOrderSuccess, uuid.NewString(), []byte(`{"email": 42`))
	h.publish(t, events.ExchangeNotifications, events.RoutingOrderSuccess, uuid.NewString(), []byte(`{"email":"a@example.com","order_id":-1,"total_amount":"1","items":[]}`))
	h.publish(t, events.ExchangeNotifications, events.RoutingOrderSuccess, "not-a-uuid", []byte(`{}`))
	deadLetters(t, h, events.QueueOrderSuccess, 3)
	// The consumer is still alive.
	h.publishJSON(t, events.ExchangeNotifications, events.RoutingOrderSuccess,
		events.OrderSuccessMail{Email: "after@example.com", OrderID: 1, TotalAmount: money.MustParse("1"), Items: order[:1]})
	h.awaitMail(t, "after@example.com")
	if list := h.smtp.Messages(); len(list) != 1 {
		t.Fatalf("%d e-mails sent, want only the good one", len(list))
	}
}

func TestARedeliveredMessageIsSentOnce(t *testing.T) {
	h := start(t, 5)
	body, _ := json.Marshal(events.AccountVerifiedMail{Email: "once@example.com"})
	id := uuid.NewString()
	h.publish(t, events.ExchangeNotifications, events.RoutingAccountVerified, id, body)
	h.awaitMail(t, "once@example.com")
	h.publish(t, events.ExchangeNotifications, events.RoutingAccountVerified, id, body) // the broker redelivers
	testenv.WaitFor(t, 10*time.Second, "the duplicate to be consumed", func() bool {
		return h.counter(t, "kshop_mail_duplicates_total", "account_verified") == 1
	})
	if list := h.smtp.Messages(); len(list) != 1 {
		t.Fatalf("%d e-mails for one message id, want 1", len(list))
	}
}

// The queue names and bindings are the contract: a publisher that only knows the
// exchange and routing key reaches the mail service.
func TestQueuesAreBoundAsTheContractSays(t *testing.T) {
	h := start(t, 1)
	for _, r := range events.MailRoutes {
		if _, err := h.ch.QueueDeclarePassive(r.Queue, true, false, false, false, amqp091.Table{}); err != nil {
			t.Fatalf("queue %s: %v", r.Queue, err)
		}
	}
}

// The database goes away after the SMTP server accepted a message and before
// its inbox row committed: the redelivered message is recorded, not sent again.
func TestAMessageSentButNotRecordedIsNotSentAgain(t *testing.T) {
	h := start(t, 5)
	var killed atomic.Bool
	h.smtp.FailWith(func(attempt int, to string) error {
		if killed.CompareAndSwap(false, true) {
			// Every connection of the service's database, its open transaction included.
			if _, err := h.db.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
				t.Errorf("terminate the service's connections: %v", err)
			}
		}
		return nil // accepted
	})
	id := h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: "unrecorded@example.com"})
	testenv.WaitFor(t, 20*time.Second, "the message to be recorded as sent", func() bool {
		var n int
		err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE event_id = $1`, id).Scan(&n)
		return err == nil && n == 1
	})
	if !killed.Load() {
		t.Fatal("the SMTP server was never reached")
	}
	if list := h.smtp.To("unrecorded@example.com"); len(list) != 1 {
		t.Fatalf("%d e-mails for one message, want 1", len(list))
	}
	if n := h.counter(t, "kshop_mail_sent_total", "account_verified"); n != 1 {
		t.Fatalf("kshop_mail_sent_total = %v, want 1", n)
	}
}

// Messages share the few SMTP sessions kept open instead of opening one each:
// a session costs a connection, the greeting and EHLO (and STARTTLS and AUTH
// where configured) before its first message.
func TestMailsShareKeptSMTPSessions(t *testing.T) {
	h := start(t, 3) // two sends at a time
	const mails = 30
	for i := range mails {
		h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: fmt.Sprintf("kept%d@example.com", i)})
	}
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%d e-mails", mails), func() bool { return len(h.smtp.Messages()) == mails })
	if n := h.smtp.Connections(); n > 2 {
		t.Fatalf("%d SMTP connections for %d e-mails sent two at a time, want at most 2", n, mails)
	}
}

// The relay drops the kept sessions (its idle timeout, a restart): the next
// message goes on a new session at once, not back to the queue for a retry.
func TestADroppedSessionIsRedialedWithoutARetry(t *testing.T) {
	h := start(t, 3)
	h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: "before@example.com"})
	// Counted once the send returned, so its session is back in the pool.
	testenv.WaitFor(t, 20*time.Second, "the first e-mail counted as sent", func() bool {
		return h.counter(t, "kshop_mail_sent_total", "account_verified") == 1
	})
	h.smtp.DropConnections()
	h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: "after-drop@example.com"})
	h.awaitMail(t, "after-drop@example.com")
	testenv.WaitFor(t, 5*time.Second, "the second e-mail counted as sent", func() bool {
		return h.counter(t, "kshop_mail_sent_total", "account_verified") == 2
	})
	if failed, retried := h.counter(t, "kshop_mail_failed_total", "account_verified"), h.counter(t, "kshop_mail_retried_total", "account_verified"); failed != 0 || retried != 0 {
		t.Fatalf("failed %v, retried %v: the dropped session cost a retry", failed, retried)
	}
	if n := h.smtp.Connections(); n != 2 {
		t.Fatalf("%d SMTP connections, want 2 (the first, then one after the drop)", n)
	}
}

// The relay hangs up right after it accepted each message, before the
// client's RSET: each message arrives once, counted as sent, never sent again.
func TestAMessageAcceptedBeforeTheConnectionBrokeIsNotSentAgain(t *testing.T) {
	h := start(t, 5, smtptest.HangUpAfterEachMessage())
	const mails = 3
	for i := range mails {
		h.publishJSON(t, events.ExchangeNotifications, events.RoutingAccountVerified, events.AccountVerifiedMail{Email: fmt.Sprintf("hangup%d@example.com", i)})
	}
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%d e-mails counted as sent", mails), func() bool {
		return h.counter(t, "kshop_mail_sent_total", "account_verified") == mails
	})
	for i := range mails {
		if list := h.smtp.To(fmt.Sprintf("hangup%d@example.com", i)); len(list) != 1 {
			t.Errorf("hangup%d@example.com got %d e-mails, want 1", i, len(list))
		}
	}
	if retried := h.counter(t, "kshop_mail_retried_total", "account_verified"); retried != 0 {
		t.Fatalf("retried %v, want 0: an accepted message was treated as failed", retried)
	}
}
