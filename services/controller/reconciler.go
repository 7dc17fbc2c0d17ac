package controller

import (
	"cmp"
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kshop/kshop/services/platform/tokens"
)

// The Secret's label and key: auth mounts the key and reads jwks.json. The
// gateway's identity keys carry a label of their own, so that whoever looks
// for auth's keys by label finds those alone.
const (
	JWKSLabel         = "kshop.io/jwks"
	IdentityKeysLabel = "kshop.io/identity-keys"
	JWKSKey           = "jwks.json"
)

// JWKSReconciler keeps the signing keys in the Secret Namespace/SecretName
// rotated, and their public half in the ConfigMap PublicConfigMap when set.
// One runs for auth's access-token keys, one for the gateway's identity keys.
type JWKSReconciler struct {
	Client     client.Client
	Namespace  string
	SecretName string
	// PublicConfigMap, when set, names a ConfigMap kept holding the public
	// keys (jwks.json): what the verifiers mount, so that they never see a
	// private key (the gateway's identity keys: product and order mount it).
	PublicConfigMap string
	// Name names the controller (metrics, logs); empty: "jwks".
	Name string
	// Label marks the Secret and the ConfigMap it creates; empty: JWKSLabel.
	Label  string
	Policy RotationPolicy
	// OwnerDeployment, when set, names the Deployment (of Namespace) that owns
	// the Secret the reconciler creates, so deleting it (helm uninstall)
	// deletes the keys too; Reader reads it without a cache (get, not watch).
	OwnerDeployment string
	Reader          client.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (r *JWKSReconciler) label() string { return cmp.Or(r.Label, JWKSLabel) }

func (r *JWKSReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile rotates the keys of one Secret and asks to run again when the next
// change is due.
func (r *JWKSReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var secret corev1.Secret
	if err := r.Client.Get(ctx, req.NamespacedName, &secret); err != nil {
		if apierrors.IsNotFound(err) && req.Name == r.SecretName && req.Namespace == r.Namespace {
			return ctrl.Result{}, r.EnsureSecret(ctx)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var set tokens.KeySet
	if raw := secret.Data[JWKSKey]; len(raw) > 0 {
		parsed, err := tokens.ParseJWKS(raw)
		if err != nil {
			// Never overwrite keys we cannot read: tokens signed with them would die.
			return ctrl.Result{}, fmt.Errorf("secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		set = parsed
	}
	now := r.now()
	rotated, changed, err := Rotate(set, now, r.Policy)
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		doc, err := rotated.MarshalJWKS(true)
		if err != nil {
			return ctrl.Result{}, err
		}
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		secret.Data[JWKSKey] = doc
		if err := r.Client.Update(ctx, &secret); err != nil {
			return ctrl.Result{}, fmt.Errorf("update secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("signing keys rotated", "secret", secret.Name, "keys", len(rotated.Keys))
	}
	if err := r.publish(ctx, rotated); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: NextChange(rotated, now, r.Policy).Sub(now)}, nil
}

// publish makes the public ConfigMap hold set's public keys, creating it
// (owned as the Secret is) when missing. A key reaches it in the same pass
// that adds it to the Secret, so it is published for the whole propagation
// delay before it signs.
func (r *JWKSReconciler) publish(ctx context.Context, set tokens.KeySet) error {
	if r.PublicConfigMap == "" {
		return nil
	}
	doc, err := set.Public().MarshalJWKS(false)
	if err != nil {
		return err
	}
	var cm corev1.ConfigMap
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.PublicConfigMap}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.PublicConfigMap, Labels: map[string]string{r.label(): "public"}},
			Data:       map[string]string{JWKSKey: string(doc)},
		}
		owners, err := r.owners(ctx)
		if err != nil {
			return err
		}
		cm.OwnerReferences = owners
		if err := r.Client.Create(ctx, &cm); err != nil {
			return fmt.Errorf("create configmap %s/%s: %w", r.Namespace, r.PublicConfigMap, err)
		}
		ctrl.LoggerFrom(ctx).Info("public keys published", "configmap", r.PublicConfigMap, "keys", len(set.Keys))
		return nil
	case err != nil:
		return err
	}
	if cm.Data[JWKSKey] == string(doc) {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[JWKSKey] = string(doc)
	if err := r.Client.Update(ctx, &cm); err != nil {
		return fmt.Errorf("update configmap %s/%s: %w", r.Namespace, r.PublicConfigMap, err)
	}
	ctrl.LoggerFrom(ctx).Info("public keys published", "configmap", r.PublicConfigMap, "keys", len(set.Keys))
	return nil
}

// owners are the owner references of what the reconciler creates: the
// controller's Deployment when OwnerDeployment is set.
func (r *JWKSReconciler) owners(ctx context.Context) ([]metav1.OwnerReference, error) {
	if r.OwnerDeployment == "" {
		return nil, nil
	}
	var owner appsv1.Deployment
	if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.OwnerDeployment}, &owner); err != nil {
		return nil, fmt.Errorf("the Deployment %s/%s that is to own the signing keys: %w", r.Namespace, r.OwnerDeployment, err)
	}
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner.Name, UID: owner.UID}}, nil
}

// EnsureSecret creates the Secret with a first key when it does not exist.
func (r *JWKSReconciler) EnsureSecret(ctx context.Context) error {
	var existing corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.SecretName}, &existing)
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	set, _, err := Rotate(tokens.KeySet{}, r.now(), r.Policy)
	if err != nil {
		return err
	}
	doc, err := set.MarshalJWKS(true)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName, Labels: map[string]string{r.label(): "true"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{JWKSKey: doc},
	}
	owners, err := r.owners(ctx)
	if err != nil {
		return err
	}
	secret.OwnerReferences = owners
	if err := r.Client.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("create secret %s/%s: %w", r.Namespace, r.SecretName, err)
	}
	return r.publish(ctx, set)
}

// SetupWithManager watches its labelled Secret (and public ConfigMap: a
// deleted or edited one is written again), each by name, and creates the
// Secret at start.
func (r *JWKSReconciler) SetupWithManager(mgr manager.Manager) error {
	if err := mgr.Add(manager.RunnableFunc(r.EnsureSecret)); err != nil {
		return err
	}
	secrets, err := watchScoped(mgr, r.Namespace, &corev1.Secret{}, r.label(), r.SecretName, &handler.EnqueueRequestForObject{})
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).Named(cmp.Or(r.Name, "jwks")).WatchesRawSource(secrets)
	if r.PublicConfigMap != "" {
		secret := types.NamespacedName{Namespace: r.Namespace, Name: r.SecretName}
		public, err := watchScoped(mgr, r.Namespace, &corev1.ConfigMap{}, r.label(), r.PublicConfigMap,
			handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: secret}}
			}))
		if err != nil {
			return err
		}
		b = b.WatchesRawSource(public)
	}
	return b.Complete(r)
}
