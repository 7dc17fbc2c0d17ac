package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Probe asks url once, on a new connection, and returns the HTTP status of
// whatever answered. It is how a test checks from inside a pod what that pod
// may reach (a NetworkPolicy that drops the packets shows as a timeout).
func Probe(ctx context.Context, url string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// WaitForAnswer asks url once a second until something answers, for at most
// within. A pod that has just started may not reach anything yet: the
// network-policy rules for a new pod are written a moment after it starts, and
// until then its connections are refused.
func WaitForAnswer(ctx context.Context, url string, within time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		status, err := Probe(ctx, url, 3*time.Second)
		if err == nil {
			return status, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("nothing answered at %s within %v: %w", url, within, err)
		case <-time.After(time.Second):
		}
	}
}
