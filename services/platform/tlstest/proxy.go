package tlstest

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy puts TLS in front of a real server: it accepts TLS on a free loopback
// port, presenting a certificate the CA signed for hosts, and forwards the
// plain bytes to target. A client sees the server as a managed one with TLS
// would look. It returns the proxy's host:port and stops when the test ends.
func (ca *CA) Proxy(t testing.TB, target string, hosts ...string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, hosts...))
	if err != nil {
		t.Fatalf("TLS proxy: %v", err)
	}
	p := &proxy{target: target, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve(ln)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return ln.Addr().String()
}

type proxy struct {
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

func (p *proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// forward copies both ways until either side closes; a client that refuses the
// certificate ends the handshake and so the copy.
func (p *proxy) forward(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		return
	}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); _, _ = io.Copy(server, client); server.Close() }()
	go func() { defer both.Done(); _, _ = io.Copy(client, server); client.Close() }()
	both.Wait()
	p.untrack(client, server)
}

func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.open[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.open, c)
	}
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
}
