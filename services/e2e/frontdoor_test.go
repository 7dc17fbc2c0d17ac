package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/platform/testenv"
)

// The entrance of issue 20 (items 7 and 8) on the whole platform: the test
// stands where an ingress controller would, a trusted proxy of the gateway,
// and forwards for clients of its choosing.

// clientAddress is an address of 100.64.0.0/10 no other test or run uses, so
// its counters on the shared Redis start at zero.
func clientAddress() string {
	n, _ := strconv.ParseUint(testenv.RandomSuffix()[:6], 16, 32)
	return fmt.Sprintf("100.%d.%d.%d", 64+n>>16&0x3f, n>>8&0xff, n&0xff%254+1)
}

type answer struct {
	status     int
	message    string
	retryAfter string
}

// forward sends what an ingress would for client: the request with
// X-Forwarded-For naming it.
func forward(t *testing.T, base, client, method, path string, body any) answer {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(method, base+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var envelope struct {
		Message string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&envelope)
	return answer{resp.StatusCode, envelope.Message, resp.Header.Get("Retry-After")}
}

func TestTheEntranceServesPublicRoutesAndLimitsEachClientAndAddress(t *testing.T) {
	p := startPlatform(t, e2e.Config{
		Reminders: []time.Duration{time.Hour}, Expiry: 2 * time.Hour,
		TrustedProxies: []string{"127.0.0.1/32"},
		RateLimits:     "auth=5/m,products=1000/s,orders=1000/s",
	})
	gw := p.Gateway.Base

	// Only auth's public routes: its probes and metrics are not on the way in.
	for _, path := range []string{"/auth/metrics", "/auth/readyz", "/auth/healthz", "/auth/health"} {
		if a := forward(t, gw, clientAddress(), http.MethodGet, path, nil); a.status != http.StatusNotFound || a.message != "route not found" {
			t.Errorf("GET %s through the gateway: %d %q, want 404 route not found", path, a.status, a.message)
		}
	}
	if a := forward(t, gw, clientAddress(), http.MethodGet, "/auth/.well-known/jwks.json", nil); a.status != http.StatusOK {
		t.Errorf("the public keys: %d", a.status)
	}

	// Per client: one client's budget spent, another's is whole.
	greedy, patient := clientAddress(), clientAddress()
	nobody := map[string]any{"email": "nobody-" + testenv.RandomSuffix() + "@example.com", "password": "password123"}
	for i := range 5 {
		if a := forward(t, gw, greedy, http.MethodPost, "/auth/login", nobody); a.status != http.StatusUnauthorized {
			t.Fatalf("login %d of the greedy client: %d %q", i+1, a.status, a.message)
		}
	}
	if a := forward(t, gw, greedy, http.MethodPost, "/auth/login", nobody); a.status != http.StatusTooManyRequests || a.retryAfter == "" {
		t.Fatalf("the greedy client's 6th login in a minute: %d %q, Retry-After %q", a.status, a.message, a.retryAfter)
	}
	if a := forward(t, gw, patient, http.MethodPost, "/auth/login", nobody); a.status != http.StatusUnauthorized {
		t.Fatalf("another client behind the same ingress: %d %q, want its own budget", a.status, a.message)
	}

	// Per address, across clients: ten wrong passwords, each from another
	// client, and the address is held, its right password too.
	email, password := "held-"+testenv.RandomSuffix()+"@example.com", "right-password"
	if a := forward(t, gw, clientAddress(), http.MethodPost, "/auth/register", map[string]any{"email": email, "password": password}); a.status != http.StatusAccepted {
		t.Fatalf("register: %d %q", a.status, a.message)
	}
	code := newestCode(t, p.SMTP, email, "verification code", 1)
	if a := forward(t, gw, clientAddress(), http.MethodPost, "/auth/verify", map[string]any{"email": email, "verification_token": code}); a.status != http.StatusOK {
		t.Fatalf("verify: %d %q", a.status, a.message)
	}
	for i := range 10 {
		if a := forward(t, gw, clientAddress(), http.MethodPost, "/auth/login", map[string]any{"email": email, "password": "wrong-password"}); a.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d %q", i+1, a.status, a.message)
		}
	}
	a := forward(t, gw, clientAddress(), http.MethodPost, "/auth/login", map[string]any{"email": email, "password": password})
	if a.status != http.StatusTooManyRequests || !strings.HasPrefix(a.message, "too many wrong passwords were entered for this address") || a.retryAfter == "" {
		t.Fatalf("the right password after ten wrong ones from ten clients: %d %q, Retry-After %q; want 429", a.status, a.message, a.retryAfter)
	}
}
