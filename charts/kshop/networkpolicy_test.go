package chart_test

import (
	"net"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// peer is one end of a connection: a pod (labels, namespace) or an address
// outside the cluster's pods.
type peer struct {
	namespace string
	labels    map[string]string // nil: not a pod
	ip        string
}

// policies evaluates NetworkPolicies as the API defines them: a pod selected by
// a policy of a direction is isolated in that direction and accepts only what
// one of its rules allows; a connection needs the source's egress and, to a
// pod, the destination's ingress.
type policies []networkingv1.NetworkPolicy

func policiesIn(t *testing.T, objects []*unstructured.Unstructured) policies {
	t.Helper()
	var ps policies
	for _, o := range objects {
		if o.GetKind() != "NetworkPolicy" {
			continue
		}
		var p networkingv1.NetworkPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &p); err != nil {
			t.Fatal(err)
		}
		p.Namespace = namespace
		ps = append(ps, p)
	}
	return ps
}

func (ps policies) allows(from, to peer, port int32, protocol corev1.Protocol) bool {
	return ps.direction(from, to, port, protocol, networkingv1.PolicyTypeEgress) &&
		(to.labels == nil || ps.direction(to, from, port, protocol, networkingv1.PolicyTypeIngress))
}

// direction: may pod (self) exchange this connection with other, in direction?
func (ps policies) direction(self, other peer, port int32, protocol corev1.Protocol, direction networkingv1.PolicyType) bool {
	isolated := false
	for _, p := range ps {
		if p.Namespace != self.namespace || !matches(&p.Spec.PodSelector, self.labels) || !hasType(p.Spec.PolicyTypes, direction) {
			continue
		}
		isolated = true
		if direction == networkingv1.PolicyTypeEgress {
			for _, r := range p.Spec.Egress {
				if portMatches(r.Ports, port, protocol) && peersMatch(r.To, p.Namespace, other) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Ingress {
				if portMatches(r.Ports, port, protocol) && peersMatch(r.From, p.Namespace, other) {
					return true
				}
			}
		}
	}
	return !isolated
}

func hasType(types []networkingv1.PolicyType, t networkingv1.PolicyType) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

func matches(selector *metav1.LabelSelector, set map[string]string) bool {
	if set == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	return err == nil && s.Matches(labels.Set(set))
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port int32, protocol corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != protocol {
			continue
		}
		if p.Port == nil || (p.EndPort == nil && p.Port.IntVal == port) ||
			(p.EndPort != nil && p.Port.IntVal <= port && port <= *p.EndPort) {
			return true
		}
	}
	return false
}

