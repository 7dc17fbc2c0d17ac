//go:build cluster

package clustertest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// cluster is the test's view of the one-node cluster.
type cluster struct {
	kube *kubernetes.Clientset
}

// waitFor polls check every second until it returns true, an error, or the
// timeout passes; what describes the wait in the failure.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		done, err := check(ctx)
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not within %v (last: %v)", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %v", what, timeout)
		case <-time.After(time.Second):
		}
	}
}

// podsReady reports whether every pod of the namespace that belongs to a
// workload (not a finished Job or helm test pod) is Ready, and how many there are.
func (c *cluster) podsReady(ctx context.Context, ns string) (bool, int, error) {
	pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, 0, err
	}
	n := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		if p.Annotations["helm.sh/hook"] != "" {
			continue
		}
		n++
		if !isReady(&p) {
			return false, n, nil
		}
	}
	return n > 0, n, nil
}

func isReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolledOut reports whether every Deployment of the namespace runs its newest
// template on all its replicas and nothing older is left.
func (c *cluster) rolledOut(ctx context.Context, ns string) (bool, error) {
	deployments, err := c.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	for _, d := range deployments.Items {
		if !deploymentDone(&d) {
			return false, nil
		}
	}
	return true, nil
}

func deploymentDone(d *appsv1.Deployment) bool {
	want := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// runPod runs one container to completion and returns its exit code and log.
func (c *cluster) runPod(ctx context.Context, ns string, pod *corev1.Pod, timeout time.Duration) (int32, string, error) {
	pods := c.kube.CoreV1().Pods(ns)
	_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	_ = waitFor(ctx, 30*time.Second, "old pod "+pod.Name+" gone", func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		return err != nil, nil
	})
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, "", err
	}
	defer func() {
		_ = pods.Delete(context.WithoutCancel(ctx), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}()
	var exit int32
	err := waitFor(ctx, timeout, "pod "+pod.Name+" to finish", func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range p.Status.ContainerStatuses {
			if s.State.Terminated != nil {
				exit = s.State.Terminated.ExitCode
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return 0, "", err
	}
	log, err := c.logs(ctx, ns, pod.Name, "", 200)
	return exit, log, err
}

// logs returns the last lines of a container's log.
func (c *cluster) logs(ctx context.Context, ns, pod, container string, lines int64) (string, error) {
	req := c.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &lines})
	stream, err := req.Stream(ctx)
	if err != nil {
		return "", err
	}
	defer stream.Close()
	data, err := io.ReadAll(stream)
	return string(data), err
}

// jobLog waits for the Job's pod to finish and returns its whole log.
func (c *cluster) waitForJob(ctx context.Context, ns, name string, timeout time.Duration) (string, error) {
	var pod string
	err := waitFor(ctx, timeout, "job "+name+" to finish", func(ctx context.Context) (bool, error) {
		job, err := c.kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range job.Status.Conditions {
			if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
				pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
				if err != nil || len(pods.Items) == 0 {
					return false, fmt.Errorf("the pod of job %s: %v", name, err)
				}
				pod = pods.Items[0].Name
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", err
	}
	return c.logs(ctx, ns, pod, "", 100000)
}

// describe prints what a person needs when a step fails: every pod's state,
// the namespace's latest events, and the last log lines of every container
// that is not ready or has restarted.
func (c *cluster) describe(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	fmt.Fprintf(&out, "\n==== namespace %s: pods\n", ns)
	pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintf(&out, "list pods: %v\n", err)
	} else {
		for _, p := range pods.Items {
			fmt.Fprintf(&out, "%-45s %-10s ready=%-5v node=%s ip=%s\n", p.Name, p.Status.Phase, isReady(&p), p.Spec.NodeName, p.Status.PodIP)
			for _, s := range p.Status.ContainerStatuses {
				state := "running"
				switch {
				case s.State.Waiting != nil:
					state = "waiting: " + s.State.Waiting.Reason + " " + s.State.Waiting.Message
				case s.State.Terminated != nil:
					state = fmt.Sprintf("terminated: %s exit %d", s.State.Terminated.Reason, s.State.Terminated.ExitCode)
				}
				fmt.Fprintf(&out, "    %s: %s, restarts %d\n", s.Name, state, s.RestartCount)
			}
		}
	}
	fmt.Fprintf(&out, "==== namespace %s: latest events\n", ns)
	events, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		items := events.Items
		sort.Slice(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
		if len(items) > 40 {
			items = items[len(items)-40:]
		}
		for _, e := range items {
			fmt.Fprintf(&out, "%s %-7s %-20s %s/%s: %s\n", eventTime(e).Format("15:04:05"), e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, strings.TrimSpace(e.Message))
		}
	}
	if pods != nil {
		for _, p := range pods.Items {
			for _, s := range p.Status.ContainerStatuses {
				if s.Ready && s.RestartCount == 0 {
					continue
				}
				log, err := c.logs(ctx, ns, p.Name, s.Name, 25)
				if err != nil {
					log = "(no log: " + err.Error() + ")"
				}
				fmt.Fprintf(&out, "==== last log lines of %s/%s\n%s\n", p.Name, s.Name, strings.TrimRight(log, "\n"))
			}
		}
	}
	t.Log(out.String())
}

func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// command runs a program, streaming its output into the test log, and
// returns the output.
func command(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	t.Logf("$ %s %s", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(&buf, pw)
	cmd.Stderr = cmd.Stdout
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanner := bufio.NewScanner(pr)
		scanner.Buffer(make([]byte, 64<<10), 1<<20)
		for scanner.Scan() {
			t.Logf("  %s", scanner.Text())
		}
	}()
	err := cmd.Run()
	_ = pw.Close()
	<-done
	if err != nil {
		return buf.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return buf.String(), nil
}
