package chart_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// TestNoAddressIsAnAdminByDefault: whatever the value set, no ConfigMap names
// an administrator; with the smoke test, the only admin is the address in the
// release's generated Secret, which auth reads as KSHOP_AUTH_TEST_ADMIN_EMAIL
// and the helm test pod signs in with (no -admin flag, no password in the
// manifest). (Before, values.yaml made admin@kshop.local an admin and the
// smoke journey left it registered with the password "admin-password".)
func TestNoAddressIsAnAdminByDefault(t *testing.T) {
	secret := releaseName + "-smoke-admin"
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			objects := render(t, values...)
			for _, o := range objects {
				if o.GetKind() != "ConfigMap" {
					continue
				}
				data, _, _ := unstructured.NestedStringMap(o.Object, "data")
				if admins := data["KSHOP_AUTH_ADMIN_EMAILS"] + data["KSHOP_AUTH_TEST_ADMIN_EMAIL"]; admins != "" {
					t.Errorf("ConfigMap %s names administrators: %q", o.GetName(), admins)
				}
			}
			_, secrets, env := configOf(t, objects, "auth")
			smoke := find(objects, "Pod", releaseName+"-smoke")
			if smoke == nil {
				if find(objects, "Secret", secret) != nil || secrets["KSHOP_AUTH_TEST_ADMIN_EMAIL"] != "" {
					t.Error("a smoke admin without the smoke test")
				}
				return
			}
			if got := secrets["KSHOP_AUTH_TEST_ADMIN_EMAIL"]; got != secret+"/email" || env["KSHOP_AUTH_TEST_ADMIN_EMAIL"] != "" {
				t.Errorf("auth's KSHOP_AUTH_TEST_ADMIN_EMAIL comes from %q, want the Secret %s/email", got, secret)
			}
			containers, _, _ := unstructured.NestedSlice(smoke.Object, "spec", "containers")
			c := containers[0].(map[string]any)
			for _, arg := range asSlice(c["args"]) {
				if strings.HasPrefix(arg.(string), "-admin") {
					t.Errorf("the smoke pod is given %q on its command line", arg)
				}
			}
			fromSecret := map[string]string{}
			for _, e := range asSlice(c["env"]) {
				e := e.(map[string]any)
				if ref, ok, _ := unstructured.NestedStringMap(e, "valueFrom", "secretKeyRef"); ok {
					fromSecret[e["name"].(string)] = ref["name"] + "/" + ref["key"]
				} else {
					t.Errorf("the smoke pod's %v is not from a Secret", e["name"])
				}
			}
			if fromSecret["KSHOP_LOADGEN_ADMIN"] != secret+"/email" || fromSecret["KSHOP_LOADGEN_ADMIN_PASSWORD"] != secret+"/password" {
				t.Errorf("the smoke pod's admin comes from %v, want %s", fromSecret, secret)
			}
			generated := find(objects, "Secret", secret)
			if generated == nil {
				t.Fatalf("no Secret %s", secret)
			}
			email, password := smokeAdmin(t, generated.Object)
			if !regexp.MustCompile(`^smoke-admin-[a-z0-9]{16}@example\.com$`).MatchString(email) || len(password) != 32 {
				t.Errorf("smoke admin %q with a %d-character password", email, len(password))
			}
		})
	}
	// Two releases, two admins.
	first, _ := smokeAdmin(t, find(render(t), "Secret", secret).Object)
	second, _ := smokeAdmin(t, find(render(t), "Secret", secret).Object)
	if first == second {
		t.Errorf("two renders drew the same admin %s", first)
	}
}

func smokeAdmin(t *testing.T, secret map[string]any) (email, password string) {
	t.Helper()
	data, _, _ := unstructured.NestedStringMap(secret, "data")
	decode := func(key string) string {
		raw, err := base64.StdEncoding.DecodeString(data[key])
		if err != nil {
			t.Fatalf("smoke admin Secret, %s: %v", key, err)
		}
		return string(raw)
	}
	return decode("email"), decode("password")
}

// TestTheSmokeAdminSurvivesUpgrades: a real install and upgrade against the
// API server; the upgrade reads the generated admin back (lookup) instead of
// drawing a new one, which would leave the account of the old one behind.
func TestTheSmokeAdminSurvivesUpgrades(t *testing.T) {
	kc := kubeconfig(t)
	const release, ns = "smoke", "smoke-admin"
	install := func(verb string, values ...string) {
		t.Helper()
		args := append([]string{verb, release, ".", "--kubeconfig", kc, "--namespace", ns, "--create-namespace",
			"-f", "values-staging.yaml", "--set", "smokeTest.enabled=true,smokeTest.inboxURL=http://mailpit.mail:8025"}, values...)
		if _, err := helm(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	client, err := dynamic.NewForConfig(apiServer.Config)
	if err != nil {
		t.Fatal(err)
	}
	secrets := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ns)
	admin := func() string {
		t.Helper()
		s, err := secrets.Get(context.Background(), release+"-smoke-admin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		email, password := smokeAdmin(t, s.Object)
		return email + " " + password
	}
	install("install")
	t.Cleanup(func() { _, _ = helm(t, "uninstall", release, "--kubeconfig", kc, "--namespace", ns) })
	first := admin()
	install("upgrade", "--set", "common.logLevel=debug")
	if admin() != first {
		t.Error("helm upgrade drew a new smoke admin")
	}
	if fields := strings.Fields(first); len(fields) != 2 || fields[0] == "admin@kshop.local" || fields[1] == "admin-password" {
		t.Errorf("smoke admin %q", first)
	}
}
