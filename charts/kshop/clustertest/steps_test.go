//go:build cluster

package clustertest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/kubetest"
	"github.com/kshop/kshop/services/platform/tokens"
)

// ---------------------------------------------------------------- in-cluster clients

// clientLabels make a pod an in-cluster client of the release, as the chart's
// helm test pod is: the NetworkPolicies let such pods reach the gateway.
func clientLabels() map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "loadgen",
		"app.kubernetes.io/instance": release,
		"app.kubernetes.io/part-of":  "kshop",
	}
}

func loadgenContainer(args ...string) corev1.Container {
	// The admin it creates products as: the release's smoke test admin, from
	// the Secret the chart generates (there is no default admin).
	fromSmokeAdmin := func(key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: release + "-smoke-admin"}, Key: key}}
	}
	return corev1.Container{
		Name:            "loadgen",
		Image:           "kshop.local/kshop/loadgen:" + imageTag,
		ImagePullPolicy: corev1.PullNever,
		Args:            args,
		Env: []corev1.EnvVar{
			{Name: "KSHOP_LOADGEN_ADMIN", ValueFrom: fromSmokeAdmin("email")},
			{Name: "KSHOP_LOADGEN_ADMIN_PASSWORD", ValueFrom: fromSmokeAdmin("password")},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func podSpec(containers ...corev1.Container) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext:              &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](65532), RunAsNonRoot: ptr.To(true)},
		Containers:                   containers,
	}
}

