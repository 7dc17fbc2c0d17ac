package amqp

import (
	"errors"
	"fmt"
	"net/url"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Config says where RabbitMQ is and who connects. Services hold it in a field
// named AMQP, so the variables read KSHOP_<SERVICE>_AMQP_URL, _AMQP_USERNAME and
// _AMQP_PASSWORD.
//
// The credentials go either in the URL (amqp://user:pass@host/vhost, percent-
// encoded by whoever wrote it) or in Username and Password, which take any
// character as it is (a password from a Secret), never in both: a setting that
// silently wins over another would hide a mistake.
type Config struct {
	// URL is amqp://host:port/vhost, or amqps:// for TLS (the system's roots,
	// or ?cacertfile=/path for a private CA; the host name is verified).
	URL      string `envconfig:"URL" desc:"RabbitMQ URL, amqp://host:5672/vhost or amqps:// for TLS (?cacertfile=/path for a private CA); credentials here or in _USERNAME and _PASSWORD, not both."`
	Username string `envconfig:"USERNAME" desc:"RabbitMQ user, taken as it is (no percent-encoding)."`
	Password string `envconfig:"PASSWORD" desc:"RabbitMQ password, taken as it is (a secret: give it from a Secret)."`
}

// Configured reports whether any setting is given, for a process where
// RabbitMQ is optional (the controller).
func (c Config) Configured() bool { return c != Config{} }

// Validate reports every mistake, one line each, naming the variables under
// prefix (KSHOP_AUTH_AMQP: KSHOP_AUTH_AMQP_URL, ...). No message quotes the URL,
// which may carry a password.
func (c Config) Validate(prefix string) error {
	name := func(setting string) string { return prefix + "_" + setting }
	var errs []error
	if c.URL == "" {
		errs = append(errs, fmt.Errorf("%s is required but not set", name("URL")))
	} else if u, err := url.Parse(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("%s is not a URL like amqp://host:5672/vhost (a user or password in it must be percent-encoded; or give them in %s and %s)",
			name("URL"), name("USERNAME"), name("PASSWORD")))
	} else {
		switch {
		case u.Scheme != "amqp" && u.Scheme != "amqps":
			errs = append(errs, fmt.Errorf("%s must start with amqp:// or amqps:// (it starts with %q)", name("URL"), u.Scheme+"://"))
		case u.Hostname() == "":
			errs = append(errs, fmt.Errorf("%s names no host (amqp://host:5672/vhost)", name("URL")))
		default:
			if _, err := amqp091.ParseURI(c.URL); err != nil {
				errs = append(errs, fmt.Errorf("%s is not a valid AMQP URL (check its port and query parameters)", name("URL")))
			}
		}
		if u != nil && u.User != nil && (c.Username != "" || c.Password != "") {
			errs = append(errs, fmt.Errorf("%s carries a user and %s or %s is set too: give the credentials in one place", name("URL"), name("USERNAME"), name("PASSWORD")))
		}
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", name("USERNAME"), name("PASSWORD")))
	}
	return errors.Join(errs...)
}

// DialURL is the URL to connect with: URL with Username and Password put in,
// escaped so that any character in them (@ / : % ...) arrives as it is.
func (c Config) DialURL() (string, error) {
	if err := c.Validate("AMQP"); err != nil {
		return "", err
	}
	if c.Username == "" {
		return c.URL, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil { // Validate parsed it already
		return "", err
	}
	u.User = url.UserPassword(c.Username, c.Password)
	return u.String(), nil
}
