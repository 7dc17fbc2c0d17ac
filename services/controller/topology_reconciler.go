package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// TopologyBroker makes one broker match a topology document.
type TopologyBroker interface {
	Apply(ctx context.Context, doc string) (Outcome, error)
}

// TopologyStatus is what the controller writes to a topology ConfigMap's
// TopologyStatusAnnotation: a Ready condition as Kubernetes objects have, and
// the problems behind it when it is False.
type TopologyStatus struct {
	Conditions []metav1.Condition `json:"conditions"`
	Problems   []string           `json:"problems,omitempty"`
}

// Reasons of the Ready condition and of the Events.
const (
	ReasonSynced            = "Synced"
	ReasonCannotChange      = "CannotChange"
	ReasonInvalidDocument   = "InvalidDocument"
	ReasonBrokerUnavailable = "BrokerUnavailable"
	ReasonNotConfigured     = "NotConfigured"
	ReasonChanged           = "Changed"
)

// TopologyReconciler keeps the brokers matching the topology ConfigMaps of
// one namespace, and re-checks every Resync so hand-made drift is repaired.
type TopologyReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// Brokers by label value (TopologyKafka, TopologyRabbitMQ); a kind without
	// one is reported NotConfigured.
	Brokers map[string]TopologyBroker
	Resync  time.Duration
	// Namespace holds the documents; Names, when set, are the only ones kept
	// (each watched by name, so the Role can name them); empty: every
	// labelled ConfigMap of Namespace.
	Namespace string
	Names     []string
}

// Reconcile applies one ConfigMap's document and records the outcome.
func (r *TopologyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cm corev1.ConfigMap
	if err := r.Client.Get(ctx, req.NamespacedName, &cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	kind := cm.Labels[TopologyLabel]
	if kind == "" {
		// Its label was taken off: no longer a document to keep.
		return ctrl.Result{}, nil
	}
	broker, ok := r.Brokers[kind]
	var status TopologyStatus
	previous := readStatus(&cm)
	// A copy: SetStatusCondition edits in place, and previous is compared below.
	status.Conditions = slices.Clone(previous.Conditions)
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: ReasonSynced}
	var applyErr error
	switch {
	case !ok:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonNotConfigured
		ready.Message = fmt.Sprintf("%s=%q: the controller has no broker of that kind configured (kafka needs KSHOP_CONTROLLER_KAFKA_BROKERS, rabbitmq KSHOP_CONTROLLER_AMQP_URL)", TopologyLabel, kind)
	default:
		out, err := broker.Apply(ctx, cm.Data[TopologyKey])
		var invalid *InvalidDocumentError
		switch {
		case errors.As(err, &invalid):
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonInvalidDocument, err.Error()
		case err != nil:
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonBrokerUnavailable, err.Error()
			applyErr = err
		case len(out.Problems) > 0:
			ready.Status, ready.Reason = metav1.ConditionFalse, ReasonCannotChange
			ready.Message = fmt.Sprintf("%d of the document's requests cannot be carried out; see problems", len(out.Problems))
			status.Problems = out.Problems
		default:
			ready.Message = "the broker matches the document"
		}
		for _, change := range out.Changes {
			r.Recorder.Eventf(&cm, nil, corev1.EventTypeNormal, ReasonChanged, "Reconcile", "%s", change)
		}
		ctrl.LoggerFrom(ctx).Info("topology applied", "configmap", cm.Name, "kind", kind, "changes", out.Changes, "problems", out.Problems, "error", err)
	}
	meta.SetStatusCondition(&status.Conditions, ready)

	// Warn once per new trouble, not on every resync.
	if ready.Status == metav1.ConditionFalse && ready.Reason != ReasonBrokerUnavailable {
		if ready.Reason != ReasonCannotChange {
			if old := meta.FindStatusCondition(previous.Conditions, "Ready"); old == nil || old.Reason != ready.Reason || old.Message != ready.Message {
				r.Recorder.Eventf(&cm, nil, corev1.EventTypeWarning, ready.Reason, "Reconcile", "%s", ready.Message)
			}
		}
		for _, problem := range status.Problems {
			if !slices.Contains(previous.Problems, problem) {
				r.Recorder.Eventf(&cm, nil, corev1.EventTypeWarning, ReasonCannotChange, "Reconcile", "%s", problem)
			}
		}
	}
	if err := r.writeStatus(ctx, &cm, previous, status); err != nil {
		return ctrl.Result{}, errors.Join(applyErr, err)
	}
	if applyErr != nil {
		// The workqueue retries with backoff until the broker answers.
		return ctrl.Result{}, applyErr
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

func readStatus(cm *corev1.ConfigMap) TopologyStatus {
	var s TopologyStatus
	if raw := cm.Annotations[TopologyStatusAnnotation]; raw != "" {
		// A hand-edited, unreadable status is simply replaced.
		_ = json.Unmarshal([]byte(raw), &s)
	}
	return s
}

// writeStatus patches the annotation when the status changed, so a quiet
// resync writes nothing.
func (r *TopologyReconciler) writeStatus(ctx context.Context, cm *corev1.ConfigMap, previous, status TopologyStatus) error {
	before, _ := json.Marshal(previous)
	after, err := json.Marshal(status)
	if err != nil {
		return err
	}
	if string(before) == string(after) {
		return nil
	}
	patch := client.MergeFrom(cm.DeepCopy())
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[TopologyStatusAnnotation] = string(after)
	if err := r.Client.Patch(ctx, cm, patch); err != nil {
		return fmt.Errorf("write the status of configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}

// SetupWithManager watches the labelled ConfigMaps (those of Names alone when
// set). The controller's own status writes change only an annotation and do
// not wake it again.
func (r *TopologyReconciler) SetupWithManager(mgr manager.Manager) error {
	contentChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		before, okBefore := e.ObjectOld.(*corev1.ConfigMap)
		after, okAfter := e.ObjectNew.(*corev1.ConfigMap)
		if !okBefore || !okAfter {
			return true
		}
		return !maps.Equal(before.Data, after.Data) || !maps.Equal(before.Labels, after.Labels)
	}}
	names := r.Names
	if len(names) == 0 {
		names = []string{""} // one watch on every labelled ConfigMap
	}
	b := ctrl.NewControllerManagedBy(mgr).Named("topology")
	for _, name := range names {
		src, err := watchScoped(mgr, r.Namespace, &corev1.ConfigMap{}, TopologyLabel, name, &handler.EnqueueRequestForObject{}, contentChanged)
		if err != nil {
			return err
		}
		b = b.WatchesRawSource(src)
	}
	return b.Complete(r)
}

// describeBrokers says which kinds are served, for the start-up log.
func describeBrokers(brokers map[string]TopologyBroker) string {
	kinds := slices.Sorted(maps.Keys(brokers))
	if len(kinds) == 0 {
		return "none"
	}
	return strings.Join(kinds, ", ")
}
