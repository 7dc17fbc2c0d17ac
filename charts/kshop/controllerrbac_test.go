package chart_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

// controllerEnv is the controller container's environment as rendered.
func controllerEnv(t *testing.T, objects []*unstructured.Unstructured, release string) map[string]string {
	t.Helper()
	d := find(objects, "Deployment", release+"-controller")
	if d == nil {
		t.Fatal("no controller Deployment rendered")
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	env := map[string]string{}
	for _, c := range containers {
		vars, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
		for _, v := range vars {
			m := v.(map[string]any)
			if value, ok := m["value"].(string); ok {
				env[m["name"].(string)] = value
			}
		}
	}
	return env
}

// The controller runs under exactly the Role the chart gives it (rendered by
// helm, bound to its ServiceAccount, the reconcilers impersonating that
// account against a real API server): it creates and rotates both key Secrets,
// publishes the identity keys' public half, leads through the release's Lease
// and writes the topology documents' status; and it cannot read a Secret it
// does not keep, by name or by listing, labelled or not.
func TestTheControllerWorksUnderTheChartsRoleAndReadsNoOtherSecret(t *testing.T) {
	ctx := context.Background()
	admin, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	const release = "shop"
	ns := "rbac-" + testenv.RandomSuffix()
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	objects := renderAs(t, release, ns)
	for _, want := range []struct{ kind, name string }{
		{"ServiceAccount", release + "-controller"}, {"Role", release + "-controller"}, {"RoleBinding", release + "-controller"},
		{"Lease", release + "-controller"}, {"Deployment", release + "-controller"},
		{"ConfigMap", release + "-kafka-topology"}, {"ConfigMap", release + "-rabbitmq-topology"},
	} {
		obj := find(objects, want.kind, want.name)
		if obj == nil {
			t.Fatalf("%s %s not rendered", want.kind, want.name)
		}
		obj.SetNamespace(ns)
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("create %s %s: %v", want.kind, want.name, err)
		}
	}
	// Secrets of the namespace that are not the controller's: a password, and
	// one that even carries the keys' label.
	others := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: release + "-postgresql"}, StringData: map[string]string{"password": "s3cret"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "another-jwks", Labels: map[string]string{controller.JWKSLabel: "true"}}, StringData: map[string]string{"jwks.json": "{}"}},
	}
	for _, s := range others {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	env := controllerEnv(t, objects, release)
	account := "system:serviceaccount:" + ns + ":" + release + "-controller"
	asController := rest.CopyConfig(apiServer.Config)
	asController.Impersonate = rest.ImpersonationConfig{UserName: account, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	policy := controller.RotationPolicy{Algorithm: tokens.EdDSA, Period: 24 * time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Hour, Grace: 5 * time.Minute}
	var topologies []string
	if v := env["KSHOP_CONTROLLER_TOPOLOGY_CONFIGMAPS"]; v != "" {
		topologies = strings.Split(v, ",")
	}
	mgr, err := controller.NewManager(asController, controller.Options{
		Namespace: ns, JWKSSecretName: env["KSHOP_CONTROLLER_JWKS_SECRET"], JWKSOwner: env["KSHOP_CONTROLLER_JWKS_OWNER"], Policy: policy,
		IdentitySecretName: env["KSHOP_CONTROLLER_IDENTITY_SECRET"], IdentityConfigMap: env["KSHOP_CONTROLLER_IDENTITY_CONFIGMAP"], IdentityPolicy: policy,
		LeaderElection: true, LeaderElectionID: env["KSHOP_CONTROLLER_LEADER_ELECTION_ID"],
		TopologyConfigMaps: topologies, TopologyResync: time.Minute,
		MetricsAddr: "0", ProbeAddr: "0", SeveralPerProcess: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	keys := func(name string) bool {
		var s corev1.Secret
		if admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s) != nil {
			return false
		}
		set, err := tokens.ParseJWKS(s.Data[controller.JWKSKey])
		return err == nil && len(set.Keys) > 0
	}
	testenv.WaitFor(t, 30*time.Second, "the JWKS Secret", func() bool { return keys(release + "-jwks") })
	testenv.WaitFor(t, 30*time.Second, "the identity keys' Secret", func() bool { return keys(release + "-identity-keys") })
	testenv.WaitFor(t, 30*time.Second, "the identity keys' public ConfigMap", func() bool {
		var cm corev1.ConfigMap
		return admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: release + "-identity-keys-public"}, &cm) == nil && cm.Data[controller.JWKSKey] != ""
	})
	if len(topologies) != 2 {
		t.Fatalf("the controller is told to keep %q, want the two topology documents", topologies)
	}
	for _, name := range topologies {
		// No broker is configured here: the status says so, written under the Role.
		testenv.WaitFor(t, 30*time.Second, "the status of "+name, func() bool {
			var cm corev1.ConfigMap
			return admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cm) == nil &&
				strings.Contains(cm.Annotations[controller.TopologyStatusAnnotation], controller.ReasonNotConfigured)
		})
	}
	// Its watch works under the Role: a deleted key Secret is made again.
	if err := admin.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: release + "-jwks"}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the deleted JWKS Secret to be made again", func() bool { return keys(release + "-jwks") })

	// What it cannot do: read any other Secret, by name or by a list.
	as, err := client.New(asController, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range others {
		var got corev1.Secret
		if err := as.Get(ctx, client.ObjectKeyFromObject(s), &got); !apierrors.IsForbidden(err) {
			t.Errorf("the controller's account reads the Secret %s: %v", s.Name, err)
		}
	}
	var list corev1.SecretList
	if err := as.List(ctx, &list, client.InNamespace(ns), client.HasLabels{controller.JWKSLabel}); !apierrors.IsForbidden(err) {
		t.Errorf("the controller's account lists the labelled Secrets (%d): %v", len(list.Items), err)
	}
	can := func(verb, resource, name string) bool {
		t.Helper()
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource, Name: name},
		}}
		if err := as.Create(ctx, review); err != nil {
			t.Fatal(err)
		}
		return review.Status.Allowed
	}
	for _, c := range []struct {
		verb, resource, name string
		allowed              bool
	}{
		{"get", "secrets", release + "-jwks", true},
		{"update", "secrets", release + "-identity-keys", true},
		{"get", "secrets", release + "-postgresql", false},
		{"list", "secrets", "", false},
		{"watch", "secrets", "", false},
		{"update", "secrets", release + "-postgresql", false},
		{"delete", "secrets", release + "-jwks", false},
		{"list", "configmaps", "", false},
		{"update", "configmaps", "kube-root-ca.crt", false},
		{"patch", "configmaps", release + "-rabbitmq-topology", true},
	} {
		if got := can(c.verb, c.resource, c.name); got != c.allowed {
			t.Errorf("may the controller %s %s %q? %v, want %v", c.verb, c.resource, c.name, got, c.allowed)
		}
	}
}

// A topology document of the operator's own is kept only when named in
// controller.extraTopologyConfigMaps: the Role names it, and so does the
// controller's list.
func TestExtraTopologyDocumentsAreNamedInTheRole(t *testing.T) {
	objects := render(t, "--set", "controller.extraTopologyConfigMaps={my-topics}")
	role := find(objects, "Role", releaseName+"-controller")
	if role == nil {
		t.Fatal("no controller Role")
	}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	named := false
	for _, r := range rules {
		names, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resourceNames")
		resources, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
		if slices.Contains(resources, "configmaps") && slices.Contains(names, "my-topics") {
			named = true
		}
	}
	if !named {
		t.Errorf("the Role does not name my-topics: %v", rules)
	}
	want := releaseName + "-kafka-topology," + releaseName + "-rabbitmq-topology,my-topics"
	if got := controllerEnv(t, objects, releaseName)["KSHOP_CONTROLLER_TOPOLOGY_CONFIGMAPS"]; got != want {
		t.Errorf("the controller keeps %q, want %q", got, want)
	}
}
