// Package apitest drives a service's HTTP API in tests: it runs the service on a
// free port until the test ends, and sends requests as a given user, decoding the
// contract's envelope.
package apitest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/tokens"
)

// Client talks to one running service.
type Client struct {
	Base string
	HTTP *http.Client
	// Audience, when set, makes Do send a user's identity as the gateway
	// does: the X-User-* headers with an identity token signed for this
	// service by Issuer. Empty: the bare headers, which services refuse.
	Audience string
}

// gatewayKeys stand in for the gateway's identity keys in every test of a process.
// Active for a day already, so tests can sign with a clock set back (expired tokens).
var gatewayKeys = sync.OnceValue(func() tokens.KeySet {
	since := time.Now().Add(-24 * time.Hour)
	k, err := tokens.GenerateKey(tokens.EdDSA, since, since)
	if err != nil {
		panic(err)
	}
	return tokens.KeySet{Keys: []tokens.Key{k}}
})

// IdentityConfig is the identity setting of a service under test: it trusts
// what Issuer signs, as a service trusts its gateway.
func IdentityConfig() identity.Config {
	return identity.Config{Keys: tokens.Static(gatewayKeys().Public()), Leeway: 5 * time.Second}
}

// IdentityKeys is the private key set Issuer signs with, for a gateway under test.
func IdentityKeys() tokens.KeySet { return gatewayKeys() }

// Issuer signs identities as the gateway does.
func Issuer() *identity.Issuer {
	return &identity.Issuer{Keys: tokens.Static(gatewayKeys()), TTL: time.Minute}
}

// Identify sets as's identity on h: signed for c.Audience when set, else the bare headers.
func (c *Client) Identify(t testing.TB, h http.Header, as identity.User) {
	t.Helper()
	if c.Audience == "" {
		as.Header(h)
		return
	}
	if err := Issuer().Header(h, as, c.Audience); err != nil {
		t.Fatal(err)
	}
}

// Run starts serve on a free loopback port and stops it when the test ends,
// failing the test if it returns an error. It does not wait for readiness.
func Run(t testing.TB, serve func(ctx context.Context, ln net.Listener) error) *Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service stopped with %v", err)
		}
	})
	return &Client{Base: "http://" + ln.Addr().String(), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Start is Run, then waits until /readyz answers 200.
func Start(t testing.TB, serve func(ctx context.Context, ln net.Listener) error) *Client {
	t.Helper()
	c := Run(t, serve)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.HTTP.Get(c.Base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("service not ready after 30 s: %s", body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("service not reachable after 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Envelope is the contract's response body.
type Envelope struct {
	Message string             `json:"message"`
	Data    json.RawMessage    `json:"data"`
	Paging  *httpx.Paging      `json:"paging"`
	Errors  []httpx.FieldError `json:"errors"`
}

// Reply is a response.
type Reply struct {
	Status int
	Header http.Header
	Body   Envelope
	Raw    []byte
}

// Do sends body (a string is sent as it is, anything else as JSON; nil sends no
// body) as the user as (nil: anonymous), with the identity headers the gateway
// sets (signed when c.Audience is set).
func (c *Client) Do(t testing.TB, as *identity.User, method, path string, body any) Reply {
	t.Helper()
	var raw []byte
	contentType := ""
	if body != nil {
		contentType = "application/json"
		if s, ok := body.(string); ok {
			raw = []byte(s)
		} else {
			data, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			raw = data
		}
	}
	header := http.Header{}
	if as != nil {
		c.Identify(t, header, *as)
	}
	return c.Send(t, method, path, contentType, raw, header)
}

// Send sends raw bytes with a content type of the caller's choice.
func (c *Client) Send(t testing.TB, method, path, contentType string, body []byte, header http.Header) Reply {
	t.Helper()
	req, err := http.NewRequest(method, c.Base+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			t.Fatalf("%s %s: the response is not the envelope: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// Expect fails the test unless the reply has status and (when not empty) message.
func (r Reply) Expect(t testing.TB, status int, message string) Reply {
	t.Helper()
	if r.Status != status || (message != "" && r.Body.Message != message) {
		t.Fatalf("got %d %q, want %d %q\n%s", r.Status, r.Body.Message, status, message, r.Raw)
	}
	return r
}

// Decode reads the envelope's data into dst.
func (r Reply) Decode(t testing.TB, dst any) {
	t.Helper()
	if err := json.Unmarshal(r.Body.Data, dst); err != nil {
		t.Fatalf("decode data: %v\n%s", err, r.Raw)
	}
}

// FirstError names the first field error, or "".
func (r Reply) FirstError() string {
	if len(r.Body.Errors) == 0 {
		return ""
	}
	return r.Body.Errors[0].Field
}
