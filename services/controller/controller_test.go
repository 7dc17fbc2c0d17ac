package controller_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/platform/kubetest"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
)

var apiServer *kubetest.APIServer

func TestMain(m *testing.M) {
	server, err := kubetest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiServer = server
	code := m.Run()
	_ = server.Stop()
	os.Exit(code)
}

var policy = controller.RotationPolicy{Algorithm: tokens.EdDSA, Period: 24 * time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Hour, Grace: 5 * time.Minute}

func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	name := "kshop-" + testenv.RandomSuffix()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// clock is a settable time for simulated days.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func TestTheSecretIsCreatedAndRotatedAcrossSimulatedTime(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{now: t0}
	r := &controller.JWKSReconciler{Client: c, Namespace: ns, SecretName: "kshop-jwks", Policy: policy, Now: clk.Now}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "kshop-jwks"}}

	keysAt := func(at time.Time) tokens.KeySet {
		t.Helper()
		clk.Set(at)
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		var secret corev1.Secret
		if err := c.Get(ctx, req.NamespacedName, &secret); err != nil {
			t.Fatal(err)
		}
		if secret.Labels[controller.JWKSLabel] == "" {
			t.Fatal("the Secret lacks its label")
		}
		set, err := tokens.ParseJWKS(secret.Data[controller.JWKSKey])
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	signer := func(set tokens.KeySet, at time.Time) string {
		k, err := set.SigningKey(at)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}

	day0 := keysAt(t0) // the Secret does not exist yet: created with a signing key
	if len(day0.Keys) != 1 {
		t.Fatalf("created with %d keys", len(day0.Keys))
	}
	first := signer(day0, t0)
	day1 := keysAt(t0.Add(24 * time.Hour))
	if len(day1.Keys) != 2 || signer(day1, t0.Add(24*time.Hour)) != first {
		t.Fatalf("day 1: %d keys; the new key must be published, not signing", len(day1.Keys))
	}
	switched := t0.Add(24*time.Hour + 10*time.Minute)
	afterSwitch := keysAt(switched)
	second := signer(afterSwitch, switched)
	if second == first || len(afterSwitch.Keys) != 2 {
		t.Fatal("after the propagation delay the new key must sign, the old one stay")
	}
	if gone := keysAt(switched.Add(time.Hour + 5*time.Minute)); len(gone.Keys) != 1 || gone.Keys[0].ID != second {
		t.Fatalf("after lifetime + grace only the new key should remain: %d keys", len(gone.Keys))
	}
}

// Two replicas elect one leader on the Lease the chart renders for the release
// (empty, so helm uninstall removes it with the release).
func TestTwoManagersElectOneLeader(t *testing.T) {
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-controller"}}
	if err := c.Create(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	start := func() (manager.Manager, context.CancelFunc, chan error) {
		mgr, err := controller.NewManager(apiServer.Config, controller.Options{
			Namespace: ns, JWKSSecretName: "kshop-jwks", Policy: policy, MetricsAddr: "0", ProbeAddr: "0",
			LeaderElection: true, LeaderElectionID: "shop-controller",
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond,
			SeveralPerProcess: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		return mgr, cancel, done
	}
	a, stopA, doneA := start()
	b, stopB, doneB := start()
	defer func() { stopB(); <-doneB }()

	var leader, follower manager.Manager
	var stopLeader context.CancelFunc
	var leaderDone chan error
	select {
	case <-a.Elected():
		leader, follower, stopLeader, leaderDone = a, b, stopA, doneA
	case <-b.Elected():
		leader, follower, stopLeader, leaderDone = b, a, stopB, doneB
	case <-time.After(20 * time.Second):
		t.Fatal("no manager became leader")
	}
	_ = leader
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(lease), lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("the release's Lease has no holder: %v %+v", err, lease.Spec)
	}
	select {
	case <-follower.Elected():
		t.Fatal("both managers lead")
	case <-time.After(1500 * time.Millisecond):
	}
	// The leader created the Secret.
	testenv.WaitFor(t, 10*time.Second, "the JWKS Secret", func() bool {
		var s corev1.Secret
		return c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "kshop-jwks"}, &s) == nil
	})
	// When the leader stops, the other takes over.
	stopLeader()
	<-leaderDone
	select {
	case <-follower.Elected():
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not take over")
	}
	if follower == a {
		stopA()
		<-doneA
	}
}

