// The kind + skaffold developer loop, checked where Docker and kind cannot run:
// skaffold reads its configuration for every profile (diagnose), renders the
// manifests offline, and everything it renders is accepted by a real
// kube-apiserver (server-side dry run, strict field validation).
package kind_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Getenv("KSHOP_SKAFFOLD"), args...)
	cmd.Dir = workspace
	// skaffold runs helm from PATH, and must not phone home.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(os.Getenv("KSHOP_HELM"))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SKAFFOLD_UPDATE_CHECK=false", "SKAFFOLD_INTERACTIVE=false")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("skaffold %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

var profiles = []string{"light", "full", "staging", "debug"}

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
	}
	if out := skaffold(t, "diagnose", "--yaml-only", "-m", "loadgen"); !strings.Contains(out, "manifests/loadgen/job.yaml") {
		t.Errorf("the loadgen config:\n%s", out)
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
