// The chart's checks, run by make test: helm lint, the schema, and every
// rendered object applied with a server-side dry run and strict field
// validation to a real kube-apiserver (hack/kube-tools.sh builds it).
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const namespace = "kshop"

// kubeVersion is what helm renders for; hack/kube-tools.sh builds the same API server.
const kubeVersion = "v1.37.2"

var apiServer *rest.Config

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" || os.Getenv("KSHOP_HELM") == "" {
		fmt.Fprintln(os.Stderr, "chart tests need KUBEBUILDER_ASSETS (kube-apiserver and etcd) and KSHOP_HELM (helm): "+
			"run them with `make test`, or export KUBEBUILDER_ASSETS=$(hack/kube-tools.sh) KSHOP_HELM=$(hack/tools.sh helm)")
		os.Exit(1)
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start kube-apiserver and etcd:", err)
		os.Exit(1)
	}
	apiServer = cfg
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Getenv("KSHOP_HELM"), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valueSets are the ways the chart is installed.
var valueSets = map[string][]string{
	"default": nil,
	"kind":    {"-f", "values-kind.yaml"},
	"staging": {"-f", "values-staging.yaml"},
}

func TestLintStrict(t *testing.T) {
	for name, values := range valueSets {
		if out, err := helm(t, append([]string{"lint", "--strict", "."}, values...)...); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

func render(t *testing.T, values ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "kshop", ".", "--namespace", namespace, "--kube-version", kubeVersion}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objects []*unstructured.Unstructured
	reader := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := reader.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objects
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}
}

// applyDryRun sends every object to the API server as a server-side dry run
// with strict field validation: unknown fields, wrong types and invalid values
// are errors, as they would be at install time.
func applyDryRun(t *testing.T, objects []*unstructured.Unstructured) error {
	t.Helper()
	ctx := context.Background()
	client, err := dynamic.NewForConfig(apiServer)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(apiServer)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace}}}
	nsMapping, _ := mapper.RESTMapping(ns.GroupVersionKind().GroupKind(), "v1")
	_, _ = client.Resource(nsMapping.Resource).Create(ctx, ns, metav1.CreateOptions{})

	var errs []error
	for _, obj := range objects {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err))
			continue
		}
		resource := client.Resource(mapping.Resource)
		var target dynamic.ResourceInterface = resource
		if mapping.Scope.Name() == "namespace" {
			target = resource.Namespace(namespace)
		}
		if _, err := target.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

func count(objects []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objects {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

func TestEveryRenderedObjectIsAcceptedByTheAPIServer(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			objects := render(t, values...)
			if err := applyDryRun(t, objects); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"Deployment": 5, "Service": 5, "ServiceAccount": 5, "ConfigMap": 5, "NetworkPolicy": 6}
			if name == "staging" {
				want["HorizontalPodAutoscaler"], want["PodDisruptionBudget"] = 5, 5
			} else {
				want["HorizontalPodAutoscaler"], want["PodDisruptionBudget"] = 0, 0
			}
			for kind, n := range want {
				if got := count(objects, kind); got != n {
					t.Errorf("%d %s objects, want %d", got, kind, n)
				}
			}
		})
	}
}

// The dry run must be able to fail: a typo'd field in an otherwise valid
// Deployment is refused.
func TestTheDryRunRejectsUnknownFields(t *testing.T) {
	objects := render(t)
	for _, o := range objects {
		if o.GetKind() == "Deployment" {
			_ = unstructured.SetNestedField(o.Object, int64(2), "spec", "replicass")
			if err := applyDryRun(t, []*unstructured.Unstructured{o}); err == nil || !strings.Contains(err.Error(), "replicass") {
				t.Fatalf("a Deployment with spec.replicass was accepted: %v", err)
			}
			return
		}
	}
	t.Fatal("no Deployment rendered")
}

func TestTheSchemaRejectsTyposAndBadValues(t *testing.T) {
	for name, set := range map[string]string{
		"typo in a service key":  "services.gateway.replicass=2",
		"unknown top-level key":  "imagePullPolicy=Always",
		"unknown service":        "services.payments.enabled=true",
		"bad pull policy":        "image.pullPolicy=Sometimes",
		"port below 1024":        "services.auth.port=80",
		"env not KSHOP_":         "services.order.env.PATH=/tmp",
		"TLS mode that is not":   "connections.smtp.tls=ssl",
		"dependency not allowed": "services.mail.allowTo={postgresql,mongodb}",
	} {
		if _, err := helm(t, "template", "kshop", ".", "--kube-version", kubeVersion, "--set", set); err == nil {
			t.Errorf("%s: --set %s was accepted", name, set)
		} else if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
			t.Errorf("%s: failed, but not on the schema: %v", name, err)
		}
	}
}

func TestConfigChangesRollThePods(t *testing.T) {
	checksum := func(values ...string) string {
		for _, o := range render(t, values...) {
			if o.GetKind() == "Deployment" && o.GetName() == "kshop-order" {
				v, _, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
				return v
			}
		}
		t.Fatal("no order Deployment")
		return ""
	}
	if checksum() == checksum("--set", "common.logLevel=debug") {
		t.Fatal("a configuration change does not change the pods' checksum annotation")
	}
}
