package kind_test

import (
	"net"
	"os"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// kind cannot run here (no Docker), so its cluster configuration is checked
// against kind's own types: every field one kind knows (a strict decode with
// the version hack/tools.sh builds), and the front door wired as
// values-kind.yaml expects it: ingress-nginx's node labelled, its port 80 on
// localhost:8080, and the pod network the gateway trusts X-Forwarded-For from.
func TestTheClusterCarriesTheFrontDoor(t *testing.T) {
	raw, err := os.ReadFile("cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cluster v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cluster); err != nil {
		t.Fatalf("kind/cluster.yaml is not a kind v1alpha4 Cluster: %v", err)
	}
	v1alpha4.SetDefaultsCluster(&cluster)

	raw, err = os.ReadFile("../charts/kshop/values-kind.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		FrontDoor struct {
			TrustedProxies []string `json:"trustedProxies"`
		} `json:"frontDoor"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if len(values.FrontDoor.TrustedProxies) != 1 || values.FrontDoor.TrustedProxies[0] != cluster.Networking.PodSubnet {
		t.Errorf("values-kind.yaml trusts %v, the cluster's pods are in %s", values.FrontDoor.TrustedProxies, cluster.Networking.PodSubnet)
	}
	if _, _, err := net.ParseCIDR(cluster.Networking.PodSubnet); err != nil {
		t.Errorf("podSubnet: %v", err)
	}

	var controlPlane *v1alpha4.Node
	for i, n := range cluster.Nodes {
		if n.Role == v1alpha4.ControlPlaneRole {
			controlPlane = &cluster.Nodes[i]
		}
	}
	if controlPlane == nil {
		t.Fatal("no control-plane node")
	}
	if controlPlane.Labels["ingress-ready"] != "true" {
		t.Error("the control-plane node is not labelled ingress-ready: ingress-nginx's kind manifest would not schedule")
	}
	hostPorts := map[int32]int32{}
	for _, m := range controlPlane.ExtraPortMappings {
		hostPorts[m.HostPort] = m.ContainerPort
		if m.ListenAddress != "127.0.0.1" {
			t.Errorf("host port %d listens on %q: the cluster must not be reachable from the network", m.HostPort, m.ListenAddress)
		}
	}
	for host, container := range map[int32]int32{8080: 80, 8025: 30825, 3000: 30300} {
		if hostPorts[host] != container {
			t.Errorf("localhost:%d goes to the node's port %d, want %d", host, hostPorts[host], container)
		}
	}
}
