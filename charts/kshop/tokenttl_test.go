package chart_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Auth's access-token lifetime and the controller's, which decides how long a
// retired signing key stays published, are one value (jwks.tokenTTL): with two,
// a shorter controller setting withdrew keys whose tokens were still valid.
func TestTheControllerFollowsAuthsTokenLifetime(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   string
	}{
		{nil, "1h"},
		{[]string{"--set", "jwks.tokenTTL=20m"}, "20m"},
	} {
		objects := render(t, c.values...)
		cm := find(objects, "ConfigMap", releaseName+"-auth")
		authTTL, _, _ := unstructured.NestedString(cm.Object, "data", "KSHOP_AUTH_TOKEN_TTL")
		ctrl := find(objects, "Deployment", releaseName+"-controller")
		containers, _, _ := unstructured.NestedSlice(ctrl.Object, "spec", "template", "spec", "containers")
		var lifetime string
		for _, e := range containers[0].(map[string]any)["env"].([]any) {
			if m := e.(map[string]any); m["name"] == "KSHOP_CONTROLLER_TOKEN_LIFETIME" {
				lifetime, _ = m["value"].(string)
			}
		}
		if authTTL != c.want || lifetime != c.want {
			t.Errorf("%v: auth's KSHOP_AUTH_TOKEN_TTL=%q, the controller's KSHOP_CONTROLLER_TOKEN_LIFETIME=%q; want both %q", c.values, authTTL, lifetime, c.want)
		}
	}
	// A second setting through the service's env is refused, naming the one value.
	err := renderError(t, "--set", "services.auth.env.KSHOP_AUTH_TOKEN_TTL=5m")
	if err == nil || !strings.Contains(err.Error(), "jwks.tokenTTL") {
		t.Errorf("auth's TTL set apart from jwks.tokenTTL: %v", err)
	}
	// The controller's own setting is gone from the values.
	if err := renderError(t, "--set", "controller.tokenLifetime=3m"); err == nil {
		t.Error("controller.tokenLifetime accepted")
	}
}
