package redisx

import "crypto/x509"

// WithRootCAs lets tests trust their own CA instead of the system's roots.
func WithRootCAs(cfg Config, pool *x509.CertPool) Config {
	cfg.rootCAs = pool
	return cfg
}
