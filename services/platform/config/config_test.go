package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type Database struct {
	URL      string `envconfig:"DATABASE_URL" required:"true"`
	MaxConns int    `envconfig:"DATABASE_MAX_CONNS" default:"10"`
}

type cache struct {
	TTL time.Duration `envconfig:"TTL" default:"1m"`
}

type settings struct {
	Database                    // anonymous: KSHOP_TEST_DATABASE_URL
	Cache         cache         // named: KSHOP_TEST_CACHE_TTL
	HTTPPort      int           `envconfig:"HTTP_PORT" default:"8080"`
	ShutdownAfter time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"15s"`
	Debug         bool          `envconfig:"DEBUG"`
	AdminEmails   []string      `envconfig:"ADMIN_EMAILS"`
}

func (s *settings) Validate() error {
	if s.HTTPPort < 1 || s.HTTPPort > 65535 {
		return errors.New("KSHOP_TEST_HTTP_PORT must be between 1 and 65535")
	}
	return nil
}

func load(t *testing.T, env map[string]string) (settings, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var s settings
	return s, Load("KSHOP_TEST", &s)
}

func TestDefaultsAndValues(t *testing.T) {
	s, err := load(t, map[string]string{
		"KSHOP_TEST_DATABASE_URL": "postgres://db",
		"KSHOP_TEST_ADMIN_EMAILS": "a@kshop.dev,b@kshop.dev",
		"KSHOP_TEST_DEBUG":        "true",
		"KSHOP_TEST_CACHE_TTL":    "2s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL != "postgres://db" || s.MaxConns != 10 || s.Cache.TTL != 2*time.Second || s.HTTPPort != 8080 ||
		s.ShutdownAfter != 15*time.Second || !s.Debug || len(s.AdminEmails) != 2 {
		t.Fatalf("loaded %+v", s)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing required":               {map[string]string{}, "config: KSHOP_TEST_DATABASE_URL is required but not set"},
		"unprefixed name does not count": {map[string]string{"DATABASE_URL": "x"}, "config: KSHOP_TEST_DATABASE_URL is required but not set"},
		"bad nested duration": {map[string]string{"KSHOP_TEST_DATABASE_URL": "x", "KSHOP_TEST_CACHE_TTL": "1 minute"},
			`config: KSHOP_TEST_CACHE_TTL="1 minute" is not a valid duration`},
		"bad int": {map[string]string{"KSHOP_TEST_DATABASE_URL": "x", "KSHOP_TEST_HTTP_PORT": "abc"},
			`config: KSHOP_TEST_HTTP_PORT="abc" is not a valid integer`},
		"bad duration": {map[string]string{"KSHOP_TEST_DATABASE_URL": "x", "KSHOP_TEST_SHUTDOWN_TIMEOUT": "soon"},
			`config: KSHOP_TEST_SHUTDOWN_TIMEOUT="soon" is not a valid duration`},
		"bad bool": {map[string]string{"KSHOP_TEST_DATABASE_URL": "x", "KSHOP_TEST_DEBUG": "maybe"},
			`config: KSHOP_TEST_DEBUG="maybe" is not a valid bool`},
		"validate hook": {map[string]string{"KSHOP_TEST_DATABASE_URL": "x", "KSHOP_TEST_HTTP_PORT": "70000"},
			"config: KSHOP_TEST_HTTP_PORT must be between 1 and 65535"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, tc.env)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans several lines: %q", err)
			}
		})
	}
}
