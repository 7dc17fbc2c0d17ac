// Package auth is kshop's identity service: registration, e-mailed verification
// codes, login, password reset, account deletion, and the access tokens every
// other service trusts (docs/api.md#auth).
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/redisx"
	"github.com/kshop/kshop/services/platform/telemetry"
	"github.com/kshop/kshop/services/platform/tokens"
)

// Prefix is where the service's environment variables live: KSHOP_AUTH_*.
const Prefix = "KSHOP_AUTH"

// Config is the service's configuration (KSHOP_AUTH_* variables, README).
type Config struct {
	HTTPAddr        string           `envconfig:"HTTP_ADDR" default:":8081" desc:"Address the API listens on."`
	MetricsAddr     string           `envconfig:"METRICS_ADDR" default:":9081" desc:"Address /metrics is served on (the API port serves none); empty: no metrics."`
	ShutdownTimeout time.Duration    `envconfig:"SHUTDOWN_TIMEOUT" default:"15s" desc:"How long in-flight work may take to finish after SIGTERM."`
	Database        pg.Config        `envconfig:"DATABASE"`
	Redis           redisx.Config    `envconfig:"REDIS"`
	AMQP            amqp.Config      `envconfig:"AMQP"`
	Log             logx.Config      `envconfig:"LOG"`
	OTel            telemetry.Config `envconfig:"OTEL"`

	BcryptCost  int      `envconfig:"BCRYPT_COST" default:"11" desc:"bcrypt work factor for passwords and verification codes (10 to 31)."`
	AdminEmails []string `envconfig:"ADMIN_EMAILS" desc:"Addresses that get the admin role in their tokens; empty: nobody is an administrator."`
	// TestAdminEmail gets the admin role too: the address of an automated
	// journey's own admin, which the chart takes from the smoke test's
	// generated Secret (docs/kubernetes.md). Empty: none.
	TestAdminEmail  string        `envconfig:"TEST_ADMIN_EMAIL" desc:"One more admin address: an automated journey's own admin (the chart takes it from the smoke test's Secret); empty: none."`
	CodeTTL         time.Duration `envconfig:"CODE_TTL" default:"10m" desc:"How long a verification or reset code is valid."`
	CodeMaxAttempts int           `envconfig:"CODE_MAX_ATTEMPTS" default:"5" desc:"Wrong guesses that void a code."`
	// CodeGuessesPerDay wrong codes (verification and reset together) are
	// accepted per address in a day, CodeGuessesPerClientPerDay per client
	// address; after each wrong code the next one for the address waits
	// CodeGuessBackoff, doubling with each wrong code of the day (at most 15m).
	CodeGuessesPerDay          int           `envconfig:"CODE_GUESSES_PER_DAY" default:"10" desc:"Wrong codes (verification and reset together) accepted per address in a day."`
	CodeGuessesPerClientPerDay int           `envconfig:"CODE_GUESSES_PER_CLIENT_PER_DAY" default:"100" desc:"Wrong codes accepted per client address in a day."`
	CodeGuessBackoff           time.Duration `envconfig:"CODE_GUESS_BACKOFF" default:"2s" desc:"Wait after a wrong code before the next one for the address, doubling with each wrong code of the day (at most 15m)."`
	// LoginFailuresPerAddress wrong passwords (at login and at account
	// deletion, which takes the password too) are accepted per address within
	// LoginFailureWindow, LoginFailuresPerClient per client address; then every
	// password check for the address, or from the client, is refused (429 with
	// Retry-After) until the window, which starts at the first wrong password,
	// ends. Zero takes the default (configurations built without config.Load).
	LoginFailuresPerAddress int           `envconfig:"LOGIN_FAILURES_PER_ADDRESS" default:"10" desc:"Wrong passwords (login, account deletion) accepted per address within the failure window; then 429 until it ends."`
	LoginFailuresPerClient  int           `envconfig:"LOGIN_FAILURES_PER_CLIENT" default:"100" desc:"Wrong passwords accepted per client address within the failure window."`
	LoginFailureWindow      time.Duration `envconfig:"LOGIN_FAILURE_WINDOW" default:"15m" desc:"Window of the wrong-password limits, starting at the first wrong password."`
	// ResendCooldown is the least time between two e-mails to one address
	// (codes, reset codes, "the account exists").
	ResendCooldown time.Duration `envconfig:"RESEND_COOLDOWN" default:"1m" desc:"Least time between two e-mails to one address."`
	MailsPerDay    int           `envconfig:"MAILS_PER_DAY" default:"10" desc:"E-mails that registrations, resends and reset requests may cause to one address in a day."`
	// UnverifiedTTL: a registration not verified within it is deleted; the
	// cleanup runs every CleanupInterval.
	UnverifiedTTL   time.Duration `envconfig:"UNVERIFIED_TTL" default:"24h" desc:"A registration not verified within this long is deleted (at least CODE_TTL)."`
	CleanupInterval time.Duration `envconfig:"CLEANUP_INTERVAL" default:"10m" desc:"How often unverified registrations are cleaned up."`

	JWKSFile      string        `envconfig:"JWKS_FILE" desc:"Private signing key set (a mounted Secret); empty: a development key made at start."`
	JWKSReload    time.Duration `envconfig:"JWKS_RELOAD" default:"10s" desc:"How often the key file is checked for rotated keys."`
	JWKSAlgorithm string        `envconfig:"JWKS_DEV_ALGORITHM" default:"EdDSA" desc:"Algorithm of the development key: EdDSA or ES256."`
	TokenTTL      time.Duration `envconfig:"TOKEN_TTL" default:"1h" desc:"Lifetime of an access token; the controller's KSHOP_CONTROLLER_TOKEN_LIFETIME must be the same (the chart sets both from jwks.tokenTTL)."`
	TokenIssuer   string        `envconfig:"TOKEN_ISSUER" default:"kshop-auth" desc:"Issuer (iss) written into access tokens."`
	TokenAudience string        `envconfig:"TOKEN_AUDIENCE" default:"kshop" desc:"Audience (aud) written into access tokens."`
}

