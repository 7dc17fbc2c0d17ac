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
