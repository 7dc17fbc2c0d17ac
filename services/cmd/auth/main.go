// Command auth runs the auth service (services/auth); configuration comes from
// KSHOP_AUTH_* variables (docs/auth.md).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/process"
	"github.com/kshop/kshop/services/platform/tokens"
)

func main() {
	binaries.Auth(auth.Prefix, auth.Config{}).HelpIfAsked(os.Args[1:])
	if len(os.Args) > 1 && os.Args[1] == "generate-jwks" {
		generateJWKS(os.Args[2:])
		return
	}
	var cfg auth.Config
	if err := config.Load(auth.Prefix, &cfg); err != nil {
		config.Exit(err)
	}
	p := process.Start("auth", auth.Prefix, cfg.Log, cfg.OTel)
	defer p.Close()

	app, err := auth.New(cfg, p.Logger, p.Telemetry.Registry)
	if err != nil {
		config.Exit(err)
	}
	p.Logger.Info("auth service starting", "addr", cfg.HTTPAddr)
	if err := app.Run(p.Context); err != nil {
		p.Fail("auth service stopped", err)
	}
}

// generateJWKS prints a private JWKS with one new key, for a Secret where the
// controller does not manage keys: auth generate-jwks [EdDSA|ES256].
func generateJWKS(args []string) {
	alg := tokens.EdDSA
	if len(args) > 0 {
		alg = args[0]
	}
	now := time.Now()
	key, err := tokens.GenerateKey(alg, now, now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "generate-jwks:", err)
		os.Exit(2)
	}
	doc, err := tokens.KeySet{Keys: []tokens.Key{key}}.MarshalJWKS(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "generate-jwks:", err)
		os.Exit(1)
	}
	fmt.Println(string(doc))
}