func peersMatch(peers []networkingv1.NetworkPolicyPeer, policyNamespace string, other peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
			ip := net.ParseIP(other.ip)
			if err == nil && ip != nil && cidr.Contains(ip) && !excepted(p.IPBlock.Except, ip) {
				return true
			}
			continue
		}
		if other.labels == nil {
			continue // selectors select pods only
		}
		nsOK := other.namespace == policyNamespace
		if p.NamespaceSelector != nil {
			nsOK = matches(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": other.namespace})
		}
		podOK := p.PodSelector == nil || matches(p.PodSelector, other.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

func excepted(except []string, ip net.IP) bool {
	for _, e := range except {
		if _, cidr, err := net.ParseCIDR(e); err == nil && cidr.Contains(ip) {
			return true
		}
	}
	return false
}

// podLabels are the labels of the pods of a Deployment (or of a Pod) the render holds.
func podLabels(t *testing.T, objects []*unstructured.Unstructured, kind, name string) map[string]string {
	t.Helper()
	o := find(objects, kind, name)
	if o == nil {
		t.Fatalf("no %s %s", kind, name)
	}
	if kind == "Pod" {
		return o.GetLabels()
	}
	l, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
	return l
}

var coreDNS = peer{namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}, ip: "10.214.0.53"}

// The helm test pod is selected by the default deny and by its own policy:
// DNS, the gateway, the inbox, and nothing else; the gateway admits it.
func TestTheSmokePodReachesDNSTheGatewayAndTheInbox(t *testing.T) {
	type conn struct {
		to    peer
		port  int32
		proto corev1.Protocol
		want  bool
		what  string
	}
	for name, c := range map[string]struct {
		values []string
		inbox  func(objects []*unstructured.Unstructured) conn
	}{
		// Mailpit in the release: its pods take the API on 8025 behind Service port 80.
		"default": {nil, func([]*unstructured.Unstructured) conn {
			mailpit := peer{namespace: namespace, labels: map[string]string{"app.kubernetes.io/name": "mailpit", "app.kubernetes.io/instance": releaseName}}
			return conn{mailpit, 8025, corev1.ProtocolTCP, true, "Mailpit's pods"}
		}},
		// Mailpit outside the cluster, on the host.
		"local": {[]string{"-f", "values-local.yaml"}, func([]*unstructured.Unstructured) conn {
			return conn{peer{ip: "10.213.0.1"}, 13080, corev1.ProtocolTCP, true, "the inbox on 10.213.0.1:13080"}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			objects := render(t, c.values...)
			ps := policiesIn(t, objects)
			smoke := peer{namespace: namespace, labels: podLabels(t, objects, "Pod", releaseName+"-smoke")}
			gateway := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-gateway")}
			product := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-product")}
			for _, x := range []conn{
				{coreDNS, 53, corev1.ProtocolUDP, true, "DNS"},
				{gateway, 8080, corev1.ProtocolTCP, true, "the gateway"},
				c.inbox(objects),
				{product, 8082, corev1.ProtocolTCP, false, "the product service"},
				{peer{ip: "10.213.0.1"}, 13432, corev1.ProtocolTCP, false, "PostgreSQL on the host"},
				{peer{ip: "192.0.2.10"}, 443, corev1.ProtocolTCP, false, "an address outside"},
			} {
				if got := ps.allows(smoke, x.to, x.port, x.proto); got != x.want {
					t.Errorf("smoke pod -> %s (%d/%s): allowed %v, want %v", x.what, x.port, x.proto, got, x.want)
				}
			}
			// A pod of the release without an allowance reaches nothing.
			intruder := peer{namespace: namespace, labels: map[string]string{"app.kubernetes.io/name": "intruder", "app.kubernetes.io/part-of": "kshop", "app.kubernetes.io/instance": releaseName}}
			if ps.allows(intruder, gateway, 8080, corev1.ProtocolTCP) || ps.allows(intruder, product, 8082, corev1.ProtocolTCP) {
				t.Error("a kshop pod without an allowance reaches the gateway or the product service")
			}
			// A pod of another namespace reaches the gateway only as the ingress controller.
			other := peer{namespace: "elsewhere", labels: map[string]string{"app.kubernetes.io/name": "loadgen", "app.kubernetes.io/instance": releaseName}}
			if ps.allows(other, gateway, 8080, corev1.ProtocolTCP) {
				t.Error("a loadgen-labelled pod of another namespace reaches the gateway")
			}
		})
	}
}

// In external mode every service reaches exactly its own dependencies' hosts
// and ports (values-local.yaml: all on 10.213.0.1), and nothing else there.
func TestExternalDependenciesAreReachable(t *testing.T) {
	objects := render(t, "-f", "values-local.yaml")
	ps := policiesIn(t, objects)
	host := func(ip string) peer { return peer{ip: ip} }
	pod := func(name string) peer {
		return peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-"+name)}
	}
	cases := []struct {
		from string
		to   peer
		port int32
		want bool
	}{
		{"auth", host("10.213.0.1"), 13432, true},
		{"auth", host("10.213.0.1"), 13379, true},
		{"auth", host("10.213.0.1"), 13672, true},
		{"auth", host("10.213.0.1"), 13092, false}, // auth does not use Kafka
		{"product", host("10.213.0.1"), 13092, true},
		{"product", host("10.213.0.1"), 13379, false},
		{"order", host("10.213.0.1"), 13432, true},
		{"order", host("10.213.0.1"), 13379, true},
		{"order", host("10.213.0.1"), 13092, true},
		{"order", host("10.213.0.1"), 13672, true},
		{"order", host("10.213.0.2"), 13432, false}, // the address is the host's, not any
		{"mail", host("10.213.0.1"), 13025, true},
		{"mail", host("10.213.0.1"), 25, false},
		{"gateway", host("10.213.0.1"), 13379, true},
		{"gateway", host("10.213.0.1"), 13432, false},
		{"controller", host("10.213.0.1"), 13092, true},
		{"controller", host("10.213.0.1"), 13672, true},
		{"controller", host("10.213.0.1"), 6443, true}, // the API server behind the kubernetes Service
	}
	for _, c := range cases {
		if got := ps.allows(pod(c.from), c.to, c.port, corev1.ProtocolTCP); got != c.want {
			t.Errorf("%s -> %s:%d: allowed %v, want %v", c.from, c.to.ip, c.port, got, c.want)
		}
	}
	// The gateway reaches the services behind it, which admit it.
	if !ps.allows(pod("gateway"), pod("product"), 8082, corev1.ProtocolTCP) {
		t.Error("the gateway cannot reach the product service")
	}
	if ps.allows(pod("mail"), pod("product"), 8082, corev1.ProtocolTCP) {
		t.Error("the mail service reaches the product service")
	}
}

// With observability on, the services' traces reach the collector's pods.
func TestTracesReachTheCollector(t *testing.T) {
	collector := peer{namespace: namespace, labels: map[string]string{"app.kubernetes.io/name": "opentelemetry-collector"}, ip: "10.213.0.77"}
	for _, c := range []struct {
		values []string
		want   bool
	}{{nil, false}, {[]string{"--set", "observability.enabled=true"}, true}} {
		objects := render(t, c.values...)
		ps := policiesIn(t, objects)
		order := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-order")}
		for _, port := range []int32{4317, 4318} {
			if got := ps.allows(order, collector, port, corev1.ProtocolTCP); got != c.want {
				t.Errorf("%v: order -> collector:%d allowed %v, want %v", c.values, port, got, c.want)
			}
		}
	}
}
