package identity_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/identity"
)

func TestRequire(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.GET("/any", identity.Require(), func(c *gin.Context) { c.String(http.StatusOK, "%d", identity.FromContext(c).ID) })
	r.GET("/admin", identity.Require(identity.RoleAdmin), func(c *gin.Context) { c.String(http.StatusOK, "ok") })

	for name, tc := range map[string]struct {
		path    string
		headers map[string]string
		status  int
		body    string
	}{
		"no identity":         {"/any", nil, 401, `{"message":"unauthorized"}`},
		"non-numeric id":      {"/any", map[string]string{"X-User-ID": "abc"}, 401, `{"message":"unauthorized"}`},
		"zero id":             {"/any", map[string]string{"X-User-ID": "0"}, 401, `{"message":"unauthorized"}`},
		"customer":            {"/any", map[string]string{"X-User-ID": "7", "X-User-Roles": "customer"}, 200, "7"},
		"customer not admin":  {"/admin", map[string]string{"X-User-ID": "7", "X-User-Roles": "customer"}, 403, `{"message":"forbidden"}`},
		"admin among roles":   {"/admin", map[string]string{"X-User-ID": "1", "X-User-Roles": "customer, admin"}, 200, "ok"},
		"role name substring": {"/admin", map[string]string{"X-User-ID": "1", "X-User-Roles": "administrator"}, 403, `{"message":"forbidden"}`},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tc.status || strings.TrimSpace(rec.Body.String()) != tc.body {
				t.Fatalf("%d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
}
