package auth

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/kshop/kshop/services/platform/tokens"
)

// loadKeys opens the signing keys: the JWKS file when configured (a Secret the
// controller rotates), otherwise a key generated now, fine for one process on a
// laptop and nothing else.
func loadKeys(cfg Config, logger *slog.Logger) (tokens.KeySource, error) {
	if cfg.JWKSFile != "" {
		file, err := tokens.LoadKeyFile(cfg.JWKSFile, cfg.JWKSReload, logger)
		if err != nil {
			return nil, fmt.Errorf("%s_JWKS_FILE: %w", Prefix, err)
		}
		if _, err := file.KeySet().SigningKey(time.Now()); err != nil {
			return nil, fmt.Errorf("%s_JWKS_FILE=%s: %w", Prefix, cfg.JWKSFile, err)
		}
		return file, nil
	}
	key, err := tokens.GenerateKey(cfg.JWKSAlgorithm, time.Now(), time.Time{})
	if err != nil {
		return nil, err
	}
	logger.Warn("no JWKS file configured (" + Prefix + "_JWKS_FILE): signing with a development key generated at start; " +
		"tokens die with this process and other replicas will not share the key")
	return tokens.Static(tokens.KeySet{Keys: []tokens.Key{key}}), nil
}