// Validate checks the rules the types cannot express.
func (c *Config) Validate() error {
	var errs []error
	if c.BcryptCost < 10 || c.BcryptCost > bcrypt.MaxCost {
		// Tests set a lower cost on the struct directly, never through the environment.
		errs = append(errs, fmt.Errorf("%s_BCRYPT_COST=%d must be between 10 and %d", Prefix, c.BcryptCost, bcrypt.MaxCost))
	}
	for name, d := range map[string]time.Duration{"CODE_TTL": c.CodeTTL, "RESEND_COOLDOWN": c.ResendCooldown, "TOKEN_TTL": c.TokenTTL, "JWKS_RELOAD": c.JWKSReload,
		"CODE_GUESS_BACKOFF": c.CodeGuessBackoff, "UNVERIFIED_TTL": c.UnverifiedTTL, "CLEANUP_INTERVAL": c.CleanupInterval,
		"LOGIN_FAILURE_WINDOW": c.LoginFailureWindow} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s_%s=%v must be positive", Prefix, name, d))
		}
	}
	for name, n := range map[string]int{"CODE_MAX_ATTEMPTS": c.CodeMaxAttempts, "CODE_GUESSES_PER_DAY": c.CodeGuessesPerDay,
		"CODE_GUESSES_PER_CLIENT_PER_DAY": c.CodeGuessesPerClientPerDay, "MAILS_PER_DAY": c.MailsPerDay,
		"LOGIN_FAILURES_PER_ADDRESS": c.LoginFailuresPerAddress, "LOGIN_FAILURES_PER_CLIENT": c.LoginFailuresPerClient} {
		if n < 1 {
			errs = append(errs, fmt.Errorf("%s_%s=%d must be at least 1", Prefix, name, n))
		}
	}
	if c.UnverifiedTTL > 0 && c.UnverifiedTTL < c.CodeTTL {
		errs = append(errs, fmt.Errorf("%s_UNVERIFIED_TTL=%v must be at least %s_CODE_TTL=%v, or registrations expire before their code", Prefix, c.UnverifiedTTL, Prefix, c.CodeTTL))
	}
	if c.JWKSAlgorithm != tokens.EdDSA && c.JWKSAlgorithm != tokens.ES256 {
		errs = append(errs, fmt.Errorf("%s_JWKS_DEV_ALGORITHM=%q must be %s or %s", Prefix, c.JWKSAlgorithm, tokens.EdDSA, tokens.ES256))
	}
	if err := c.AMQP.Validate(Prefix + "_AMQP"); err != nil {
		errs = append(errs, err)
	}
	for i, e := range c.AdminEmails {
		c.AdminEmails[i] = normaliseEmail(e)
	}
	c.TestAdminEmail = normaliseEmail(c.TestAdminEmail)
	return errors.Join(errs...)
}

// normaliseEmail is the one form an address is stored and compared in.
func normaliseEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
