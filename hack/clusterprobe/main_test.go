package main

import (
	"net"
	"testing"
	"time"
)

func TestConnectNamesTheOutcome(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if got, err := connect(open, time.Second); got != connected || err != nil {
		t.Errorf("connect(%s) = %q, %v; want %q", open, got, err, connected)
	}

	// A port nothing listens on any more: the kernel answers with a reset.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	if got, err := connect(addr, time.Second); got != refused || err == nil {
		t.Errorf("connect(%s) = %q, %v; want %q and an error", addr, got, err, refused)
	}
	ln.Close()
}
