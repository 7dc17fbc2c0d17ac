package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

type described struct {
	Addr     string          `envconfig:"ADDR" default:":8080" desc:"Where to listen."`
	Password string          `envconfig:"PASSWORD" desc:"The password."`
	URL      string          `envconfig:"URL" required:"true" desc:"Where the server is."`
	Delays   []time.Duration `envconfig:"DELAYS" default:"1s,2s" desc:"Pauses."`
	Verbose  bool            `envconfig:"VERBOSE" desc:"Say more."`
	Ratio    float64         `envconfig:"RATIO" default:"0.5" desc:"A share."`
	Inner    struct {
		Level int `envconfig:"LEVEL" default:"3" desc:"How deep."`
	} `envconfig:"INNER"`
	Started time.Time `envconfig:"STARTED" desc:"A time decodes itself: one variable."`
	Skipped string    `ignored:"true"`
}

// The rows name the variables exactly as Load reads them (nested and
// anonymous structs included), with their types and defaults.
func TestDescribeNamesWhatLoadReads(t *testing.T) {
	vars, err := Describe("KSHOP_TEST", &described{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vars {
		got = append(got, v.Name+"|"+v.Type+"|"+DefaultText(v))
	}
	want := []string{
		"KSHOP_TEST_ADDR|string|default :8080",
		"KSHOP_TEST_PASSWORD|string|default empty",
		"KSHOP_TEST_URL|string|required",
		"KSHOP_TEST_DELAYS|comma-separated durations|default 1s,2s",
		"KSHOP_TEST_VERBOSE|bool|default false",
		"KSHOP_TEST_RATIO|number|default 0.5",
		"KSHOP_TEST_INNER_LEVEL|integer|default 3",
		"KSHOP_TEST_STARTED|string|default empty",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The test settings of config_test.go: anonymous and named nesting.
	vars, _ = Describe("KSHOP_TEST", settings{})
	got = got[:0]
	for _, v := range vars {
		got = append(got, v.Name)
	}
	if g := strings.Join(got, " "); g != "KSHOP_TEST_DATABASE_URL KSHOP_TEST_DATABASE_MAX_CONNS KSHOP_TEST_CACHE_TTL KSHOP_TEST_HTTP_PORT KSHOP_TEST_SHUTDOWN_TIMEOUT KSHOP_TEST_DEBUG KSHOP_TEST_ADMIN_EMAILS" {
		t.Errorf("names: %s", g)
	}
}

// A variable without a description is an error that names it.
func TestDescribeRefusesAVariableWithoutDescription(t *testing.T) {
	_, err := Describe("KSHOP_TEST", settings{})
	if err == nil {
		t.Fatal("no error for fields without desc")
	}
	for _, name := range []string{"KSHOP_TEST_DATABASE_URL", "KSHOP_TEST_CACHE_TTL", "KSHOP_TEST_ADMIN_EMAILS"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if err := PrintHelp(&bytes.Buffer{}, "usage", []Section{{Prefix: "KSHOP_TEST", Spec: settings{}}}); err == nil {
		t.Error("help printed for variables without descriptions")
	}
}

// Help prints defaults from the tags, never what the environment or a
// loaded configuration holds: a secret set there does not appear.
func TestHelpNeverPrintsTheEnvironment(t *testing.T) {
	t.Setenv("KSHOP_TEST_PASSWORD", "hunter2-secret")
	t.Setenv("KSHOP_TEST_URL", "https://user:urlsecret@example.com")
	t.Setenv("KSHOP_TEST_ADDR", ":9999")
	var loaded described
	if err := Load("KSHOP_TEST", &loaded); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := PrintHelp(&out, "usage: test [-help]", []Section{{Title: "Test", Prefix: "KSHOP_TEST", Spec: &loaded}}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, secret := range []string{"hunter2-secret", "urlsecret", ":9999"} {
		if strings.Contains(text, secret) {
			t.Errorf("help shows %q from the environment:\n%s", secret, text)
		}
	}
	for _, want := range []string{"usage: test [-help]", "Test:", "KSHOP_TEST_ADDR (string, default :8080)\n      Where to listen.", "KSHOP_TEST_URL (string, required)"} {
		if !strings.Contains(text, want) {
			t.Errorf("help lacks %q:\n%s", want, text)
		}
	}
}

func TestHelpRequested(t *testing.T) {
	for _, args := range [][]string{{"-help"}, {"--help"}, {"-h"}, {"devkafka", "-help"}} {
		if !HelpRequested(args) {
			t.Errorf("%q: no help", args)
		}
	}
	for _, args := range [][]string{nil, {"devkafka"}, {"-helpful"}, {"help"}} {
		if HelpRequested(args) {
			t.Errorf("%q: help", args)
		}
	}
}
