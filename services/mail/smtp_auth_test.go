package mail

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/tlstest"
)

const (
	smtpUser     = "relay-user"
	smtpPassword = `p@ss:w/rd%20 "x"`
	// remoteHost is loopback, but not a name the SMTP client treats as this
	// machine: it behaves as for any relay on the network.
	remoteHost = "127.0.0.2"
)

func sendOne(t *testing.T, cfg SMTPConfig) error {
	t.Helper()
	return sendMany(t, cfg, 1)
}

// sendMany sends n e-mails one after another through one sender.
func sendMany(t *testing.T, cfg SMTPConfig, n int) error {
	t.Helper()
	cfg.From, cfg.Timeout = "kshop <no-reply@kshop.local>", 5*time.Second
	sender, err := newSMTPSender(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.close()
	m := rendered{To: "customer@example.com", Subject: "Your order", Text: "paid", HTML: "<p>paid</p>"}
	for range n {
		if err := sender.send(context.Background(), m, "auth-test", time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// The user name and password log in over STARTTLS and over implicit TLS.
func TestSMTPCredentialsLogInOverTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	for _, mode := range []string{TLSStartTLS, TLSOpportunistic, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			tlsOption := smtptest.WithStartTLS(ca.ServerConfig(t, remoteHost))
			if mode == TLSImplicit {
				tlsOption = smtptest.WithImplicitTLS(ca.ServerConfig(t, remoteHost))
			}
			srv := smtptest.Start(t, smtptest.ListenOn(remoteHost), smtptest.RequireAuth(smtpUser, smtpPassword), tlsOption)
			cfg := SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: mode, Username: smtpUser, Password: smtpPassword, rootCAs: ca.Pool}
			// The second and third go on the session the first opened: one
			// connection, one login.
			if err := sendMany(t, cfg, 3); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := srv.Messages()
			if len(got) != 3 || got[2].User != smtpUser || !got[2].Encrypted {
				t.Fatalf("accepted %+v: want three messages from %s over TLS", got, smtpUser)
			}
			if srv.Connections() != 1 || srv.Logins() != 1 {
				t.Fatalf("%d connections and %d logins for three messages in a row, want 1 and 1", srv.Connections(), srv.Logins())
			}

			wrong := cfg
			wrong.Password += "x"
			if err := sendOne(t, wrong); err == nil {
				t.Fatal("the server took a wrong password")
			}
		})
	}
}

// Without TLS the password never leaves: a server that offers no STARTTLS, or
// a STARTTLS stripped on the way, gets no login at all.
func TestSMTPPasswordIsNeverSentInTheOpen(t *testing.T) {
	srv := smtptest.Start(t, smtptest.ListenOn(remoteHost), smtptest.RequireAuth(smtpUser, smtpPassword))
	for _, mode := range []string{TLSOpportunistic, TLSNone} {
		err := sendOne(t, SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: mode, Username: smtpUser, Password: smtpPassword})
		if err == nil {
			t.Fatalf("%s: sent with a login over a plain connection", mode)
		}
	}
	if n := srv.Logins(); n != 0 {
		t.Fatalf("the server saw %d logins over a plain connection", n)
	}
	if len(srv.Messages()) != 0 {
		t.Fatal("the server accepted mail without a login")
	}
}

func TestSMTPConfigRefusesAPasswordForAPlainConnection(t *testing.T) {
	valid := func() Config {
		return Config{AMQP: amqp.Config{URL: "amqp://rabbit/"}, MaxAttempts: 1, Concurrency: 1, Retry: retry.Pace{Initial: time.Second, Max: time.Minute},
			SMTP: SMTPConfig{Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS, From: "kshop <no-reply@kshop.local>", Username: "u", Password: "p"}}
	}
	if c := valid(); c.Validate() != nil {
		t.Fatalf("a valid configuration is refused: %v", c.Validate())
	}
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"password in the open": {func(c *Config) { c.SMTP.TLS = TLSNone }, "KSHOP_MAIL_SMTP_USERNAME is set with KSHOP_MAIL_SMTP_TLS=none"},
		"password alone":       {func(c *Config) { c.SMTP.Username = "" }, "KSHOP_MAIL_SMTP_PASSWORD is set but KSHOP_MAIL_SMTP_USERNAME is empty"},
	} {
		c := valid()
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want %q", name, err, tc.want)
		}
	}
	// A relay on this machine's loopback may take a password without TLS.
	local := valid()
	local.SMTP.Host, local.SMTP.TLS = "localhost", TLSNone
	if err := local.Validate(); err != nil {
		t.Errorf("a local relay without TLS: %v", err)
	}
}
