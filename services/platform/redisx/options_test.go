package redisx

import (
	"crypto/tls"
	"slices"
	"testing"
)

func TestOptionsWithoutTLSDialInTheOpen(t *testing.T) {
	opts := options(Config{Addrs: []string{"redis:6379"}, Username: "kshop", Password: "secret"})
	if opts.TLSConfig != nil {
		t.Fatalf("TLS configured without REDIS_TLS: %+v", opts.TLSConfig)
	}
	if opts.Username != "kshop" || opts.Password != "secret" {
		t.Fatalf("credentials = %q/%q", opts.Username, opts.Password)
	}
}

func TestOptionsWithTLSVerifyEveryNodeUnderItsOwnName(t *testing.T) {
	addrs := []string{"node-0.redis:6379", "node-1.redis:6379"}
	opts := options(Config{Addrs: addrs, Cluster: true, TLS: true, Username: "kshop", Password: "secret"})
	c := opts.TLSConfig
	switch {
	case c == nil:
		t.Fatal("no TLS with REDIS_TLS")
	case c.InsecureSkipVerify:
		t.Fatal("certificates are not verified")
	case c.ServerName != "":
		t.Fatalf("ServerName = %q: one fixed name would fail every other node; crypto/tls takes it from each address", c.ServerName)
	case c.MinVersion < tls.VersionTLS12:
		t.Fatalf("MinVersion = %x, want TLS 1.2 or later", c.MinVersion)
	case c.RootCAs != nil:
		t.Fatal("RootCAs set: want the system's roots")
	}
	// Both client kinds carry the same settings.
	cluster, simple := opts.Cluster(), opts.Simple()
	if cluster.TLSConfig != c || simple.TLSConfig != c {
		t.Fatal("the cluster or single-node options lost the TLS configuration")
	}
	if cluster.Username != "kshop" || cluster.Password != "secret" || simple.Username != "kshop" || simple.Password != "secret" {
		t.Fatal("the cluster or single-node options lost the credentials")
	}
	if !slices.Equal(cluster.Addrs, addrs) {
		t.Fatalf("cluster addresses = %v", cluster.Addrs)
	}
}
