package auth

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestThePublicRoutesAreTheDocumentedOnes: the gateway forwards to auth only
// the /auth operations of the OpenAPI document (its route table, tested in
// services/gateway), so a route auth adds for its users must be documented
// there, or it is unreachable; and the document must not list a route auth
// does not serve. Probes and metrics come from httpx, not from routes, and
// stay inside the cluster.
func TestThePublicRoutesAreTheDocumentedOnes(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	(&handlers{}).routes(engine)
	var served []string
	for _, r := range engine.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}

	raw, err := os.ReadFile("../gateway/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths {
		rest, ok := strings.CutPrefix(path, "/auth/")
		if !ok {
			continue
		}
		for method := range item {
			if slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options"}, method) {
				documented = append(documented, strings.ToUpper(method)+" /"+rest)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("auth serves %q\nthe gateway's OpenAPI document (and so its route table) has %q", served, documented)
	}
}
