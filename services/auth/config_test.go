package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/platform/config"
)

func TestConfigFromTheEnvironment(t *testing.T) {
	t.Setenv("KSHOP_AUTH_DATABASE_URL", "postgres://primary/auth")
	t.Setenv("KSHOP_AUTH_DATABASE_REPLICA_URL", "postgres://replica/auth")
	t.Setenv("KSHOP_AUTH_REDIS_ADDRS", "r1:6379,r2:6379")
	t.Setenv("KSHOP_AUTH_REDIS_TLS", "true")
	t.Setenv("KSHOP_AUTH_REDIS_USERNAME", "auth")
	t.Setenv("KSHOP_AUTH_REDIS_PASSWORD", "r-secret")
	t.Setenv("KSHOP_AUTH_AMQP_URL", "amqp://rabbit/")
	t.Setenv("KSHOP_AUTH_AMQP_USERNAME", "auth")
	t.Setenv("KSHOP_AUTH_AMQP_PASSWORD", "p@ss/word")
	t.Setenv("KSHOP_AUTH_ADMIN_EMAILS", "Boss@Example.com, ops@example.com")
	var cfg auth.Config
	if err := config.Load(auth.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Database.URL != "postgres://primary/auth" || cfg.Database.ReplicaURL != "postgres://replica/auth" ||
		len(cfg.Redis.Addrs) != 2 || !cfg.Redis.TLS || cfg.Redis.Username != "auth" || cfg.Redis.Password != "r-secret" ||
		cfg.AMQP.URL != "amqp://rabbit/" || cfg.AMQP.Username != "auth" || cfg.AMQP.Password != "p@ss/word" {
		t.Fatalf("connections %+v", cfg)
	}
	if cfg.BcryptCost < 10 || cfg.CodeTTL != 10*time.Minute || cfg.ResendCooldown != time.Minute || cfg.TokenTTL != time.Hour ||
		cfg.TokenIssuer != "kshop-auth" || cfg.TokenAudience != "kshop" || cfg.HTTPAddr != ":8081" {
		t.Fatalf("defaults %+v", cfg)
	}
	if strings.Join(cfg.AdminEmails, ",") != "boss@example.com,ops@example.com" {
		t.Fatalf("admin e-mails %q are not normalised", cfg.AdminEmails)
	}
	if cfg.CodeGuessesPerDay != 10 || cfg.CodeGuessesPerClientPerDay != 100 || cfg.CodeGuessBackoff != 2*time.Second ||
		cfg.MailsPerDay != 10 || cfg.UnverifiedTTL != 24*time.Hour || cfg.CleanupInterval != 10*time.Minute || cfg.TestAdminEmail != "" ||
		cfg.LoginFailuresPerAddress != 10 || cfg.LoginFailuresPerClient != 100 || cfg.LoginFailureWindow != 15*time.Minute {
		t.Fatalf("limit defaults %+v", cfg)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing AMQP URL": {map[string]string{}, "KSHOP_AUTH_AMQP_URL is required but not set"},
		"AMQP password alone": {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_AMQP_PASSWORD": "p"},
			"KSHOP_AUTH_AMQP_USERNAME and KSHOP_AUTH_AMQP_PASSWORD go together"},
		"weak bcrypt":        {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_BCRYPT_COST": "4"}, "KSHOP_AUTH_BCRYPT_COST=4"},
		"bad TTL":            {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_TOKEN_TTL": "an hour"}, "KSHOP_AUTH_TOKEN_TTL"},
		"zero cooldown":      {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_RESEND_COOLDOWN": "0s"}, "KSHOP_AUTH_RESEND_COOLDOWN"},
		"HMAC dev key":       {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_JWKS_DEV_ALGORITHM": "HS256"}, "KSHOP_AUTH_JWKS_DEV_ALGORITHM"},
		"no guesses":         {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_CODE_GUESSES_PER_DAY": "0"}, "KSHOP_AUTH_CODE_GUESSES_PER_DAY"},
		"no wrong passwords": {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_LOGIN_FAILURES_PER_ADDRESS": "0"}, "KSHOP_AUTH_LOGIN_FAILURES_PER_ADDRESS"},
		"no login window":    {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_LOGIN_FAILURE_WINDOW": "0s"}, "KSHOP_AUTH_LOGIN_FAILURE_WINDOW"},
		"no mails":           {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_MAILS_PER_DAY": "0"}, "KSHOP_AUTH_MAILS_PER_DAY"},
		"registrations expiring before their code": {map[string]string{"KSHOP_AUTH_AMQP_URL": "amqp://x/", "KSHOP_AUTH_UNVERIFIED_TTL": "5m"}, "KSHOP_AUTH_UNVERIFIED_TTL"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KSHOP_AUTH_DATABASE_URL", "postgres://db/auth")
			t.Setenv("KSHOP_AUTH_REDIS_ADDRS", "r:6379")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var cfg auth.Config
			err := config.Load(auth.Prefix, &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
