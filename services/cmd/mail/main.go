// Command mail runs the mail service (services/mail); configuration
// comes from KSHOP_MAIL_* variables (docs/mail.md).
package main

import (
	"os"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/process"
)

func main() {
	binaries.Mail(mail.Prefix, mail.Config{}).HelpIfAsked(os.Args[1:])
	var cfg mail.Config
	if err := config.Load(mail.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	p := process.Start("mail", mail.Prefix, cfg.Log, cfg.OTel)
	defer p.Close()

	app, err := mail.New(cfg, p.Logger, p.Telemetry.Registry)
	if err != nil {
		config.Exit(err)
	}
	p.Logger.Info("mail service starting", "addr", cfg.HTTPAddr)
	if err := app.Run(p.Context); err != nil {
		p.Fail("mail service stopped", err)
	}
}
