package pg_test

import (
	"testing"

	"github.com/kshop/kshop/services/platform/pg"
)

// A managed PostgreSQL is reached with the user and TLS mode in the URL and the
// password apart, in PGPASSWORD (from a Secret): both pools take both.
func TestPasswordFromPGPASSWORDAndTLSFromTheURLReachBothPools(t *testing.T) {
	const password = `p@ss:w/rd%20 'x'`
	t.Setenv("PGPASSWORD", password)
	db := open(t, pg.Config{
		URL:        "postgres://kshop@db.example.com:5432/order?sslmode=verify-full",
		ReplicaURL: "postgres://kshop@replica.example.com:5432/order?sslmode=require",
	})
	primary, replica := db.Primary.Config().ConnConfig, db.Replica.Config().ConnConfig
	if primary.Password != password || replica.Password != password {
		t.Fatalf("passwords %q and %q, want PGPASSWORD's in both pools", primary.Password, replica.Password)
	}
	if primary.User != "kshop" || replica.User != "kshop" {
		t.Fatalf("users %q and %q", primary.User, replica.User)
	}
	if tls := primary.TLSConfig; tls == nil || tls.InsecureSkipVerify || tls.ServerName != "db.example.com" {
		t.Fatalf("primary TLS %+v: want the certificate verified for db.example.com (verify-full)", tls)
	}
	if replica.TLSConfig == nil {
		t.Fatal("replica without TLS despite sslmode=require")
	}
	// Plain sslmode=require encrypts without verifying the certificate:
	// libpq's meaning, kept by pgx. Documented so nobody takes it for more.
	if !replica.TLSConfig.InsecureSkipVerify {
		t.Fatal("pgx now verifies certificates with sslmode=require: update the sslmode advice in docs/architecture.md")
	}
}

func TestPasswordInTheURLWinsOverPGPASSWORD(t *testing.T) {
	t.Setenv("PGPASSWORD", "from-the-environment")
	db := open(t, pg.Config{URL: "postgres://kshop:from-the-url@db.example.com/order?sslmode=disable"})
	c := db.Primary.Config().ConnConfig
	if c.Password != "from-the-url" || c.TLSConfig != nil {
		t.Fatalf("password %q, TLS %v: want the URL's password and no TLS", c.Password, c.TLSConfig)
	}
}
