package mail

import (
	"sync"
	"time"

	"github.com/wneessen/go-mail/smtp"
)

// How long an SMTP session is kept. Servers must wait at least five minutes
// for an idle client (RFC 5321, 4.5.3.2.7), and under load they may wait less;
// a session idle for a few seconds is closed by us first, so the relay does not
// carry connections for a quiet service. A session is not reused past
// sessionReuseLimit, so a relay's restart or a DNS change reaches every
// session within minutes (Postfix's smtp client keeps the same two limits).
const (
	sessionIdleLimit  = 10 * time.Second
	sessionReuseLimit = 5 * time.Minute
	// quitTimeout bounds the polite QUIT of a session we close.
	quitTimeout = 2 * time.Second
)

// session is one open SMTP connection, greeted (and, as configured, under TLS
// and logged in), between transactions.
type session struct {
	client   *smtp.Client
	opened   time.Time
	lastUsed time.Time
}

// quit ends the session with QUIT, or just closes it when the server does
// not answer within quitTimeout.
func (s *session) quit() {
	if s.client.UpdateDeadline(quitTimeout) != nil || s.client.Quit() != nil {
		_ = s.client.Close()
	}
}

// sessionPool keeps idle sessions, the most recently used on top: under load
// the same few stay warm, and the rest age out.
type sessionPool struct {
	max int // idle sessions kept at most; more are closed when put back
	now func() time.Time

	mu      sync.Mutex
	idle    []*session
	sweeper *time.Timer // pending while sessions are idle
	closed  bool
}

func newSessionPool(max int) *sessionPool {
	return &sessionPool{max: max, now: time.Now}
}

// opened wraps a client just dialed.
func (p *sessionPool) opened(client *smtp.Client) *session {
	now := p.now()
	return &session{client: client, opened: now, lastUsed: now}
}

// reusable tells whether s may carry another message at now.
func reusable(s *session, now time.Time) bool {
	return now.Sub(s.lastUsed) < sessionIdleLimit && now.Sub(s.opened) < sessionReuseLimit
}

// take returns the most recently used session still reusable, or nil. The
// ones past their limits are closed on the way, without delaying the caller.
func (p *sessionPool) take() *session {
	p.mu.Lock()
	now := p.now()
	var found *session
	var expired []*session
	for len(p.idle) > 0 && found == nil {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if reusable(s, now) {
			found = s
		} else {
			expired = append(expired, s)
		}
	}
	p.mu.Unlock()
	if len(expired) > 0 {
		go quitAll(expired)
	}
	return found
}

// put keeps s for the next message, or closes it when it has served its
// time or the pool is full.
func (p *sessionPool) put(s *session) {
	p.mu.Lock()
	now := p.now()
	s.lastUsed = now
	keep := !p.closed && len(p.idle) < p.max && now.Sub(s.opened) < sessionReuseLimit
	if keep {
		p.idle = append(p.idle, s)
		if p.sweeper == nil {
			p.sweeper = time.AfterFunc(sessionIdleLimit, p.sweep)
		}
	}
	p.mu.Unlock()
	if !keep {
		s.quit()
	}
}

// sweep closes the sessions idle past their limits, so a service that has
// gone quiet holds no connection to the relay.
func (p *sessionPool) sweep() {
	p.mu.Lock()
	now := p.now()
	var kept, expired []*session
	for _, s := range p.idle {
		if reusable(s, now) {
			kept = append(kept, s)
		} else {
			expired = append(expired, s)
		}
	}
	p.idle = kept
	p.sweeper = nil
	if len(kept) > 0 && !p.closed {
		p.sweeper = time.AfterFunc(sessionIdleLimit, p.sweep)
	}
	p.mu.Unlock()
	quitAll(expired)
}

// close ends every idle session and keeps none from now on.
func (p *sessionPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	if p.sweeper != nil {
		p.sweeper.Stop()
		p.sweeper = nil
	}
	p.mu.Unlock()
	quitAll(idle)
}

// quitAll ends sessions side by side: a relay that does not answer costs
// quitTimeout once, not once per session.
func quitAll(sessions []*session) {
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.quit()
		}()
	}
	wg.Wait()
}
