// Package smtptest runs a real SMTP server inside a test process (emersion's
// go-smtp): it records every message it accepts and can be told to fail, so
// tests see exactly what a mail relay would.
package smtptest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted e-mail.
type Message struct {
	From, To string
	Header   mail.Header
	Subject  string
	// Raw is the whole message as received (headers and MIME parts).
	Raw string
	// User is who authenticated for it (empty: nobody); Encrypted tells
	// whether the connection was TLS.
	User      string
	Encrypted bool
}

// Server is the running server.
type Server struct {
	Host string
	Port int

	mu       sync.Mutex
	fail     func(attempt int, to string) error
	attempts []time.Time
	accepted []Message
	logins   int
	open     map[*smtp.Conn]bool // connections not yet closed
	seen     map[*smtp.Conn]bool // every connection (a STARTTLS one has two sessions)
	hangUp   bool                // close each connection once a message is accepted

	listenHost     string
	user, password string // required AUTH PLAIN credentials; empty: none
	startTLS       *tls.Config
	implicitTLS    *tls.Config
}

// Option changes how the server runs.
type Option func(*Server)

// RequireAuth makes the server offer AUTH PLAIN (also without TLS: keeping the
// password off a plain connection is the client's duty) and accept mail only
// after user logged in with password.
func RequireAuth(user, password string) Option {
	return func(s *Server) { s.user, s.password = user, password }
}

// WithStartTLS offers STARTTLS with cfg (tlstest makes one).
func WithStartTLS(cfg *tls.Config) Option { return func(s *Server) { s.startTLS = cfg } }

// WithImplicitTLS speaks TLS from the first byte, as on port 465.
func WithImplicitTLS(cfg *tls.Config) Option { return func(s *Server) { s.implicitTLS = cfg } }

// HangUpAfterEachMessage closes the connection right after the server has
// answered a message's DATA with 250: the client learns that it was accepted,
// and then finds the connection gone.
func HangUpAfterEachMessage() Option { return func(s *Server) { s.hangUp = true } }

// ListenOn listens on another loopback address than 127.0.0.1 (127.0.0.2: a
// host a client does not take for localhost).
func ListenOn(ip string) Option { return func(s *Server) { s.listenHost = ip } }

// Temporary and Rejected are the two kinds of SMTP failure a server answers with.
var (
	Temporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	Rejected  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
)

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB, options ...Option) *Server {
	t.Helper()
	s := &Server{listenHost: "127.0.0.1", open: map[*smtp.Conn]bool{}, seen: map[*smtp.Conn]bool{}}
	for _, o := range options {
		o(s)
	}
	server := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, encrypted := c.TLSConnectionState()
		s.mu.Lock()
		s.open[c], s.seen[c] = true, true
		s.mu.Unlock()
		return &session{server: s, conn: c, encrypted: encrypted}, nil
	}))
	server.Domain = "localhost"
	server.AllowInsecureAuth = true
	server.TLSConfig = s.startTLS
	ln, err := net.Listen("tcp", net.JoinHostPort(s.listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if s.implicitTLS != nil {
		ln = tls.NewListener(ln, s.implicitTLS)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = addr.IP.String(), addr.Port
	go func() { _ = server.Serve(ln) }()
	t.Cleanup(func() { server.Close() })
	return s
}

// FailWith makes the server answer DATA with fail's error for the n-th attempt
// (from 1) to recipient to; nil accepts.
func (s *Server) FailWith(fail func(attempt int, to string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.accepted...)
}

// To returns the accepted messages for one recipient.
func (s *Server) To(to string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if strings.EqualFold(m.To, to) {
			out = append(out, m)
		}
	}
	return out
}

// Logins counts the AUTH attempts, failed ones included: zero means no
// password ever reached the server.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Connections counts the connections clients opened and greeted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// DropConnections closes every open connection without a word, as a server
// does whose idle timeout passed or which restarted.
func (s *Server) DropConnections() {
	s.mu.Lock()
	open := s.open
	s.open = map[*smtp.Conn]bool{}
	s.mu.Unlock()
	for c := range open {
		_ = c.Close()
	}
}

// Attempts returns when each DATA command arrived, failed ones included.
func (s *Server) Attempts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

type session struct {
	server    *Server
	conn      *smtp.Conn
	accepted  bool // a message was accepted since the last reset
	from, to  string
	user      string
	encrypted bool
}

// errBadLogin is the server's answer to a wrong user or password.
var errBadLogin = errors.New("invalid user name or password")

func (s *session) AuthMechanisms() []string {
	if s.server.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, password string) error {
		srv := s.server
		srv.mu.Lock()
		srv.logins++
		srv.mu.Unlock()
		if user != srv.user || password != srv.password {
			return errBadLogin
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.server.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }
func (s *session) Logout() error                             { s.forget(); return nil }

// Reset runs on RSET and after every DATA, once its answer is written.
func (s *session) Reset() {
	if s.accepted && s.server.hangUp {
		// The connection beneath: go-smtp holds its own lock while it
		// calls Reset, and its Close takes that lock.
		s.forget()
		_ = s.conn.Conn().Close()
	}
	s.accepted = false
}

func (s *session) forget() {
	s.server.mu.Lock()
	delete(s.server.open, s.conn)
	s.server.mu.Unlock()
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	srv := s.server
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.attempts = append(srv.attempts, time.Now())
	if srv.fail != nil {
		if err := srv.fail(len(srv.attempts), s.to); err != nil {
			return err
		}
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	srv.accepted = append(srv.accepted, Message{From: s.from, To: s.to, Header: msg.Header, Subject: msg.Header.Get("Subject"), Raw: string(raw),
		User: s.user, Encrypted: s.encrypted})
	s.accepted = true
	return nil
}