// startLoad runs loadgen load as a Job inside the cluster, against the
// release's gateway, and waits until its timed run has begun.
func startLoad(ctx context.Context, t *testing.T, name string, args ...string) {
	t.Helper()
	all := append([]string{"load", "-gateway=http://" + release + "-gateway:8080", "-inbox=" + inbox, "-json"}, args...)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: clientLabels()},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: clientLabels()},
				Spec:       podSpec(loadgenContainer(all...)),
			},
		},
	}
	jobs := kube.kube.BatchV1().Jobs(namespace)
	_ = jobs.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
	_ = waitFor(ctx, time.Minute, "old job gone", func(ctx context.Context) (bool, error) {
		_, err := jobs.Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// loadgen prints a progress line a second once the timed run runs.
	err := waitFor(ctx, 3*time.Minute, "load job "+name+" to start sending", func(ctx context.Context) (bool, error) {
		pods, err := kube.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
		if err != nil || len(pods.Items) == 0 {
			return false, err
		}
		if pods.Items[0].Status.Phase == corev1.PodFailed || pods.Items[0].Status.Phase == corev1.PodSucceeded {
			log, _ := kube.logs(ctx, namespace, pods.Items[0].Name, "", 50)
			return false, fmt.Errorf("the load job ended before sending:\n%s", log)
		}
		log, err := kube.logs(ctx, namespace, pods.Items[0].Name, "", 5)
		return err == nil && strings.Contains(log, " sent "), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func stopLoad(ctx context.Context, name string) {
	_ = kube.kube.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
}

// failedRequests counts what a client would call a failure: no answer, a
// server error, or any refusal the contract does not promise for the request
// (a payment of an order whose stock is still being reserved is a documented
// 409, so it is not one).
func failedRequests(s loadgen.Summary) (int, string) {
	failed := 0
	var detail []string
	for op, o := range s.Ops {
		failed += o.NoAnswer
		for code, n := range o.ByStatus {
			if op == loadgen.OpPay && code == "409" {
				continue
			}
			failed += n
		}
		detail = append(detail, fmt.Sprintf("%s %d sent, %d ok, %v, %d no answer, p99 %.0f ms, max %.0f ms",
			op, o.Requests, o.OK, o.ByStatus, o.NoAnswer, o.P99Ms, o.MaxMs))
	}
	slices.Sort(detail)
	return failed, strings.Join(detail, "; ")
}

func loadOutcome(ctx context.Context, t *testing.T, name string, timeout time.Duration) loadgen.Summary {
	t.Helper()
	log, err := kube.waitForJob(ctx, namespace, name, timeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(log, "\n") {
		if rest, ok := strings.CutPrefix(line, loadgen.SummaryPrefix); ok {
			var s loadgen.Summary
			if err := json.Unmarshal([]byte(rest), &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	t.Fatalf("no summary in the load job's log:\n%s", log)
	return loadgen.Summary{}
}

// ---------------------------------------------------------------- steps

func rollUnderLoad(ctx context.Context, t *testing.T) {
	before := workloadPods(ctx, t)
	startLoad(ctx, t, "rolling-load", "-rate=50", "-duration=120s", "-users=5", "-products=10")
	began := time.Now()
	// A ConfigMap value changes: every service's pods roll.
	helm(ctx, t, append([]string{"upgrade", release, ".", "-n", namespace}, append(installValues(), "--set", "common.logLevel=debug")...)...)
	err := waitFor(ctx, 6*time.Minute, "every Deployment rolled", func(ctx context.Context) (bool, error) {
		done, err := kube.rolledOut(ctx, namespace)
		if !done || err != nil {
			return false, err
		}
		after := workloadPods(ctx, t)
		for name := range after {
			if before[name] {
				return false, nil // an old pod is still there
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	measured(t, "helm upgrade rolled all %d workload pods in %v", len(before), time.Since(began).Round(time.Second))
	s := loadOutcome(ctx, t, "rolling-load", 5*time.Minute)
	failed, detail := failedRequests(s)
	measured(t, "requests failed during the rolling upgrade at 50/s: %d (%s)", failed, detail)
	if failed != 0 {
		t.Errorf("%d requests failed while the pods rolled", failed)
	}
}

// releaseWorkloads selects the pods of the release's Deployments: the
// release's labels, without this test's load pods (clientLabels).
const releaseWorkloads = "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/name!=loadgen"

// workloadPods names the pods of the release's Deployments.
func workloadPods(ctx context.Context, t *testing.T) map[string]bool {
	t.Helper()
	pods, err := kube.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: releaseWorkloads})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			names[p.Name] = true
		}
	}
	return names
}

func signingKeyIDs(ctx context.Context, t *testing.T) []string {
	t.Helper()
	secrets, err := kube.kube.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "kshop.io/jwks"})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 1 {
		t.Fatalf("%d Secrets labelled kshop.io/jwks, want 1", len(secrets.Items))
	}
	set, err := tokens.ParseJWKS(secrets.Items[0].Data["jwks.json"])
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.ID)
	}
	return ids
}

func checkRotation(ctx context.Context, t *testing.T, before []string) {
	now := signingKeyIDs(ctx, t)
	var added []string
	for _, id := range now {
		if !slices.Contains(before, id) {
			added = append(added, id)
		}
	}
	measured(t, "signing keys: %d after helm test, %d more added by rotation since (keys now %v)", len(before), len(added), now)
	if len(added) == 0 {
		t.Fatal("no key was added: the controller did not rotate")
	}
	// Users who sign in now get tokens from a rotated key; the gateway must
	// accept them as it accepted the older ones during the rolling upgrade.
	startLoad(ctx, t, "rotated-keys", "-rate=10", "-duration=20s", "-users=2", "-products=2", "-mix=browse=20,order=50,pay=30")
	failed, detail := failedRequests(loadOutcome(ctx, t, "rotated-keys", 2*time.Minute))
	if failed != 0 {
		t.Fatalf("%d requests failed with tokens signed after the rotation: %s", failed, detail)
	}
}

func scaleGateway(ctx context.Context, t *testing.T) {
	hpas := kube.kube.AutoscalingV2().HorizontalPodAutoscalers(namespace)
	name := release + "-gateway"
	// metrics-server's figures reach the HPA before the load starts.
	err := waitFor(ctx, 3*time.Minute, "the HPA to read the gateway's CPU", func(ctx context.Context) (bool, error) {
		h, err := hpas.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, m := range h.Status.CurrentMetrics {
			if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Current.AverageUtilization != nil {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deployments := kube.kube.AppsV1().Deployments(namespace)
	onePod := func(what string) error {
		return waitFor(ctx, 6*time.Minute, what, func(ctx context.Context) (bool, error) {
			d, err := deployments.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return ptr.Deref(d.Spec.Replicas, 0) == 1 && d.Status.Replicas == 1, nil
		})
	}
	// The earlier loads may have scaled it out already: start from one pod.
	quiet := time.Now()
	if err := onePod("the gateway at 1 pod before the load"); err != nil {
		t.Fatal(err)
	}
	t.Logf("the gateway runs 1 pod (%v of quiet after the earlier loads)", time.Since(quiet).Round(time.Second))
	startLoad(ctx, t, "hpa-load", "-rate=300", "-duration=6m", "-users=1", "-products=2", "-mix=browse=100", "-max-in-flight=64")
	began := time.Now()
	var utilization string
	err = waitFor(ctx, 5*time.Minute, "the gateway to scale out to 2 ready pods", func(ctx context.Context) (bool, error) {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if h, err := hpas.Get(ctx, name, metav1.GetOptions{}); err == nil {
			utilization = describeHPA(h.Status.CurrentMetrics)
		}
		return d.Status.ReadyReplicas >= 2, nil
	})
	stopLoad(ctx, "hpa-load")
	if err != nil {
		t.Fatal(err)
	}
	measured(t, "gateway HPA: 1 -> 2 ready pods %v after the load began (HPA read %s)", time.Since(began).Round(time.Second), utilization)
	stopped := time.Now()
	if err := onePod("the gateway to scale back to 1"); err != nil {
		t.Fatal(err)
	}
	measured(t, "gateway HPA: back to 1 pod %v after the load stopped", time.Since(stopped).Round(time.Second))
}

// memoryHeadroom is how close to its limit a container's working set may be
// after the journey's loads: nearer, the next burst is an OOM kill.
const memoryHeadroom = 0.8

// checkMemory reads every container's working set from metrics-server (what
// the kubelet and a memory HPA see) after the loads, reports each beside its
// request and limit, and fails for one within memoryHeadroom of its limit.
func checkMemory(ctx context.Context, t *testing.T) {
	type containerMetrics struct {
		Name  string                       `json:"name"`
		Usage map[string]resource.Quantity `json:"usage"`
	}
	var list struct {
		Items []struct {
			Metadata   metav1.ObjectMeta  `json:"metadata"`
			Containers []containerMetrics `json:"containers"`
		} `json:"items"`
	}
	raw, err := kube.kube.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces", namespace, "pods").
		Param("labelSelector", releaseWorkloads).DoRaw(ctx)
	if err != nil {
		t.Fatalf("the metrics API: %v", err)
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	pods, err := kube.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: releaseWorkloads})
	if err != nil {
		t.Fatal(err)
	}
	resources := map[string]corev1.ResourceRequirements{} // pod/container
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			resources[p.Name+"/"+c.Name] = c.Resources
		}
	}
	const mib = 1 << 20
	seen := 0
	for _, p := range list.Items {
		component := p.Metadata.Labels["app.kubernetes.io/name"]
		for _, c := range p.Containers {
			r, ok := resources[p.Metadata.Name+"/"+c.Name]
			if !ok {
				continue // gone since metrics-server read it
			}
			seen++
			used := c.Usage[string(corev1.ResourceMemory)]
			limit := r.Limits[corev1.ResourceMemory]
			request := r.Requests[corev1.ResourceMemory]
			measured(t, "memory of %s (%s): %d MiB working set, request %d MiB, limit %d MiB", component, p.Metadata.Name, used.Value()/mib, request.Value()/mib, limit.Value()/mib)
			if !limit.IsZero() && float64(used.Value()) > memoryHeadroom*float64(limit.Value()) {
				t.Errorf("%s uses %d MiB of its %d MiB limit: raise the limit or find what grows", p.Metadata.Name, used.Value()/mib, limit.Value()/mib)
			}
		}
	}
	if seen == 0 {
		t.Fatal("metrics-server reported no container of the release")
	}
}

func describeHPA(metrics []autoscalingv2.MetricStatus) string {
	var parts []string
	for _, m := range metrics {
		if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
			parts = append(parts, fmt.Sprintf("%s %d%% of request", m.Resource.Name, *m.Resource.Current.AverageUtilization))
		}
	}
	return strings.Join(parts, ", ")
}

func evictAgainstBudget(ctx context.Context, t *testing.T) {
	name := release + "-product"
	pdbs := kube.kube.PolicyV1().PodDisruptionBudgets(namespace)
	err := waitFor(ctx, 3*time.Minute, "the product budget to allow one disruption", func(ctx context.Context) (bool, error) {
		pdb, err := pdbs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pdb.Status.CurrentHealthy >= 2 && pdb.Status.DisruptionsAllowed == 1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kube.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=product,app.kubernetes.io/instance=" + release})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) < 2 {
		t.Fatalf("%d product pods, want 2", len(pods.Items))
	}
	evict := func(pod string) error {
		return kube.kube.CoreV1().Pods(namespace).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: namespace}})
	}
	if err := evict(pods.Items[0].Name); err != nil {
		t.Fatalf("the first eviction, which the budget allows, was refused: %v", err)
	}
	err = evict(pods.Items[1].Name)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("the second eviction, which would leave no product pod, got %v; want 429 Too Many Requests", err)
	}
	measured(t, "PodDisruptionBudget: first product eviction allowed, the second refused (%v)", err)
	err = waitFor(ctx, 3*time.Minute, "product back to 2 ready pods", func(ctx context.Context) (bool, error) {
		ready, _, err := kube.podsReady(ctx, namespace)
		if !ready || err != nil {
			return false, err
		}
		pdb, err := pdbs.Get(ctx, name, metav1.GetOptions{})
		return err == nil && pdb.Status.CurrentHealthy >= 2, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkNetworkPolicies(ctx context.Context, t *testing.T) {
	// probe runs loadgen probe in a pod with these labels: the first URL must
	// answer (the pod's network works, its policy rules are written), then
	// each other URL is asked once; it returns which of those answered.
	probe := func(name string, labels map[string]string, first string, others ...string) map[string]bool {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       podSpec(loadgenContainer(append([]string{"probe", "-timeout=4s", first}, others...)...)),
		}
		exit, log, err := kube.runPod(ctx, namespace, pod, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s:\n%s", name, strings.TrimSpace(log))
		if exit != 0 {
			t.Fatalf("pod %s could not reach %s, which it may: its network does not work", name, first)
		}
		answered := map[string]bool{}
		for _, url := range others {
			answered[url] = strings.Contains(log, url+" answered ")
		}
		return answered
	}
	product := "http://" + release + "-product:8082/healthz"
	gateway := "http://" + release + "-gateway:8080/healthz"
	// A pod no policy selects reaches the inbox outside the cluster, but not
	// the product service, whose policy admits the gateway only.
	stranger := map[string]string{"app.kubernetes.io/name": "stranger"}
	if probe("stranger", stranger, inbox+"/", product)[product] {
		t.Fatal("a pod without an allowance reached the product service's port")
	}
	// The release's in-cluster client reaches the gateway, not what is behind it.
	if probe("client", clientLabels(), gateway, product)[product] {
		t.Fatal("the release's in-cluster client reached the product service directly, past the gateway")
	}
	// A pod that calls itself Prometheus outside the monitoring namespace
	// reaches neither the product service's API port nor its metrics port.
	productMetrics := "http://" + release + "-product:9082/metrics"
	impostor := map[string]string{"app.kubernetes.io/name": "prometheus"}
	if answered := probe("impostor", impostor, inbox+"/", product, productMetrics); answered[product] || answered[productMetrics] {
		t.Fatalf("a pod labelled prometheus in %s reached the product service: %v", namespace, answered)
	}
	measured(t, "NetworkPolicy: a stranger pod, the release's client pod and a pod labelled prometheus outside the monitoring namespace are refused the product ports; the client reaches the gateway, the stranger the inbox")
}

// userSecrets are the operator's, made before the install
// (hack/cluster-infra.sh secrets): the release only reads them.
var userSecrets = map[string]bool{
	"Secret/kshop-external-postgres": true, "Secret/kshop-external-redis": true, "Secret/kshop-external-rabbitmq": true,
}

// checkNothingLeft lists every kind of object the API serves in the namespace
// and cluster-wide, and fails on any that belongs to the release.
func checkNothingLeft(ctx context.Context, t *testing.T, release, ns string) {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := kube.kube.Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	err = waitFor(ctx, 2*time.Minute, "every object of release "+release+" gone", func(ctx context.Context) (bool, error) {
		left = nil
		for _, list := range lists {
			gv, err := schema.ParseGroupVersion(list.GroupVersion)
			if err != nil {
				continue
			}
			for _, r := range list.APIResources {
				if !slices.Contains(r.Verbs, "list") || r.Kind == "Event" || strings.Contains(r.Name, "/") {
					continue
				}
				res := dyn.Resource(gv.WithResource(r.Name))
				var items []string
				if r.Namespaced {
					l, err := res.Namespace(ns).List(ctx, metav1.ListOptions{})
					if err != nil {
						continue
					}
					for _, o := range l.Items {
						if userSecrets[r.Kind+"/"+o.GetName()] {
							continue
						}
						if o.GetLabels()["app.kubernetes.io/instance"] == release || strings.HasPrefix(o.GetName(), release+"-") {
							items = append(items, r.Kind+"/"+o.GetName())
						}
					}
				} else {
					l, err := res.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
					if err != nil {
						continue
					}
					for _, o := range l.Items {
						items = append(items, r.Kind+"/"+o.GetName())
					}
				}
				left = append(left, items...)
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("%v: left %v", err, left)
	}
}

func checkTopology(ctx context.Context, t *testing.T) {
	configMaps := kube.kube.CoreV1().ConfigMaps(namespace)
	var kafkaDoc, rabbitDoc topologyDocument
	for _, kind := range []string{"kafka", "rabbitmq"} {
		name := release + "-" + kind + "-topology"
		err := waitFor(ctx, 3*time.Minute, name+" reported Synced", func(ctx context.Context) (bool, error) {
			cm, err := configMaps.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			var status struct {
				Conditions []metav1.Condition `json:"conditions"`
			}
			raw := cm.Annotations["kshop.io/topology-status"]
			if raw == "" || json.Unmarshal([]byte(raw), &status) != nil {
				return false, nil
			}
			for _, c := range status.Conditions {
				if c.Type == "Ready" {
					if c.Status != metav1.ConditionTrue {
						return false, fmt.Errorf("%s: %s", c.Reason, c.Message)
					}
					doc := &kafkaDoc
					if kind == "rabbitmq" {
						doc = &rabbitDoc
					}
					return true, sigsyaml.Unmarshal([]byte(cm.Data["topology.yaml"]), doc)
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The brokers themselves, outside the cluster, hold what the documents ask.
	client, err := kgo.NewClient(kgo.SeedBrokers(os.Getenv("KSHOP_CLUSTER_INFRA_KAFKA")))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topics, err := kadm.NewClient(client).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range kafkaDoc.Topics {
		got, ok := topics[want.Name]
		if !ok || len(got.Partitions) < want.Partitions {
			t.Errorf("Kafka topic %s: exists %v with %d partitions, want %d", want.Name, ok, len(got.Partitions), want.Partitions)
		}
	}
	conn, err := amqp091.Dial(fmt.Sprintf("amqp://kshop:%s@%s/", credential(t, "RABBITMQ_PASSWORD"), os.Getenv("KSHOP_CLUSTER_INFRA_RABBITMQ")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	queues := 0
	for _, q := range append(rabbitDoc.Queues, rabbitDoc.DelayQueues...) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil); err != nil {
			t.Errorf("RabbitMQ queue %s: %v", q.Name, err)
		} else {
			queues++
		}
		_ = ch.Close()
	}
	measured(t, "topology: %d Kafka topics and %d RabbitMQ queues of the documents exist on the external brokers", len(kafkaDoc.Topics), queues)
}

type topologyDocument struct {
	Topics []struct {
		Name       string `json:"name"`
		Partitions int    `json:"partitions"`
	} `json:"topics"`
	Queues []struct {
		Name string `json:"name"`
	} `json:"queues"`
	DelayQueues []struct {
		Name string `json:"name"`
	} `json:"delayQueues"`
}

// credential reads one generated password of hack/cluster-infra.sh.
func credential(t *testing.T, key string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(os.Getenv("KSHOP_CLUSTER_INFRA_DIR"), "credentials"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if v, ok := strings.CutPrefix(scanner.Text(), key+"="); ok {
			return v
		}
	}
	t.Fatalf("%s not in the infrastructure's credentials", key)
	return ""
}

// skaffoldRun deploys the platform as a developer on this machine would, with
// the skaffold profile for this cluster, into namespace kshop, then deletes it.
func skaffoldRun(ctx context.Context, t *testing.T) {
	workspace := t.TempDir()
	files, err := exec.CommandContext(ctx, "git", "-C", repoRoot, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		if strings.HasPrefix(f, "charts/kshop/") {
			continue // copied below, with the dependencies stood in for
		}
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree
			}
			t.Fatal(err)
		}
		info, _ := os.Stat(filepath.Join(repoRoot, f))
		if err := os.MkdirAll(filepath.Dir(filepath.Join(workspace, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(workspace, f), data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if err := kubetest.CopyChartWithStubs(filepath.Join(repoRoot, "charts", "kshop"), filepath.Join(workspace, "charts", "kshop")); err != nil {
		t.Fatal(err)
	}
	if _, err := command(ctx, t, repoRoot, nil, "hack/cluster-infra.sh", "secrets", "kshop"); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + filepath.Dir(helmBin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"SKAFFOLD_UPDATE_CHECK=false", "SKAFFOLD_INTERACTIVE=false",
	}
	// Skaffold cannot build without a Docker daemon unless it pushes: the
	// local profile pushes to a registry on loopback, which the node pulls from.
	if _, err := command(ctx, t, repoRoot, nil, "hack/registry.sh", "up"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = command(context.WithoutCancel(ctx), t, repoRoot, nil, "hack/registry.sh", "down") }()
	skaffold := os.Getenv("KSHOP_SKAFFOLD")
	began := time.Now()
	if _, err := command(ctx, t, workspace, env, skaffold, "run", "-m", "kshop", "-p", "local", "--default-repo=127.0.0.1:15000"); err != nil {
		t.Fatal(err)
	}
	err = waitFor(ctx, 5*time.Minute, "every pod of the skaffold deployment Ready", func(ctx context.Context) (bool, error) {
		ready, _, err := kube.podsReady(ctx, "kshop")
		return ready, err
	})
	if err != nil {
		t.Fatal(err)
	}
	measured(t, "skaffold run -p local (7 images built offline, pushed to the loopback registry, helm install) to all pods Ready: %v", time.Since(began).Round(time.Second))
	if _, err := command(ctx, t, workspace, env, skaffold, "delete", "-m", "kshop", "-p", "local"); err != nil {
		t.Fatal(err)
	}
	checkNothingLeft(ctx, t, "kshop", "kshop")
}
