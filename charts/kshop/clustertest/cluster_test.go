//go:build cluster

// Package clustertest proves the chart's promises on a Kubernetes that really
// runs pods: the one-node cluster of hack/cluster.sh, with PostgreSQL, Redis,
// RabbitMQ, a Kafka-protocol broker and Mailpit outside it
// (hack/cluster-infra.sh), reached through the chart's external-infrastructure
// mode as a staging cluster reaches managed services.
//
// It installs the chart under a release name and namespace other than kshop,
// runs helm test, rolls every pod under load without one failed request while
// the controller rotates the signing keys, checks the brokers' topology, scales
// the gateway with its HPA on metrics-server's figures, has an eviction refused
// by a PodDisruptionBudget, has a NetworkPolicy drop a connection, uninstalls
// and finds nothing left, then deploys the same platform with `skaffold run`.
//
// make test runs it (hack/test.sh: the cluster phase); by hand:
//
//	hack/cluster.sh up && hack/cluster-infra.sh up
//	eval "$(hack/cluster.sh env)" "$(hack/cluster-infra.sh env)"
//	for s in gateway auth product order mail controller loadgen; do hack/image.sh $s kshop.local/kshop/$s:dev; done
//	KSHOP_CLUSTER_IMAGE_TAG=dev KSHOP_HELM=$(hack/tools.sh helm) KSHOP_SKAFFOLD=$(hack/tools.sh skaffold) \
//	  go test -tags cluster -v -timeout 40m ./charts/kshop/clustertest/
package clustertest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kshop/kshop/services/platform/kubetest"
)

// The release under test: deliberately not "kshop", so every name the chart
// derives from the release is exercised.
const (
	release   = "shop"
	namespace = "shop"
)

