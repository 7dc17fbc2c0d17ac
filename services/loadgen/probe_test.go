package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbeReportsWhatAnswered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	defer srv.Close()
	if status, err := Probe(context.Background(), srv.URL, time.Second); err != nil || status != http.StatusTeapot {
		t.Fatalf("status %d, %v; want 418", status, err)
	}
}

func TestProbeFailsWhenNothingAnswers(t *testing.T) {
	// A listener that never accepts: the connection hangs like a dropped packet would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if status, err := Probe(context.Background(), "http://"+addr+"/", 500*time.Millisecond); err == nil {
		t.Fatalf("status %d from a closed port", status)
	}
}

// A server that starts answering a little later is waited for.
func TestWaitForAnswerWaitsForALateServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused until the server below starts
	go func() {
		time.Sleep(1500 * time.Millisecond)
		late, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		_ = http.Serve(late, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	}()
	if status, err := WaitForAnswer(context.Background(), "http://"+addr+"/", 10*time.Second); err != nil || status != http.StatusNoContent {
		t.Fatalf("status %d, %v; want 204 once the server started", status, err)
	}
	if _, err := WaitForAnswer(context.Background(), "http://127.0.0.1:1/", 1500*time.Millisecond); err == nil {
		t.Fatal("an address where nothing listens answered")
	}
}
