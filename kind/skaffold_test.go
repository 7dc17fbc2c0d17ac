// The kind + skaffold developer loop, checked where Docker and kind cannot run:
// skaffold reads its configuration for every profile (diagnose), renders the
// manifests offline, and everything it renders is accepted by a real
// kube-apiserver (server-side dry run, strict field validation). The local
// profile (the test cluster, no Docker) also builds an image for real, into a
// registry of the test's own.
package kind_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/kubetest"
)

var (
	apiServer *kubetest.APIServer
	workspace string // a copy of the repository's deploy files, the chart's dependencies stubbed
)

// images stand in for what skaffold would have built.
var images = []string{"kshop/gateway:test", "kshop/auth:test", "kshop/product:test", "kshop/order:test", "kshop/mail:test", "kshop/loadgen:test", "kshop/controller:test"}

func TestMain(m *testing.M) {
	if os.Getenv("KSHOP_SKAFFOLD") == "" || os.Getenv("KSHOP_HELM") == "" {
		fmt.Fprintln(os.Stderr, "skaffold checks need KSHOP_SKAFFOLD and KSHOP_HELM: run them with `make test`, or export "+
			"KSHOP_SKAFFOLD=$(hack/tools.sh skaffold) KSHOP_HELM=$(hack/tools.sh helm) KUBEBUILDER_ASSETS=$(hack/kube-tools.sh)")
		os.Exit(1)
	}
	dir, err := prepareWorkspace()
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare the workspace:", err)
		os.Exit(1)
	}
	workspace = dir
	server, err := kubetest.Start("../charts/kshop/testdata/crds")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiServer = server
	code := m.Run()
	_ = server.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func prepareWorkspace() (string, error) {
	dir, err := os.MkdirTemp("", "kshop-skaffold-")
	if err != nil {
		return "", err
	}
	for _, f := range []string{"skaffold.yaml", "Dockerfile", ".dockerignore", "manifests/loadgen/job.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, kubetest.CopyChartWithStubs("../charts/kshop", filepath.Join(dir, "charts", "kshop"))
}

func skaffold(t *testing.T, args ...string) string {
	t.Helper()
	return skaffoldIn(t, workspace, nil, args...)
}

func skaffoldIn(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Getenv("KSHOP_SKAFFOLD"), args...)
	cmd.Dir = dir
	// skaffold runs helm from PATH, and must not phone home.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(os.Getenv("KSHOP_HELM"))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SKAFFOLD_UPDATE_CHECK=false", "SKAFFOLD_INTERACTIVE=false")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("skaffold %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

var profiles = []string{"light", "full", "staging", "debug", "local"}

func TestDiagnoseEveryProfile(t *testing.T) {
	for _, p := range profiles {
		out := skaffold(t, "diagnose", "--yaml-only", "-m", "kshop", "-p", p)
		if !strings.Contains(out, "apiVersion: skaffold/v4beta14") {
			t.Errorf("%s: diagnose did not print the effective configuration:\n%s", p, out)
		}
		if p == "debug" && strings.Count(out, "GCFLAGS: ") != 5 {
			t.Errorf("debug: the five service builds should get GCFLAGS:\n%s", out)
		}
		if p == "staging" && strings.Contains(out, "portForward") {
			t.Error("staging keeps port-forwards")
		}
		if p == "local" {
			checkLocalProfile(t, out)
		} else if strings.Count(out, "dockerfile: Dockerfile") != 7 || strings.Contains(out, "custom:") {
			t.Errorf("%s: every image should build from the Dockerfile:\n%s", p, out)
		}
	}
	if out := skaffold(t, "diagnose", "--yaml-only", "-m", "loadgen"); !strings.Contains(out, "manifests/loadgen/job.yaml") {
		t.Errorf("the loadgen config:\n%s", out)
	}
	if out := skaffold(t, "diagnose", "--yaml-only", "-m", "loadgen", "-p", "local"); !strings.Contains(out, "kubeContext: kshop-local") {
		t.Errorf("the loadgen config on the test cluster:\n%s", out)
	}
}

// checkLocalProfile reads the effective configuration of the local profile:
// no Docker anywhere, every image from hack/image.sh, pushed, deployed to the
// test cluster with its values.
func checkLocalProfile(t *testing.T, out string) {
	t.Helper()
	for _, svc := range []string{"gateway", "auth", "product", "order", "mail", "loadgen", "controller"} {
		if !strings.Contains(out, "buildCommand: hack/image.sh "+svc+" \"$IMAGE\"") {
			t.Errorf("local: kshop/%s is not built by hack/image.sh", svc)
		}
	}
	for _, want := range []string{"push: true", "inputDigest: {}", "kubeContext: kshop-local", "/charts/kshop/values-local.yaml",
		"image.pullPolicy: IfNotPresent", "- services/**", "- hack/ociimage/**"} {
		if !strings.Contains(out, want) {
			t.Errorf("local: no %q in\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"docker:", "dockerfile:", "portForward", "values-kind.yaml", "kind-kshop"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("local: %q in\n%s", unwanted, out)
		}
	}
}

func TestRenderEveryProfileForTheAPIServer(t *testing.T) {
	for _, p := range profiles {
		t.Run(p, func(t *testing.T) {
			out := skaffold(t, "render", "--offline=true", "--digest-source=tag", "-m", "kshop", "-p", p, "--images", strings.Join(images, ","))
			objects, err := kubetest.Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(objects) < 20 {
				t.Fatalf("rendered only %d objects", len(objects))
			}
			if err := apiServer.DryRun(context.Background(), "kshop", objects); err != nil {
				t.Fatal(err)
			}
			// What skaffold built is what the pods run.
			for _, img := range append(images[:5:5], "kshop/controller:test") {
				if !strings.Contains(out, "image: "+img) {
					t.Errorf("no container runs %s", img)
				}
			}
		})
	}
	out := skaffold(t, "render", "--offline=true", "--digest-source=tag", "-m", "loadgen", "--images", strings.Join(images, ","))
	objects, err := kubetest.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := apiServer.DryRun(context.Background(), "kshop", objects); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kind: Job") || !strings.Contains(out, "image: kshop/loadgen:test") {
		t.Fatalf("the loadgen config did not render its Job with the built image:\n%s", out)
	}
}

// TestLocalProfileBuildsWithoutDocker runs the local profile's build for one
// image, as `skaffold run` on the test cluster does, with no Docker daemon
// reachable: hack/image.sh builds and pushes, skaffold reads the digest from
// the registry, and the registry serves the image the Dockerfile describes.
func TestLocalProfileBuildsWithoutDocker(t *testing.T) {
	registry := startRegistry(t)
	output := filepath.Join(t.TempDir(), "builds.json")
	skaffoldIn(t, "..", []string{"DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "no-docker.sock"), "KSHOP_CLUSTER_CONTAINERD="},
		"build", "-m", "kshop", "-p", "local", "--default-repo="+registry, "-b", "kshop/loadgen",
		"--cache-file="+filepath.Join(t.TempDir(), "cache"), "--file-output="+output)

	var result struct {
		Builds []struct{ ImageName, Tag string }
	}
	b, err := os.ReadFile(output)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &result); err != nil || len(result.Builds) != 1 {
		t.Fatalf("skaffold's build output %s: %v", b, err)
	}
	// 127.0.0.1:PORT/kshop_loadgen:TAG@sha256:DIGEST, what the helm release gets.
	ref := result.Builds[0].Tag
	name, digest, ok := strings.Cut(ref, "@")
	repo, tag, _ := strings.Cut(strings.TrimPrefix(name, registry+"/"), ":")
	if !ok || !strings.HasPrefix(name, registry+"/kshop_loadgen:") || tag == "" {
		t.Fatalf("built %q, want %s/kshop_loadgen:TAG@DIGEST", ref, registry)
	}

	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ MediaType string }
	}
	if got := registryGet(t, registry, repo, "manifests/"+tag, &manifest); got != digest {
		t.Errorf("skaffold deploys %s, the registry serves %s", digest, got)
	}
	var config struct {
		Config struct {
			User       string
			Entrypoint []string
		}
	}
	registryGet(t, registry, repo, "blobs/"+manifest.Config.Digest, &config)
	if config.Config.User != "65532:65532" || len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/app" || len(manifest.Layers) != 2 {
		t.Errorf("the pushed image: %+v, %d layers", config.Config, len(manifest.Layers))
	}

	// What the cluster is given: the pushed image by digest, which the
	// kubelet's containerd pulls from the loopback registry.
	built := []string{"kshop/loadgen=" + ref}
	for _, img := range images {
		if !strings.HasPrefix(img, "kshop/loadgen:") {
			built = append(built, img)
		}
	}
	out := skaffold(t, "render", "--offline=true", "--digest-source=tag", "-m", "kshop", "-p", "local", "--images", strings.Join(built, ","))
	// The smoke test pod (helm test) runs loadgen, its image quoted.
	if !strings.Contains(out, `image: "`+ref+`"`) {
		t.Errorf("no pod runs %s:\n%s", ref, out)
	}
	objects, err := kubetest.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := apiServer.DryRun(context.Background(), "kshop", objects); err != nil {
		t.Fatal(err)
	}
}

// startRegistry runs the registry hack/registry.sh runs, on a free loopback
// port of its own, and returns its address.
func startRegistry(t *testing.T) string {
	t.Helper()
	binary := os.Getenv("KSHOP_REGISTRY")
	if binary == "" {
		t.Fatal("the local profile's build needs a registry: export KSHOP_REGISTRY=$(hack/tools.sh registry) (make test does)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	config := fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n", dir, address)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(binary, "serve", filepath.Join(dir, "config.yml"))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 100 {
		if resp, err := http.Get("http://" + address + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return address
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the registry did not answer on %s:\n%s", address, logs.String())
	return ""
}

// registryGet reads a manifest or blob as JSON into v and returns the
// digest the registry gives it.
func registryGet(t *testing.T, registry, repo, path string, v any) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+registry+"/v2/"+repo+"/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", req.URL, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	return resp.Header.Get("Docker-Content-Digest")
}
