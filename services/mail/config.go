// Package mail is kshop's mail service: it consumes the mail work queues
// (docs/api.md#mail-work), renders each message from embedded templates (text
// and HTML) and sends it over SMTP, retrying transient failures with backoff
// and dead-lettering the rest with the reason.
package mail

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"time"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/retry"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Prefix is where the service's environment variables live: KSHOP_MAIL_*.
const Prefix = "KSHOP_MAIL"

// TLS modes for the SMTP connection.
const (
	TLSNone          = "none"          // plain SMTP (Mailpit, a local relay)
	TLSOpportunistic = "opportunistic" // STARTTLS when the server offers it
	TLSStartTLS      = "starttls"      // STARTTLS required
	TLSImplicit      = "tls"           // SMTPS, TLS from the first byte (port 465)
)

// Config is the service's configuration (docs/mail.md).
type Config struct {
	HTTPAddr        string        `envconfig:"HTTP_ADDR" default:":8084" desc:"Address the health endpoints listen on."`
	MetricsAddr     string        `envconfig:"METRICS_ADDR" default:":9084" desc:"Address /metrics is served on (the API port serves none); empty: no metrics."`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"15s" desc:"How long in-flight work may take to finish after SIGTERM."`
	// InboxRetention is how long a handled message's id is remembered against
	// its redelivery (longer than any broker redelivers); pruned on a schedule.
	InboxRetention time.Duration    `envconfig:"INBOX_RETENTION" default:"168h" desc:"How long a handled message's id is remembered against redelivery (pruned on a schedule)."`
	Database       pg.Config        `envconfig:"DATABASE"`
	AMQP           amqp.Config      `envconfig:"AMQP"`
	Log            logx.Config      `envconfig:"LOG"`
	OTel           telemetry.Config `envconfig:"OTEL"`
	SMTP           SMTPConfig       `envconfig:"SMTP"`

	MaxAttempts int `envconfig:"MAX_ATTEMPTS" default:"5" desc:"Sends of one message before its dead-letter queue."`
	// Retry paces the sends (KSHOP_MAIL_RETRY_INITIAL, _MAX): doubling with
	// jitter, the same pace as the other services' consumers.
	Retry       retry.Pace `envconfig:"RETRY"`
	Concurrency int        `envconfig:"CONCURRENCY" default:"4" desc:"Messages of one queue sent at once."`
}

// SMTPConfig says where and how mail is sent. The defaults reach Mailpit.
type SMTPConfig struct {
	Host string `envconfig:"HOST" default:"localhost" desc:"SMTP server host."`
	Port int    `envconfig:"PORT" default:"1025" desc:"SMTP server port."`
	TLS  string `envconfig:"TLS" default:"opportunistic" desc:"SMTP TLS mode: none, opportunistic (STARTTLS when offered), starttls (required) or tls (from the first byte, port 465)."`
	// Username and Password log in with AUTH PLAIN, only ever over TLS (the
	// server's certificate verified against the system's roots) or to this
	// machine's own loopback: without TLS the send fails before the password
	// leaves.
	Username string        `envconfig:"USERNAME" desc:"SMTP user for AUTH PLAIN, only ever over TLS or to loopback (refused at start with SMTP_TLS=none to another host); empty: no login."`
	Password string        `envconfig:"PASSWORD" desc:"SMTP password (a secret: give it from a Secret)."`
	From     string        `envconfig:"FROM" default:"kshop <no-reply@kshop.local>" desc:"Sender address of every mail."`
	Timeout  time.Duration `envconfig:"TIMEOUT" default:"15s" desc:"Bound of one SMTP conversation."`

	// rootCAs replaces the system's roots; only tests set it.
	rootCAs *x509.CertPool
}

// sentOnlyOverTLS reports whether a login to host needs TLS: the SMTP client
// sends a password in the open to these loopback names alone.
func sentOnlyOverTLS(host string) bool {
	return host != "localhost" && host != "127.0.0.1" && host != "::1"
}

// Validate checks the rules the types cannot express.
func (c *Config) Validate() error {
	var errs []error
	if c.InboxRetention < 0 {
		errs = append(errs, fmt.Errorf("%s_INBOX_RETENTION=%v must not be negative", Prefix, c.InboxRetention))
	}
	switch c.SMTP.TLS {
	case TLSNone, TLSOpportunistic, TLSStartTLS, TLSImplicit:
	default:
		errs = append(errs, fmt.Errorf("%s_SMTP_TLS=%q must be one of %s, %s, %s, %s", Prefix, c.SMTP.TLS, TLSNone, TLSOpportunistic, TLSStartTLS, TLSImplicit))
	}
	if c.SMTP.Username != "" && c.SMTP.TLS == TLSNone && sentOnlyOverTLS(c.SMTP.Host) {
		errs = append(errs, fmt.Errorf("%s_SMTP_USERNAME is set with %s_SMTP_TLS=%s: kshop never sends a password unencrypted; use %s or %s (or %s, which logs in only when the server offers STARTTLS)",
			Prefix, Prefix, TLSNone, TLSStartTLS, TLSImplicit, TLSOpportunistic))
	}
	if c.SMTP.Password != "" && c.SMTP.Username == "" {
		errs = append(errs, fmt.Errorf("%s_SMTP_PASSWORD is set but %s_SMTP_USERNAME is empty: the password is used only with a user name", Prefix, Prefix))
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		errs = append(errs, fmt.Errorf("%s_SMTP_PORT=%d must be between 1 and 65535", Prefix, c.SMTP.Port))
	}
	if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
		errs = append(errs, fmt.Errorf("%s_SMTP_FROM=%q is not an address: %w", Prefix, c.SMTP.From, err))
	}
	if err := c.AMQP.Validate(Prefix + "_AMQP"); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("%s_MAX_ATTEMPTS=%d must be at least 1", Prefix, c.MaxAttempts))
	}
	if c.Retry.Initial <= 0 || c.Retry.Max < c.Retry.Initial {
		errs = append(errs, fmt.Errorf("%s_RETRY_INITIAL=%v and %s_RETRY_MAX=%v: need 0 < initial <= max", Prefix, c.Retry.Initial, Prefix, c.Retry.Max))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("%s_CONCURRENCY=%d must be at least 1", Prefix, c.Concurrency))
	}
	return errors.Join(errs...)
}
