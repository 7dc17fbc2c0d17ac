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
