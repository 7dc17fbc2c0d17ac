package mail_test

import (
	"testing"

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
