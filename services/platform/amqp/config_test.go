package amqp_test

import (
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kshop/kshop/services/platform/amqp"
)

// hostilePasswords break a URL built by pasting strings together.
var hostilePasswords = []string{
	`p@ss`, `a/b`, `a:b`, `100%`, `%2F`, `%zz`, `?x=1`, `#frag`, `sp ace`, `[::1]`, `"'\`, `ü€`, `@/:%?#[]`,
}

func TestDialURLPutsAnyCredentialIntoTheURL(t *testing.T) {
	for _, base := range []struct{ url, host, vhost string }{
		{"amqp://rabbit.example:5672/", "rabbit.example", "/"},
		{"amqps://rabbit.example:5671/%2F", "rabbit.example", "/"},
		{"amqp://10.213.0.1:18672/kshop", "10.213.0.1", "kshop"},
		{"amqps://rabbit.example/shop%2Fprod?cacertfile=/etc/rabbit/ca.pem", "rabbit.example", "shop/prod"},
	} {
		for _, password := range hostilePasswords {
			user := "kshop:" + password // a colon in the user name is as hostile
			raw, err := amqp.Config{URL: base.url, Username: user, Password: password}.DialURL()
			if err != nil {
				t.Fatalf("%s with password %q: %v", base.url, password, err)
			}
			uri, err := amqp091.ParseURI(raw)
			if err != nil {
				t.Fatalf("amqp091 cannot parse %q: %v", raw, err)
			}
			if uri.Username != user || uri.Password != password || uri.Host != base.host || uri.Vhost != base.vhost {
				t.Errorf("%s with password %q dials %s as user %q password %q host %q vhost %q", base.url, password, raw, uri.Username, uri.Password, uri.Host, uri.Vhost)
			}
			if strings.Contains(base.url, "cacertfile") && uri.CACertFile != "/etc/rabbit/ca.pem" {
				t.Errorf("the query parameters got lost: %s", raw)
			}
		}
	}
}

func TestDialURLKeepsAURLWithItsOwnCredentials(t *testing.T) {
	const withUser = "amqp://guest:gu%40st@127.0.0.1:18672/"
	got, err := amqp.Config{URL: withUser}.DialURL()
	if err != nil || got != withUser {
		t.Fatalf("DialURL = %q, %v; want the URL unchanged", got, err)
	}
}

func TestValidateNamesEveryMistake(t *testing.T) {
	const p = "KSHOP_AUTH_AMQP"
	for name, tc := range map[string]struct {
		cfg  amqp.Config
		want []string
	}{
		"no URL": {amqp.Config{},
			[]string{"KSHOP_AUTH_AMQP_URL is required but not set"}},
		"credentials in both places": {amqp.Config{URL: "amqp://guest:guest@rabbit/", Username: "kshop", Password: "secret"},
			[]string{"KSHOP_AUTH_AMQP_URL carries a user and KSHOP_AUTH_AMQP_USERNAME or KSHOP_AUTH_AMQP_PASSWORD is set too"}},
		"user without password": {amqp.Config{URL: "amqp://rabbit/", Username: "kshop"},
			[]string{"KSHOP_AUTH_AMQP_USERNAME and KSHOP_AUTH_AMQP_PASSWORD go together"}},
		"password without user": {amqp.Config{URL: "amqp://rabbit/", Password: "secret"},
			[]string{"KSHOP_AUTH_AMQP_USERNAME and KSHOP_AUTH_AMQP_PASSWORD go together"}},
		"another scheme": {amqp.Config{URL: "http://rabbit:15672/"},
			[]string{`KSHOP_AUTH_AMQP_URL must start with amqp:// or amqps:// (it starts with "http://")`}},
		"no host": {amqp.Config{URL: "amqp:///vhost"},
			[]string{"KSHOP_AUTH_AMQP_URL names no host"}},
		"unescaped password": {amqp.Config{URL: "amqp://kshop:p%zz@rabbit/"},
			[]string{"KSHOP_AUTH_AMQP_URL is not a URL like amqp://host:5672/vhost"}},
		"bad query parameter": {amqp.Config{URL: "amqp://rabbit/?heartbeat=often"},
			[]string{"KSHOP_AUTH_AMQP_URL is not a valid AMQP URL"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate(p)
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate = %q: want %d lines", err, len(tc.want))
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d = %q\nwant prefix %q", i+1, lines[i], want)
				}
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "p%zz") || strings.Contains(err.Error(), "guest") {
				t.Errorf("the message quotes a password: %q", err)
			}
			if _, err := tc.cfg.DialURL(); err == nil {
				t.Error("DialURL accepted what Validate refuses")
			}
		})
	}
}
