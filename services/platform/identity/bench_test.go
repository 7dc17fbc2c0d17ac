package identity_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/tokens"
)

// BenchmarkSignAndVerify is what the identity token adds to one request:
// the gateway signs it, the service verifies it (Ed25519 both ends); with
// reuse, one client's requests within half a TTL share one token, which the
// service has verified already.
func BenchmarkSignAndVerify(b *testing.B) {
	for _, c := range []struct {
		name         string
		reuse, cache int
	}{{"every request", 0, 0}, {"reused", 4096, 4096}} {
		b.Run(c.name, func(b *testing.B) {
			keys, err := identity.GenerateKeys()
			if err != nil {
				b.Fatal(err)
			}
			issuer := &identity.Issuer{Keys: tokens.Static(keys), TTL: time.Minute, Reuse: c.reuse}
			v, err := identity.NewVerifier(identity.Config{Keys: tokens.Static(keys.Public()), Cache: c.cache}, "order", "KSHOP_ORDER_IDENTITY", quiet)
			if err != nil {
				b.Fatal(err)
			}
			gin.SetMode(gin.ReleaseMode)
			r := gin.New()
			r.Use(v.Authenticate())
			r.GET("/orders", identity.Require(), func(c *gin.Context) { c.Status(http.StatusNoContent) })
			u := identity.User{ID: 42, Email: "ann@example.com", Roles: []string{"customer"}}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/orders", nil)
				if err := issuer.Header(req.Header, u, "order"); err != nil {
					b.Fatal(err)
				}
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
