package mail_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/config"
)

// The chart's external-infrastructure mode sets these variables for a managed
// RabbitMQ and an SMTP relay with a login.
func TestConnectionsFromTheEnvironment(t *testing.T) {
	for k, v := range map[string]string{
		"KSHOP_MAIL_DATABASE_URL": "postgres://kshop@db:5432/mail",
		"KSHOP_MAIL_AMQP_URL":     "amqp://10.213.0.1:18672/", "KSHOP_MAIL_AMQP_USERNAME": "mail", "KSHOP_MAIL_AMQP_PASSWORD": "a-secret",
		"KSHOP_MAIL_SMTP_HOST": "smtp.example.com", "KSHOP_MAIL_SMTP_PORT": "465", "KSHOP_MAIL_SMTP_TLS": "tls",
		"KSHOP_MAIL_SMTP_USERNAME": "relay", "KSHOP_MAIL_SMTP_PASSWORD": "s-secret",
	} {
		t.Setenv(k, v)
	}
	var cfg mail.Config
	if err := config.Load(mail.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := (amqp.Config{URL: "amqp://10.213.0.1:18672/", Username: "mail", Password: "a-secret"}); cfg.AMQP != want {
		t.Errorf("AMQP = %+v", cfg.AMQP)
	}
	if s := cfg.SMTP; s.Host != "smtp.example.com" || s.Port != 465 || s.TLS != mail.TLSImplicit || s.Username != "relay" || s.Password != "s-secret" {
		t.Errorf("SMTP = %+v", s)
	}
}

// The inbox (and outbox) retentions have defaults that outlast any redelivery,
// and a negative one is refused, naming the variable.
func TestRetentionsHaveDefaultsAndRefuseNegatives(t *testing.T) {
	t.Setenv("KSHOP_MAIL_DATABASE_URL", "postgres://kshop@db:5432/mail")
	t.Setenv("KSHOP_MAIL_AMQP_URL", "amqp://rabbit:5672/")
	t.Setenv("KSHOP_MAIL_SMTP_HOST", "smtp")
	t.Setenv("KSHOP_MAIL_SMTP_FROM", "shop@example.com")
	t.Setenv("KSHOP_MAIL_REDIS_ADDRS", "r:6379")
	t.Setenv("KSHOP_MAIL_KAFKA_BROKERS", "k:9092")
	var cfg mail.Config
	if err := config.Load(mail.Prefix, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.InboxRetention != 7*24*time.Hour {
		t.Errorf("InboxRetention = %v, want 168h", cfg.InboxRetention)
	}
	for _, variable := range strings.Fields("INBOX_RETENTION") {
		t.Run(variable, func(t *testing.T) {
			t.Setenv("KSHOP_MAIL_"+variable, "-1h")
			var cfg mail.Config
			if err := config.Load(mail.Prefix, &cfg); err == nil || !strings.Contains(err.Error(), "KSHOP_MAIL_"+variable) {
				t.Fatalf("%s=-1h: %v, want an error naming it", variable, err)
			}
		})
	}
}
