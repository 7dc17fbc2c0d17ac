package controller

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// labelled selects the objects that carry label, whatever its value.
func labelled(label string) labels.Selector {
	req, err := labels.NewRequirement(label, selection.Exists, nil)
	if err != nil {
		// The labels are this package's constants: a bad one is a programming error.
		panic(fmt.Sprintf("label %q: %v", label, err))
	}
	return labels.NewSelector().Add(*req)
}

// watchScoped is a watch on the objects of obj's kind in namespace that carry
// label and, when name is set, are called name. It runs on an informer of its
// own rather than the manager's cache, because one cache holds one selector
// per kind and the controller needs several: list and watch then carry a
// metadata.name field selector, which Kubernetes authorizes against a Role's
// resourceNames, so the Role names every Secret and ConfigMap the controller
// reads and no other is ever sent to it.
func watchScoped(mgr manager.Manager, namespace string, obj client.Object, label, name string, h handler.EventHandler, preds ...predicate.Predicate) (source.Source, error) {
	opts := cache.Options{
		Scheme:               mgr.GetScheme(),
		Mapper:               mgr.GetRESTMapper(),
		DefaultNamespaces:    map[string]cache.Config{namespace: {}},
		DefaultLabelSelector: labelled(label),
	}
	if name != "" {
		opts.DefaultFieldSelector = fields.OneTermEqualSelector("metadata.name", name)
	}
	c, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return nil, fmt.Errorf("the cache of %s: %w", name, err)
	}
	if err := mgr.Add(c); err != nil {
		return nil, err
	}
	return source.Kind(c, obj, h, preds...), nil
}

// Reads of these kinds go to the API server by name (a GET the Role allows for
// the named objects) instead of through the manager's cache, whose informer
// would list every Secret or ConfigMap of the namespace.
var uncached = []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}
