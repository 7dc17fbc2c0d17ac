// Package smtptest runs a real SMTP server inside a test process (emersion's
// go-smtp): it records every message it accepts and can be told to fail, so
// tests see exactly what a mail relay would.
package smtptest

import (
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted e-mail.
type Message struct {
	From, To string
	Header   mail.Header
	Subject  string
	// Raw is the whole message as received (headers and MIME parts).
	Raw string
}

// Server is the running server.
type Server struct {
	Host string
	Port int

	mu       sync.Mutex
	fail     func(attempt int, to string) error
	attempts []time.Time
	accepted []Message
}

// Temporary and Rejected are the two kinds of SMTP failure a server answers with.
var (
	Temporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	Rejected  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
)

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	server := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{server: s}, nil }))
	server.Domain = "localhost"
	server.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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

// Attempts returns when each DATA command arrived, failed ones included.
func (s *Server) Attempts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

type session struct {
	server   *Server
	from, to string
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error   { s.to = to; return nil }
func (s *session) Reset()                                      {}
func (s *session) Logout() error                               { return nil }

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
	srv.accepted = append(srv.accepted, Message{From: s.from, To: s.to, Header: msg.Header, Subject: msg.Header.Get("Subject"), Raw: string(raw)})
	return nil
}
