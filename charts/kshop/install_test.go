package chart_test

import (
	"context"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfig writes a kubeconfig for the test's API server, for helm.
func kubeconfig(t *testing.T) string {
	t.Helper()
	cfg := apiServer.Config
	file := filepath.Join(t.TempDir(), "kubeconfig")
	err := clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"test": {Server: cfg.Host, CertificateAuthorityData: cfg.CAData}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"test": {ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}},
		Contexts:       map[string]*clientcmdapi.Context{"test": {Cluster: "test", AuthInfo: "test"}},
		CurrentContext: "test",
	}, file)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// A real `helm install` and `helm upgrade` against the API server (no pods
// run: nothing schedules them): .Capabilities come from the server, and lookup
// reads what the install created.
func TestInstallAndUpgrade(t *testing.T) {
	kc := kubeconfig(t)
	const release, ns = "up", "upgrades"
	install := func(verb string, values ...string) {
		t.Helper()
		args := append([]string{verb, release, ".", "--kubeconfig", kc, "--namespace", ns, "--create-namespace", "-f", "values-staging.yaml"}, values...)
		if _, err := helm(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	client, err := dynamic.NewForConfig(apiServer.Config)
	if err != nil {
		t.Fatal(err)
	}
	secrets := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ns)
	monitors := client.Resource(schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}).Namespace(ns)
	redisPassword := func() string {
		t.Helper()
		s, err := secrets.Get(context.Background(), release+"-redis-cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := s.Object["data"].(map[string]any)
		p, _ := data["redis-password"].(string)
		if p == "" {
			t.Fatal("the Redis password Secret has no redis-password")
		}
		return p
	}

	install("install")
	t.Cleanup(func() { _, _ = helm(t, "uninstall", release, "--kubeconfig", kc, "--namespace", ns) })
	first := redisPassword()
	// This API server serves monitoring.coreos.com/v1 (the test's CRDs), so
	// staging's serviceMonitor.enabled renders them.
	list, err := monitors.List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 6 {
		t.Errorf("%d ServiceMonitors installed, want 6 (5 services, the controller)", len(list.Items))
	}

	// An upgrade that changes a value keeps the generated password: the Redis
	// Cluster keeps the one it started with, and so do the services.
	install("upgrade", "--set", "common.logLevel=debug")
	if redisPassword() != first {
		t.Error("helm upgrade generated a new Redis password")
	}
}
