// Package kubetest checks Kubernetes manifests against a real kube-apiserver
// (with etcd, started by controller-runtime's envtest from KUBEBUILDER_ASSETS,
// which hack/kube-tools.sh fills): every object is sent as a server-side dry run
// with strict field validation, as an install would send it.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"
)

// HowToRun is the message for a test process started without the assets.
const HowToRun = "these tests need KUBEBUILDER_ASSETS (kube-apiserver and etcd) and KSHOP_HELM (helm): " +
	"run them with `make test`, or export KUBEBUILDER_ASSETS=$(hack/kube-tools.sh) KSHOP_HELM=$(hack/tools.sh helm)"

// APIServer is a running kube-apiserver with its etcd.
type APIServer struct {
	Config *rest.Config
	env    *envtest.Environment
}

// Start runs an API server with the CRDs found in crdDirs installed.
func Start(crdDirs ...string) (*APIServer, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New(HowToRun)
	}
	env := &envtest.Environment{CRDDirectoryPaths: crdDirs, ErrorIfCRDPathMissing: len(crdDirs) > 0}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	return &APIServer{Config: cfg, env: env}, nil
}

// Stop stops the API server and etcd.
func (s *APIServer) Stop() error { return s.env.Stop() }

// Decode splits a multi-document YAML stream into objects (empty documents skipped).
func Decode(manifests string) ([]*unstructured.Unstructured, error) {
	var objects []*unstructured.Unstructured
	reader := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := reader.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, fmt.Errorf("decode manifests: %w", err)
		}
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}
}

// DryRun creates namespace for real, then sends every object to it (or to the
// cluster scope) as a server-side dry run with strict field validation. It
// returns every refusal, each naming the object.
func (s *APIServer) DryRun(ctx context.Context, namespace string, objects []*unstructured.Unstructured) error {
	client, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		return err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(s.Config)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace}}}
	if nsMapping, err := mapper.RESTMapping(ns.GroupVersionKind().GroupKind(), "v1"); err == nil {
		_, _ = client.Resource(nsMapping.Resource).Create(ctx, ns, metav1.CreateOptions{})
	}
	var errs []error
	for _, obj := range objects {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err))
			continue
		}
		var target dynamic.ResourceInterface = client.Resource(mapping.Resource)
		if mapping.Scope.Name() == "namespace" {
			target = client.Resource(mapping.Resource).Namespace(namespace)
		}
		if _, err := target.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// CopyChartWithStubs copies the chart in src to dst, leaving out its tests, and
// puts an empty chart of the same name and version in dst/charts for each
// remote dependency of Chart.yaml (WriteStandIns): the registries cannot be
// reached where the tests run, and the stubs let helm render everything of the
// chart's own.
func CopyChartWithStubs(src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		if strings.HasPrefix(rel, "testdata") || strings.HasSuffix(rel, "_test.go") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		return err
	}
	return WriteStandIns(dst)
}

// StandInDescription marks a stand-in's Chart.yaml, so a real dependency is
// never taken for one (or the other way round).
const StandInDescription = "empty stand-in for"

// WriteStandIns puts an empty chart of the same name and version in
// chart/charts for each dependency of chart/Chart.yaml that is not there. Helm
// refuses to install a chart whose dependencies are missing, even those
// switched off; where the registries cannot be reached and every dependency is
// off (the external-infrastructure mode), the stand-ins let it install.
func WriteStandIns(chart string) error {
	deps, err := ChartDependencies(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		return err
	}
	for _, d := range deps {
		stub := filepath.Join(chart, "charts", d.Name)
		if _, err := os.Stat(filepath.Join(stub, "Chart.yaml")); err == nil {
			continue
		}
		if matches, _ := filepath.Glob(filepath.Join(chart, "charts", d.Name+"-*.tgz")); len(matches) > 0 {
			continue // fetched by helm dependency build
		}
		if err := os.MkdirAll(stub, 0o755); err != nil {
			return err
		}
		meta := fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\ndescription: %s %s (nothing of it renders)\n", d.Name, d.Version, StandInDescription, d.Repository)
		if err := os.WriteFile(filepath.Join(stub, "Chart.yaml"), []byte(meta), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Dependency is one entry of a Chart.yaml's dependencies.
type Dependency struct {
	Name       string `json:"name"`
	Alias      string `json:"alias"`
	Version    string `json:"version"`
	Repository string `json:"repository"`
	Condition  string `json:"condition"`
}

// ChartDependencies reads the dependencies of a Chart.yaml.
func ChartDependencies(chartYAML string) ([]Dependency, error) {
	raw, err := os.ReadFile(chartYAML)
	if err != nil {
		return nil, err
	}
	var chart struct {
		Dependencies []Dependency `json:"dependencies"`
	}
	if err := sigsyaml.Unmarshal(raw, &chart); err != nil {
		return nil, fmt.Errorf("%s: %w", chartYAML, err)
	}
	return chart.Dependencies, nil
}
