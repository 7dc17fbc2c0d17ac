package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mail is an e-mail as the journey checks it.
type Mail struct {
	To, Subject string
}

// Inbox lists the e-mails sent to an address, newest first: Mailpit's API
// for `make smoke`, the test's SMTP server in the end-to-end test.
type Inbox interface {
	Messages(ctx context.Context, to string) ([]Mail, error)
}

// Mailpit reads the inbox of a Mailpit server (make run starts one on :8025).
type Mailpit struct {
	URL  string
	HTTP *http.Client
}

// Messages lists the messages to one address, newest first.
func (m Mailpit) Messages(ctx context.Context, to string) ([]Mail, error) {
	client := m.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	q := url.Values{"query": {`to:"` + to + `"`}, "limit": {"200"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(m.URL, "/")+"/api/v1/search?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the Mailpit inbox at %s (is make run up?): %w", m.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("Mailpit search answered %d", resp.StatusCode)
	}
	var found struct {
		Messages []struct {
			Subject string
			To      []struct{ Address string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&found); err != nil {
		return nil, fmt.Errorf("decode the Mailpit search: %w", err)
	}
	var out []Mail
	for _, msg := range found.Messages {
		for _, rcpt := range msg.To {
			if strings.EqualFold(rcpt.Address, to) {
				out = append(out, Mail{To: rcpt.Address, Subject: msg.Subject})
			}
		}
	}
	return out, nil
}

// awaitMail waits until to has an e-mail whose subject contains want.
func awaitMail(ctx context.Context, inbox Inbox, to, want string, within time.Duration) error {
	var last error
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		mails, err := inbox.Messages(ctx, to)
		last = err
		for _, m := range mails {
			if strings.Contains(m.Subject, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if last != nil {
		return fmt.Errorf("no e-mail %q to %s within %v: %w", want, to, within, last)
	}
	return fmt.Errorf("no e-mail %q to %s within %v", want, to, within)
}

// awaitNewMail waits until to has more than before e-mails whose subject
// contains want, and returns the newest.
func awaitNewMail(ctx context.Context, inbox Inbox, to, want string, before int, within time.Duration) (Mail, error) {
	var last error
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		mails, err := inbox.Messages(ctx, to)
		last = err
		var matching []Mail
		for _, m := range mails {
			if strings.Contains(m.Subject, want) {
				matching = append(matching, m)
			}
		}
		if len(matching) > before {
			return matching[0], nil
		}
		select {
		case <-ctx.Done():
			return Mail{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if last != nil {
		return Mail{}, fmt.Errorf("no new e-mail %q to %s within %v: %w", want, to, within, last)
	}
	return Mail{}, fmt.Errorf("no new e-mail %q to %s within %v", want, to, within)
}

// countMail counts the e-mails to `to` whose subject contains want.
func countMail(ctx context.Context, inbox Inbox, to, want string) (int, error) {
	mails, err := inbox.Messages(ctx, to)
	n := 0
	for _, m := range mails {
		if strings.Contains(m.Subject, want) {
			n++
		}
	}
	return n, err
}