// The Secret the controller creates belongs to the controller's Deployment:
// deleting the Deployment (helm uninstall) lets the garbage collector take the
// keys too.
func TestTheSecretBelongsToTheControllerDeployment(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	r := &controller.JWKSReconciler{Client: c, Reader: c, Namespace: ns, SecretName: "shop-jwks", Policy: policy, OwnerDeployment: "shop-controller"}
	if err := r.EnsureSecret(ctx); err == nil || !strings.Contains(err.Error(), "shop-controller") {
		t.Fatalf("without its owner the Secret was made, or the error does not name the owner: %v", err)
	}
	labels := map[string]string{"app": "controller"}
	owner := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-controller"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "kshop/controller"}}},
			},
		},
	}
	if err := c.Create(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureSecret(ctx); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-jwks"}, &secret); err != nil {
		t.Fatal(err)
	}
	refs := secret.OwnerReferences
	if len(refs) != 1 || refs[0].Kind != "Deployment" || refs[0].Name != "shop-controller" || refs[0].UID != owner.UID {
		t.Fatalf("owner references %+v, want the Deployment shop-controller (%s)", refs, owner.UID)
	}
}

// The gateway's identity keys: a Secret of their own, rotated beside auth's
// keys without touching them, and a ConfigMap that holds their public half
// only, updated in the pass that adds a key (so the services know it for the
// whole propagation delay before it signs) and written again when deleted.
func TestIdentityKeysArePublishedWithoutTheirPrivateParts(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := &clock{now: t0}
	identityPolicy := controller.RotationPolicy{Algorithm: tokens.EdDSA, Period: time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Minute, Grace: 5 * time.Minute}
	mgr, err := controller.NewManager(apiServer.Config, controller.Options{
		Namespace: ns, JWKSSecretName: "shop-jwks", Policy: policy,
		IdentitySecretName: "shop-identity-keys", IdentityConfigMap: "shop-identity-keys-public", IdentityPolicy: identityPolicy,
		MetricsAddr: "0", ProbeAddr: "0", Now: clk.Now, SeveralPerProcess: true,
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

	secretKeys := func(name string) tokens.KeySet {
		var secret corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &secret); err != nil {
			return tokens.KeySet{}
		}
		set, err := tokens.ParseJWKS(secret.Data[controller.JWKSKey])
		if err != nil {
			t.Fatalf("secret %s: %v", name, err)
		}
		return set
	}
	published := func() (tokens.KeySet, string) {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-identity-keys-public"}, &cm); err != nil {
			return tokens.KeySet{}, ""
		}
		set, err := tokens.ParseJWKS([]byte(cm.Data[controller.JWKSKey]))
		if err != nil {
			t.Fatalf("public ConfigMap: %v", err)
		}
		return set, cm.Data[controller.JWKSKey]
	}
	ids := func(set tokens.KeySet) string {
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.ID)
		}
		return strings.Join(out, ",")
	}
	samePublicKeys := func() bool {
		private := secretKeys("shop-identity-keys")
		public, _ := published()
		return len(private.Keys) > 0 && ids(private) == ids(public)
	}
	testenv.WaitFor(t, 30*time.Second, "the identity keys and their public half", samePublicKeys)
	private := secretKeys("shop-identity-keys")
	public, raw := published()
	if _, err := private.SigningKey(t0); err != nil {
		t.Fatalf("the Secret holds no private signing key: %v", err)
	}
	for _, k := range public.Keys {
		if k.Private != nil {
			t.Fatal("the public ConfigMap holds a private key")
		}
	}
	if strings.Contains(raw, `"d"`) {
		t.Fatalf("the public ConfigMap carries a private member:\n%s", raw)
	}
	auth := secretKeys("shop-jwks")
	if len(auth.Keys) != 1 || ids(auth) == ids(private) {
		t.Fatalf("auth's keys %q and the gateway's %q must be two sets", ids(auth), ids(private))
	}
	// Looking for auth's keys by their label finds them alone.
	var labelled corev1.SecretList
	if err := c.List(ctx, &labelled, client.InNamespace(ns), client.HasLabels{controller.JWKSLabel}); err != nil {
		t.Fatal(err)
	}
	if len(labelled.Items) != 1 || labelled.Items[0].Name != "shop-jwks" {
		t.Fatalf("%d Secrets labelled %s, want auth's alone", len(labelled.Items), controller.JWKSLabel)
	}

	// Deleted by hand: written again.
	if err := c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-identity-keys-public"}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the deleted public ConfigMap to be written again", samePublicKeys)

	// A period later a new key comes: published with the old one, not yet signing.
	clk.Set(t0.Add(time.Hour + time.Second))
	first := private.Keys[0].ID
	secret := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-identity-keys"}, secret); err != nil {
		t.Fatal(err)
	}
	// Nudge the reconciler (its requeue is an hour of real time away). A merge
	// patch, not an update: the controller may be writing the Secret at this
	// moment, and an update would fail on its resource version.
	nudge := client.MergeFrom(secret.DeepCopy())
	secret.Annotations = map[string]string{"test/nudge": "1"}
	if err := c.Patch(ctx, secret, nudge); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the rotated key to be published", func() bool {
		return samePublicKeys() && len(secretKeys("shop-identity-keys").Keys) == 2
	})
	rotated := secretKeys("shop-identity-keys")
	if k, err := rotated.SigningKey(clk.Now()); err != nil || k.ID != first {
		t.Fatalf("the new key signs before its propagation delay: %v %v", k.ID, err)
	}
	if ids(secretKeys("shop-jwks")) != ids(auth) {
		t.Fatal("rotating the identity keys changed auth's keys")
	}
}

