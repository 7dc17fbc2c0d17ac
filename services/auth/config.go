// Package auth is kshop's identity service: registration, e-mailed verification
// codes, login, and the access tokens every other service trusts (SPEC.md, Auth).
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
	HTTPAddr        string           `envconfig:"HTTP_ADDR" default:":8081"`
	ShutdownTimeout time.Duration    `envconfig:"SHUTDOWN_TIMEOUT" default:"15s"`
	Database        pg.Config        `envconfig:"DATABASE"`
	Redis           redisx.Config    `envconfig:"REDIS"`
	AMQP            amqp.Config      `envconfig:"AMQP"`
	Log             logx.Config      `envconfig:"LOG"`
	OTel            telemetry.Config `envconfig:"OTEL"`

	// BcryptCost is the work factor for passwords and verification codes.
	BcryptCost int `envconfig:"BCRYPT_COST" default:"11"`
	// AdminEmails get the admin role in their tokens (comma-separated).
	AdminEmails []string `envconfig:"ADMIN_EMAILS"`
	// CodeTTL is how long a verification code is valid.
	CodeTTL time.Duration `envconfig:"CODE_TTL" default:"10m"`
	// CodeMaxAttempts wrong guesses void a code, so six digits cannot be brute-forced.
	CodeMaxAttempts int `envconfig:"CODE_MAX_ATTEMPTS" default:"5"`
	// ResendCooldown is the least time between two codes for one e-mail.
	ResendCooldown time.Duration `envconfig:"RESEND_COOLDOWN" default:"1m"`

	// JWKSFile is the private key set (a mounted Secret); empty: a development key.
	JWKSFile string `envconfig:"JWKS_FILE"`
	// JWKSReload is how often the file is checked for rotated keys.
	JWKSReload time.Duration `envconfig:"JWKS_RELOAD" default:"10s"`
	// JWKSAlgorithm is the algorithm of the generated development key.
	JWKSAlgorithm string        `envconfig:"JWKS_DEV_ALGORITHM" default:"EdDSA"`
	TokenTTL      time.Duration `envconfig:"TOKEN_TTL" default:"1h"`
	TokenIssuer   string        `envconfig:"TOKEN_ISSUER" default:"kshop-auth"`
	TokenAudience string        `envconfig:"TOKEN_AUDIENCE" default:"kshop"`
}

// Validate checks the rules the types cannot express.
func (c *Config) Validate() error {
	var errs []error
	if c.BcryptCost < 10 || c.BcryptCost > bcrypt.MaxCost {
		// Tests set a lower cost on the struct directly, never through the environment.
		errs = append(errs, fmt.Errorf("%s_BCRYPT_COST=%d must be between 10 and %d", Prefix, c.BcryptCost, bcrypt.MaxCost))
	}
	for name, d := range map[string]time.Duration{"CODE_TTL": c.CodeTTL, "RESEND_COOLDOWN": c.ResendCooldown, "TOKEN_TTL": c.TokenTTL, "JWKS_RELOAD": c.JWKSReload} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s_%s=%v must be positive", Prefix, name, d))
		}
	}
	if c.CodeMaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("%s_CODE_MAX_ATTEMPTS=%d must be at least 1", Prefix, c.CodeMaxAttempts))
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
	return errors.Join(errs...)
}

// normaliseEmail is the one form an address is stored and compared in.
func normaliseEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
