package mail

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wneessen/go-mail/smtp"

	"github.com/kshop/kshop/services/platform/smtptest"
	"github.com/kshop/kshop/services/platform/testenv"
)

// poolWithClock is a pool whose time the test moves. It is closed when the
// test ends, before its sweeper's first round could read the clock.
func poolWithClock(t *testing.T, max int) (*sessionPool, *time.Time) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := newSessionPool(max)
	p.now = func() time.Time { return now }
	t.Cleanup(p.close)
	return p, &now
}

// dialed opens a real session to srv, greeted.
func dialed(t *testing.T, p *sessionPool, srv *smtptest.Server) *session {
	t.Helper()
	conn, err := net.Dial("tcp", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)))
	if err != nil {
		t.Fatal(err)
	}
	client, err := smtp.NewClient(conn, srv.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Hello("kshop-test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return p.opened(client)
}

func awaitClosed(t *testing.T, s *session, why string) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, why, func() bool { return !s.client.HasConnection() })
}

func TestThePoolReusesTheMostRecentSessionWithinItsLimits(t *testing.T) {
	srv := smtptest.Start(t)
	p, now := poolWithClock(t, 4)
	older, newer := dialed(t, p, srv), dialed(t, p, srv)
	p.put(older)
	*now = now.Add(time.Second)
	p.put(newer)
	if got := p.take(); got != newer {
		t.Fatal("take did not return the most recently used session")
	}
	if got := p.take(); got != older {
		t.Fatal("take did not return the other session")
	}
	if got := p.take(); got != nil {
		t.Fatal("an empty pool returned a session")
	}

	// Idle past the limit: closed, not returned.
	p.put(older)
	*now = now.Add(sessionIdleLimit)
	if got := p.take(); got != nil {
		t.Fatal("a session idle for the whole idle limit was reused")
	}
	awaitClosed(t, older, "the idle session to be closed")

	// Busy all along, but open for the whole reuse limit: not taken, and
	// closed when put back.
	*now = newer.opened.Add(sessionReuseLimit - time.Second)
	p.put(newer)
	*now = now.Add(time.Second)
	if got := p.take(); got != nil {
		t.Fatal("a session was reused past the reuse limit")
	}
	awaitClosed(t, newer, "the session past its reuse limit to be closed on take")
	last := dialed(t, p, srv)
	*now = last.opened.Add(sessionReuseLimit)
	p.put(last)
	awaitClosed(t, last, "the session past its reuse limit to be closed when put back")
}

func TestThePoolKeepsAtMostItsSizeAndNothingAfterClose(t *testing.T) {
	srv := smtptest.Start(t)
	p, _ := poolWithClock(t, 1)
	kept, extra := dialed(t, p, srv), dialed(t, p, srv)
	p.put(kept)
	p.put(extra)
	awaitClosed(t, extra, "the session beyond the pool's size to be closed")
	if !kept.client.HasConnection() {
		t.Fatal("the kept session was closed")
	}

	late := dialed(t, p, srv)
	p.close()
	awaitClosed(t, kept, "close to end the idle session")
	p.put(late)
	awaitClosed(t, late, "a session put back after close to be closed")
	if got := p.take(); got != nil {
		t.Fatal("a closed pool returned a session")
	}
}

func TestSweepClosesOnlyTheExpiredSessions(t *testing.T) {
	srv := smtptest.Start(t)
	p, now := poolWithClock(t, 4)
	stale, fresh := dialed(t, p, srv), dialed(t, p, srv)
	p.put(stale)
	*now = now.Add(sessionIdleLimit - time.Second)
	p.put(fresh)
	*now = now.Add(time.Second)
	p.sweep()
	awaitClosed(t, stale, "the sweep to close the expired session")
	if got := p.take(); got != fresh {
		t.Fatal("the sweep did not keep the session still within its limit")
	}
}