// The manager's cache holds the labelled Secrets only: a password Secret of
// the namespace never reaches the controller's memory, even when something
// lists Secrets through the cache.
func TestTheCacheHoldsNoUnlabelledSecret(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	password := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-postgresql"}, StringData: map[string]string{"password": "s3cret"}}
	if err := c.Create(ctx, password); err != nil {
		t.Fatal(err)
	}
	mgr, err := controller.NewManager(apiServer.Config, controller.Options{
		Namespace: ns, JWKSSecretName: "shop-jwks", Policy: policy, MetricsAddr: "0", ProbeAddr: "0", SeveralPerProcess: true,
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
	var list corev1.SecretList
	testenv.WaitFor(t, 30*time.Second, "the JWKS Secret in the cache", func() bool {
		return mgr.GetCache().List(ctx, &list, client.InNamespace(ns)) == nil && len(list.Items) > 0
	})
	for _, s := range list.Items {
		if s.Labels[controller.JWKSLabel] == "" {
			t.Errorf("the cache holds the unlabelled Secret %s", s.Name)
		}
	}
}

// Only the topology documents named to the controller are kept: a ConfigMap
// that carries the label under another name is neither read nor applied.
func TestOnlyTheNamedTopologyDocumentsAreKept(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(apiServer.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	for _, name := range []string{"shop-rabbitmq-topology", "someone-elses-topology"} {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{controller.TopologyLabel: controller.TopologyRabbitMQ}},
			Data:       map[string]string{controller.TopologyKey: "queues:\n  - {name: q, type: quorum, delete: true}\n"},
		}
		if err := c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	mgr, err := controller.NewManager(apiServer.Config, controller.Options{
		Namespace: ns, JWKSSecretName: "shop-jwks", Policy: policy, MetricsAddr: "0", ProbeAddr: "0", SeveralPerProcess: true,
		TopologyConfigMaps: []string{"shop-rabbitmq-topology"},
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
	status := func(name string) string {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cm); err != nil {
			t.Fatal(err)
		}
		return cm.Annotations[controller.TopologyStatusAnnotation]
	}
	// No broker is configured: the named document is reported NotConfigured.
	testenv.WaitFor(t, 30*time.Second, "the named document's status", func() bool {
		return strings.Contains(status("shop-rabbitmq-topology"), controller.ReasonNotConfigured)
	})
	// Give the other one the time the first one took, twice over.
	time.Sleep(2 * time.Second)
	if s := status("someone-elses-topology"); s != "" {
		t.Fatalf("the unnamed document was handled: %s", s)
	}
}
