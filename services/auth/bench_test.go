package auth_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// BenchmarkLogin shows that a login for an unknown e-mail costs what a wrong
// password costs (both one bcrypt comparison at the production cost), so timing
// does not reveal which e-mails have accounts. Compare the ns/op of the first two.
func BenchmarkLogin(b *testing.B) {
	cfg := testConfig(b)
	cfg.BcryptCost = 10
	s := start(b, cfg)
	mail := openMailbox(b)
	email := newEmail("bench")
	registerAndVerify(b, s, mail, email, "password123")

	for _, tc := range []struct {
		name, email, password string
		status                int
	}{
		{"unknown-email", newEmail("nobody"), "password123", http.StatusUnauthorized},
		{"wrong-password", email, "password124", http.StatusUnauthorized},
		{"success", email, "password123", http.StatusOK},
	} {
		body, _ := json.Marshal(map[string]string{"email": tc.email, "password": tc.password})
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Post(s.Base+"/login", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					b.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
			}
		})
	}
}
