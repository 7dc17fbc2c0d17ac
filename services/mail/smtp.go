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

// smtpSender sends rendered messages through one SMTP server. Opening a
// session (TCP, greeting, EHLO, and STARTTLS and AUTH where configured) costs
// more than the message, so sessions are kept between messages
// (sessionPool) and each message is one MAIL, RCPT, DATA and RSET on a warm
// one. A session that failed in any way is closed, never reused.
type smtpSender struct {
	cfg SMTPConfig
	// client holds the settings; each session is a connection it dialed.
	client   *gomail.Client
	sessions *sessionPool
}

// newSMTPSender keeps up to maxSessions idle sessions: as many as messages
// are sent at once.
func newSMTPSender(cfg SMTPConfig, maxSessions int) (*smtpSender, error) {
	// No NOOP before and after each message (two round trips more than the
	// transaction's own): a session the server closed fails at MAIL FROM
	// instead, before anything was accepted, and deliver redials then.
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout), gomail.WithHELO("kshop-mail"), gomail.WithoutNoop()}
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
	client, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("SMTP client for %s: %w", cfg.Host, err)
	}
	return &smtpSender{cfg: cfg, client: client, sessions: newSessionPool(maxSessions)}, nil
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

	if err := s.deliver(ctx, msg); err != nil {
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

// deliver sends msg on a kept session, or on a new one. A kept session the
// server has closed since (an idle timeout, a restart) fails at its first
// command, before the server took anything: then msg goes once more, on a new
// session, rather than back to the queue with a retry.
func (s *smtpSender) deliver(ctx context.Context, msg *gomail.Msg) error {
	if kept := s.sessions.take(); kept != nil {
		err := s.sendOn(kept, msg)
		if err == nil || !lostBeforeTheServerAnswered(err, msg) {
			return err
		}
	}
	client, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	return s.sendOn(s.sessions.opened(client), msg)
}

// sendOn sends msg in one transaction on session, and keeps the session for
// the next message if all went well.
func (s *smtpSender) sendOn(session *session, msg *gomail.Msg) error {
	err := s.client.SendWithSMTPClient(session.client, msg)
	if err == nil {
		s.sessions.put(session)
		return nil
	}
	_ = session.client.Close()
	if msg.IsDelivered() {
		// The server accepted the message; what failed came after (the
		// RSET). Sending it again would deliver it twice.
		return nil
	}
	return err
}

// lostBeforeTheServerAnswered tells a kept session that was dead before the
// message: its first command (MAIL FROM) failed without an SMTP reply.
func lostBeforeTheServerAnswered(err error, msg *gomail.Msg) bool {
	var sendErr *gomail.SendError
	return !msg.IsDelivered() && errors.As(err, &sendErr) && sendErr.ErrorCode() == 0 &&
		(sendErr.Reason == gomail.ErrSMTPMailFrom || sendErr.Reason == gomail.ErrConnCheck)
}

// close ends the kept sessions.
func (s *smtpSender) close() { s.sessions.close() }
