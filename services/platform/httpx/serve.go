package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Serve listens on addr and serves h until ctx ends (mains cancel it on SIGTERM),
// then stops accepting connections and lets requests in flight finish for up to
// shutdownTimeout.
func Serve(ctx context.Context, addr string, h http.Handler, shutdownTimeout time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, shutdownTimeout, logger)
}

// ServeListener is Serve on a listener the caller opened (tests use port 0).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, shutdownTimeout time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	fresh := &freshConns{conns: map[net.Conn]struct{}{}}
	srv := &http.Server{
		ConnState:         fresh.track,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("http server listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("http server shutting down; finishing requests in flight", "timeout", shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Shutdown counts a connection that was opened but has not sent a request
	// yet as busy for its first 5 seconds; clients that dial ahead (every
	// pooling HTTP client under load) would hold the shutdown that long.
	srv.SetKeepAlivesEnabled(false)
	fresh.closeAllFromNowOn()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("http server shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// freshConns tracks connections that have not started a request yet.
type freshConns struct {
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	shutting bool // set once: every unused connection is closed from then on
}

func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case state == http.StateNew && f.shutting:
		// Accepted between the start of the shutdown and the listener's
		// close (a client's dial that was already under way): it would
		// hold the shutdown for 5 s like the ones closed below.
		_ = c.Close()
	case state == http.StateNew:
		f.conns[c] = struct{}{}
	default:
		delete(f.conns, c)
	}
}

// closeAllFromNowOn closes the unused connections and every one accepted
// after this call that has not started a request.
func (f *freshConns) closeAllFromNowOn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutting = true
	for c := range f.conns {
		_ = c.Close()
		delete(f.conns, c)
	}
}
