package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// smtpSender sends rendered messages through one SMTP server, a new connection
// per message: simple, and a broken connection never poisons the next send.
type smtpSender struct {
	cfg  SMTPConfig
	opts []gomail.Option
}

func newSMTPSender(cfg SMTPConfig) *smtpSender {
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout), gomail.WithHELO("kshop-mail")}
	switch cfg.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.NoTLS))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSOpportunistic))
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	}
	if cfg.rootCAs != nil {
		opts = append(opts, gomail.WithTLSConfig(&tls.Config{ServerName: cfg.Host, RootCAs: cfg.rootCAs, MinVersion: tls.VersionTLS12}))
	}
	if cfg.Username != "" {
		// PLAIN, not PLAIN-NOENC: go-mail refuses to send it without TLS
		// (loopback aside), so a stripped STARTTLS cannot expose the password.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	return &smtpSender{cfg: cfg, opts: opts}
}

// errPermanent marks a failure no retry can fix (the server said 5xx).
var errPermanent = errors.New("permanent SMTP failure")

// send delivers m. messageID makes the Message-ID header stable across retries,
// so a receiving server can recognise a repeat.
func (s *smtpSender) send(ctx context.Context, m rendered, messageID string, date time.Time) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("%w: sender %q: %v", errPermanent, s.cfg.From, err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("%w: recipient %q: %v", errPermanent, m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(date)
	msg.SetMessageIDWithValue(messageID + "@kshop")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)

	client, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("%w: SMTP client for %s: %v", errPermanent, s.cfg.Host, err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var sendErr *gomail.SendError
		if errors.As(err, &sendErr) && sendErr.ErrorCode() >= 500 {
			return fmt.Errorf("%w: %s:%d answered %d: %v", errPermanent, s.cfg.Host, s.cfg.Port, sendErr.ErrorCode(), err)
		}
		var netErr net.Error
		if errors.As(err, &netErr) {
			return fmt.Errorf("SMTP server %s:%d unreachable: %w", s.cfg.Host, s.cfg.Port, err)
		}
		return fmt.Errorf("send through %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}