var (
	kube     *cluster
	repoRoot string
	imageTag string
	helmBin  string
	inbox    string
	// chartDir is a copy of the chart whose remote dependencies are empty
	// stand-ins: they cannot be fetched here, and the external mode switches
	// every one of them off, so nothing of theirs would render anyway.
	chartDir string
	// figures collects what the run measured, printed at the end.
	figures []string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	need := map[string]string{
		"KUBECONFIG":                "eval \"$(hack/cluster.sh env)\" after hack/cluster.sh up",
		"KSHOP_CLUSTER_INFRA_DIR":   "eval \"$(hack/cluster-infra.sh env)\" after hack/cluster-infra.sh up",
		"KSHOP_CLUSTER_IMAGE_TAG":   "the tag given to hack/image.sh for every image (kshop.local/kshop/<service>:<tag>)",
		"KSHOP_HELM":                "KSHOP_HELM=$(hack/tools.sh helm)",
		"KSHOP_SKAFFOLD":            "KSHOP_SKAFFOLD=$(hack/tools.sh skaffold)",
		"KSHOP_CLUSTER_INFRA_INBOX": "eval \"$(hack/cluster-infra.sh env)\"",
	}
	for name, how := range need {
		if os.Getenv(name) == "" {
			return 0, fmt.Errorf("%s is not set: run with `make test`, or set it up by hand: %s", name, how)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		return 0, fmt.Errorf("read KUBECONFIG: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	kube = &cluster{kube: client}
	if repoRoot, err = filepath.Abs("../../.."); err != nil {
		return 0, err
	}
	imageTag, helmBin, inbox = os.Getenv("KSHOP_CLUSTER_IMAGE_TAG"), os.Getenv("KSHOP_HELM"), os.Getenv("KSHOP_CLUSTER_INFRA_INBOX")
	dir, err := os.MkdirTemp("", "kshop-clustertest-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	chartDir = filepath.Join(dir, "kshop")
	if err := kubetest.CopyChartWithStubs(filepath.Join(repoRoot, "charts", "kshop"), chartDir); err != nil {
		return 0, fmt.Errorf("copy the chart: %w", err)
	}
	code := m.Run()
	fmt.Println("\nclustertest figures:")
	for _, f := range figures {
		fmt.Println("  " + f)
	}
	return code, nil
}

func measured(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	figures = append(figures, line)
}

// step runs one part of the journey; a failure describes the namespace and
// stops the journey, since every later step builds on the earlier ones.
func step(t *testing.T, name string, ns string, f func(t *testing.T, ctx context.Context)) {
	t.Helper()
	ok := t.Run(name, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		defer func() {
			if t.Failed() {
				kube.describe(t, ns)
			}
		}()
		f(t, ctx)
	})
	if !ok {
		t.FailNow()
	}
}

func helm(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, err := command(ctx, t, chartDir, nil, helmBin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// installValues are the values of every helm call of the journey: the local
// cluster's value set, this run's images, and a signing-key rotation short
// enough to happen several times during the run.
func installValues() []string {
	return []string{
		"-f", filepath.Join(chartDir, "values-local.yaml"),
		"--set", "image.tag=" + imageTag,
		"--set", "controller.rotationPeriod=45s,controller.propagationDelay=10s",
	}
}

func TestTheChartOnARealCluster(t *testing.T) {
	var started time.Time
	step(t, "secrets of the external services", namespace, func(t *testing.T, ctx context.Context) {
		if _, err := command(ctx, t, repoRoot, nil, "hack/cluster-infra.sh", "secrets", namespace); err != nil {
			t.Fatal(err)
		}
	})

	step(t, "helm install: every pod Ready", namespace, func(t *testing.T, ctx context.Context) {
		started = time.Now()
		helm(ctx, t, append([]string{"install", release, ".", "-n", namespace}, installValues()...)...)
		var pods int
		err := waitFor(ctx, 6*time.Minute, "every pod Ready", func(ctx context.Context) (bool, error) {
			ready, n, err := kube.podsReady(ctx, namespace)
			pods = n
			return ready, err
		})
		if err != nil {
			t.Fatal(err)
		}
		measured(t, "helm install to all %d pods Ready: %v", pods, time.Since(started).Round(time.Second))
	})

	step(t, "helm test: the smoke journey from inside the cluster", namespace, func(t *testing.T, ctx context.Context) {
		began := time.Now()
		helm(ctx, t, "test", release, "-n", namespace, "--timeout", "8m")
		measured(t, "helm test (the smoke journey) passed in %v", time.Since(began).Round(time.Second))
	})

	step(t, "the controller keeps the brokers' topology", namespace, func(t *testing.T, ctx context.Context) {
		checkTopology(ctx, t)
	})

	var keysBefore []string
	step(t, "the controller made the signing keys", namespace, func(t *testing.T, ctx context.Context) {
		keysBefore = signingKeyIDs(ctx, t)
		if len(keysBefore) == 0 {
			t.Fatal("the signing-key Secret holds no key")
		}
	})

	step(t, "helm upgrade rolls every pod under load without one failed request", namespace, func(t *testing.T, ctx context.Context) {
		rollUnderLoad(ctx, t)
	})

	step(t, "the signing keys rotated while tokens kept validating", namespace, func(t *testing.T, ctx context.Context) {
		checkRotation(ctx, t, keysBefore)
	})

	step(t, "the gateway's HPA scales out under load and back", namespace, func(t *testing.T, ctx context.Context) {
		scaleGateway(ctx, t)
	})

	step(t, "every container's memory after the loads is within its limit", namespace, func(t *testing.T, ctx context.Context) {
		checkMemory(ctx, t)
	})

	step(t, "an eviction that would break a PodDisruptionBudget is refused", namespace, func(t *testing.T, ctx context.Context) {
		evictAgainstBudget(ctx, t)
	})

	step(t, "NetworkPolicies are enforced", namespace, func(t *testing.T, ctx context.Context) {
		checkNetworkPolicies(ctx, t)
	})

	step(t, "helm uninstall leaves no object of the release", namespace, func(t *testing.T, ctx context.Context) {
		// The load Jobs are this test's, not the release's: remove them first.
		for _, job := range []string{"rolling-load", "rotated-keys", "hpa-load"} {
			stopLoad(ctx, job)
		}
		helm(ctx, t, "uninstall", release, "-n", namespace, "--wait", "--timeout", "3m")
		checkNothingLeft(ctx, t, release, namespace)
	})

	step(t, "skaffold run deploys the platform", "kshop", func(t *testing.T, ctx context.Context) {
		skaffoldRun(ctx, t)
	})
}
