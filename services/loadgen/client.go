// Package loadgen drives kshop from the outside, through the gateway, as
// clients do: the smoke journey (`make smoke`, and the end-to-end test) and an
// open-loop load generator (services/cmd/loadgen).
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client calls the public API. Token, when set, is sent as the bearer token.
type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// NewClient returns a client of the gateway at base.
func NewClient(base string) *Client {
	return &Client{Base: base, HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

// As returns a copy of c that sends token.
func (c *Client) As(token string) *Client {
	copy := *c
	copy.Token = token
	return &copy
}

// Reply is a decoded answer.
type Reply struct {
	Status  int
	Header  http.Header
	Message string
	Data    json.RawMessage
	Raw     []byte
}

// Call sends body as JSON (nil: no body) and decodes the envelope.
func (c *Client) Call(ctx context.Context, method, path string, body any) (Reply, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return Reply{}, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, reader)
	if err != nil {
		return Reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if key := requestID(body); key != "" {
		// A request carrying a request_id is idempotent by the contract (a
		// repeat answers what the first did), and this header says so to the
		// HTTP client: net/http then retries it when a pooled connection was
		// closed under it, as a server that is shutting down for a rollout
		// does, instead of failing it. It already does so for GET.
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{}, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	var envelope struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &envelope) == nil {
		r.Message, r.Data = envelope.Message, envelope.Data
	}
	return r, nil
}

// requestID is the request_id of a JSON body, if it has one.
func requestID(body any) string {
	if m, ok := body.(map[string]any); ok {
		if id, ok := m["request_id"].(string); ok {
			return id
		}
	}
	return ""
}

// Expect calls and checks the status, decoding data into dst when given.
func (c *Client) Expect(ctx context.Context, status int, method, path string, body, dst any) error {
	r, err := c.Call(ctx, method, path, body)
	if err != nil {
		return err
	}
	if r.Status != status {
		return fmt.Errorf("%s %s: got %d %s, want %d", method, path, r.Status, r.Raw, status)
	}
	if dst != nil {
		if err := json.Unmarshal(r.Data, dst); err != nil {
			return fmt.Errorf("%s %s: decode %s: %w", method, path, r.Data, err)
		}
	}
	return nil
}

func jsonDecode(data []byte, dst any) error { return json.Unmarshal(data, dst) }
