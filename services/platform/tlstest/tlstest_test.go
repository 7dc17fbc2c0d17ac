package tlstest_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"testing"

	"github.com/kshop/kshop/services/platform/tlstest"
)

// echo is a plain TCP server answering each line with itself.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProxyForwardsToTheServerUnderTheCertifiedName(t *testing.T) {
	ca := tlstest.NewCA(t)
	proxy := ca.Proxy(t, echo(t), "127.0.0.1")
	conn, err := tls.Dial("tcp", proxy, &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(conn).ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("read %q, %v", got, err)
	}

	for name, cfg := range map[string]*tls.Config{
		"another CA":   {RootCAs: tlstest.NewCA(t).Pool},
		"another name": {RootCAs: ca.Pool, ServerName: "db.example.com"},
	} {
		if c, err := tls.Dial("tcp", proxy, cfg); err == nil {
			c.Close()
			t.Errorf("%s: the handshake succeeded", name)
		}
	}
}
