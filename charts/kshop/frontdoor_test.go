package chart_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// The front door of issue 23: an Ingress and a Gateway API HTTPRoute to the
// gateway for the public API only, the controller's namespace admitted to the
// gateway's API port, and the gateway believing X-Forwarded-For from the
// controller only (issue 20's rate limits per client, not per ingress).

// frontDoorValues switch both on, with TLS by cert-manager.
var frontDoorValues = []string{
	"--set", "frontDoor.ingress.enabled=true",
	"--set", "frontDoor.ingress.className=nginx",
	"--set", "frontDoor.ingress.hosts={shop.example.com}",
	"--set", "frontDoor.ingress.tls.enabled=true",
	"--set", "frontDoor.ingress.tls.clusterIssuer=letsencrypt",
	"--set", "frontDoor.httpRoute.enabled=true",
	"--set", "frontDoor.httpRoute.parentRefs[0].name=public",
	"--set", "frontDoor.httpRoute.parentRefs[0].namespace=gateway-system",
	"--set", "frontDoor.httpRoute.parentRefs[0].sectionName=https",
	"--set", "frontDoor.httpRoute.hostnames={shop.example.com}",
	"--set", "frontDoor.controller.namespace=edge",
	"--set", "frontDoor.controller.podLabels.app\\.kubernetes\\.io/name=edge-proxy",
	"--set", "frontDoor.trustedProxies={10.244.0.0/16,fd00:10:244::/56}",
}

// publicPaths are the gateway's public routes as the front door routes them:
// path, match type.
var publicPaths = []string{"/auth Prefix", "/products Prefix", "/orders Prefix", "/openapi.json Exact"}

func TestTheFrontDoorRendersAndPassesValidation(t *testing.T) {
	objects := renderAs(t, "shop", namespace, frontDoorValues...)
	if err := applyDryRun(t, objects); err != nil {
		t.Fatal(err)
	}
	if n := count(objects, "Ingress") + count(objects, "HTTPRoute"); n != 2 {
		t.Fatalf("%d Ingress and HTTPRoute objects, want one of each", n)
	}

	var ingress networkingv1.Ingress
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(objects, "Ingress", "shop-gateway").Object, &ingress); err != nil {
		t.Fatal(err)
	}
	if ingress.Spec.IngressClassName == nil || *ingress.Spec.IngressClassName != "nginx" ||
		ingress.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" ||
		len(ingress.Spec.TLS) != 1 || ingress.Spec.TLS[0].SecretName != "shop-gateway-tls" || !slices.Equal(ingress.Spec.TLS[0].Hosts, []string{"shop.example.com"}) {
		t.Errorf("Ingress class, TLS or issuer: %+v %v", ingress.Spec, ingress.Annotations)
	}
	if len(ingress.Spec.Rules) != 1 || ingress.Spec.Rules[0].Host != "shop.example.com" {
		t.Fatalf("Ingress rules %+v", ingress.Spec.Rules)
	}
	var paths []string
	for _, p := range ingress.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path+" "+string(*p.PathType))
		if b := p.Backend.Service; b == nil || b.Name != "shop-gateway" || b.Port.Number != 8080 {
			t.Errorf("path %s goes to %+v, want shop-gateway:8080", p.Path, p.Backend)
		}
	}
	if !slices.Equal(paths, publicPaths) {
		t.Errorf("Ingress paths %q, want exactly the public ones %q (no /metrics, /healthz, /readyz)", paths, publicPaths)
	}

	route := find(objects, "HTTPRoute", "shop-gateway")
	parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
	hostnames, _, _ := unstructured.NestedStringSlice(route.Object, "spec", "hostnames")
	if len(parents) != 1 || parents[0].(map[string]any)["name"] != "public" || parents[0].(map[string]any)["namespace"] != "gateway-system" ||
		!slices.Equal(hostnames, []string{"shop.example.com"}) {
		t.Errorf("HTTPRoute parentRefs %v, hostnames %v", parents, hostnames)
	}
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	if len(rules) != 1 {
		t.Fatalf("HTTPRoute rules %v", rules)
	}
	paths = nil
	for _, m := range asSlice(rules[0].(map[string]any)["matches"]) {
		path := m.(map[string]any)["path"].(map[string]any)
		paths = append(paths, path["value"].(string)+" "+strings.TrimPrefix(path["type"].(string), "Path"))
	}
	backends := asSlice(rules[0].(map[string]any)["backendRefs"])
	if !slices.Equal(paths, publicPaths) || len(backends) != 1 || backends[0].(map[string]any)["name"] != "shop-gateway" {
		t.Errorf("HTTPRoute matches %q to %v, want %q to shop-gateway", paths, backends, publicPaths)
	}

	// The vendored CRD is strict: a field the HTTPRoute does not have is refused.
	broken := route.DeepCopy()
	_ = unstructured.SetNestedField(broken.Object, "shop.example.com", "spec", "hostname")
	if err := applyDryRun(t, []*unstructured.Unstructured{broken}); err == nil || !strings.Contains(err.Error(), "hostname") {
		t.Fatalf("an HTTPRoute with spec.hostname was accepted: %v", err)
	}
}

// The gateway trusts X-Forwarded-For from the front door's controller only,
// and by default from nobody.
func TestTheGatewayTrustsTheFrontDoorsProxiesOnly(t *testing.T) {
	data, _, _ := configOf(t, render(t, frontDoorValues...), "gateway")
	if got := data["KSHOP_GATEWAY_TRUSTED_PROXIES"]; got != "10.244.0.0/16,fd00:10:244::/56" {
		t.Errorf("KSHOP_GATEWAY_TRUSTED_PROXIES=%q", got)
	}
	data, _, _ = configOf(t, render(t), "gateway")
	if got, ok := data["KSHOP_GATEWAY_TRUSTED_PROXIES"]; ok {
		t.Errorf("by default the gateway trusts %q; it must trust nobody", got)
	}
	objects := render(t)
	if count(objects, "Ingress")+count(objects, "HTTPRoute") != 0 {
		t.Error("the front door is rendered by default")
	}
}

// The gateway admits the controller's pods of the named namespace, on its
// API port only; no other pod of that namespace, nobody elsewhere, and the
// controller reaches no other service.
func TestTheFrontDoorsControllerReachesTheGatewayOnly(t *testing.T) {
	objects := render(t, frontDoorValues...)
	ps := policiesIn(t, objects)
	gateway := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-gateway")}
	auth := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-auth")}
	controller := peer{namespace: "edge", labels: map[string]string{"app.kubernetes.io/name": "edge-proxy"}}
	for _, c := range []struct {
		from, to peer
		port     int32
		want     bool
		what     string
	}{
		{controller, gateway, 8080, true, "the controller to the gateway's API port"},
		{controller, gateway, 9090, false, "the controller to another port of the gateway"},
		{controller, auth, 8081, false, "the controller to auth"},
		{peer{namespace: "edge", labels: map[string]string{"app.kubernetes.io/name": "something-else"}}, gateway, 8080, false, "another pod of the controller's namespace"},
		{peer{namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "edge-proxy"}}, gateway, 8080, false, "the same labels in the default controller namespace"},
	} {
		if got := ps.allows(c.from, c.to, c.port, corev1.ProtocolTCP); got != c.want {
			t.Errorf("%s: allowed %v, want %v", c.what, got, c.want)
		}
	}
}

// kind's profile comes in through ingress-nginx on the control-plane node,
// not a NodePort, and trusts kind's pod network (kind/cluster.yaml).
func TestKindUsesTheFrontDoor(t *testing.T) {
	objects := render(t, valueSets["kind"]...)
	ingress := find(objects, "Ingress", releaseName+"-gateway")
	if ingress == nil {
		t.Fatal("values-kind.yaml renders no Ingress")
	}
	if class, _, _ := unstructured.NestedString(ingress.Object, "spec", "ingressClassName"); class != "nginx" {
		t.Errorf("IngressClass %q, want ingress-nginx's nginx", class)
	}
	if svcType, _, _ := unstructured.NestedString(find(objects, "Service", releaseName+"-gateway").Object, "spec", "type"); svcType != "ClusterIP" {
		t.Errorf("the gateway's Service is a %s; the front door replaces the NodePort", svcType)
	}
	if data, _, _ := configOf(t, objects, "gateway"); data["KSHOP_GATEWAY_TRUSTED_PROXIES"] != "10.244.0.0/16" {
		t.Errorf("KSHOP_GATEWAY_TRUSTED_PROXIES=%q, want kind's pod network", data["KSHOP_GATEWAY_TRUSTED_PROXIES"])
	}
	ps := policiesIn(t, objects)
	gateway := peer{namespace: namespace, labels: podLabels(t, objects, "Deployment", releaseName+"-gateway")}
	nginx := peer{namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller", "app.kubernetes.io/instance": "ingress-nginx"}}
	admission := peer{namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "admission-webhook"}}
	if !ps.allows(nginx, gateway, 8080, corev1.ProtocolTCP) || ps.allows(admission, gateway, 8080, corev1.ProtocolTCP) {
		t.Error("on kind, ingress-nginx's controller (and only it) must reach the gateway")
	}
	if ps.allows(peer{namespace: "default", labels: map[string]string{"app": "curl"}}, gateway, 8080, corev1.ProtocolTCP) {
		t.Error("on kind, any pod reaches the gateway")
	}
}

// A front door that would put every client in one bucket, or lead nowhere,
// is refused with the value to set.
func TestAFrontDoorWithoutItsSettingsIsRefused(t *testing.T) {
	on := []string{"--set", "frontDoor.ingress.enabled=true", "--set", "frontDoor.trustedProxies={10.0.0.0/8}"}
	for name, c := range map[string]struct {
		values []string
		want   string
	}{
		"no trusted proxies":      {[]string{"--set", "frontDoor.ingress.enabled=true"}, "frontDoor.trustedProxies is empty"},
		"route without trust":     {[]string{"--set", "frontDoor.httpRoute.enabled=true", "--set", "frontDoor.httpRoute.parentRefs[0].name=public"}, "frontDoor.trustedProxies is empty"},
		"route without a parent":  {[]string{"--set", "frontDoor.httpRoute.enabled=true", "--set", "frontDoor.trustedProxies={10.0.0.0/8}"}, "frontDoor.httpRoute.parentRefs is empty"},
		"TLS without hosts":       {append(on, "--set", "frontDoor.ingress.tls.enabled=true"), "needs frontDoor.ingress.hosts"},
		"two issuers":             {append(on, "--set", "frontDoor.ingress.hosts={a.example.com}", "--set", "frontDoor.ingress.tls.enabled=true", "--set", "frontDoor.ingress.tls.issuer=a", "--set", "frontDoor.ingress.tls.clusterIssuer=b"), "not both"},
		"issuer without TLS":      {append(on, "--set", "frontDoor.ingress.tls.clusterIssuer=b"), "tls.enabled is false"},
		"gateway closed to it":    {append(on, "--set", "services.gateway.allowFrom={order}"), `allowFrom must hold "ingress"`},
		"trusted proxies twice":   {append(on, "--set", "services.gateway.env.KSHOP_GATEWAY_TRUSTED_PROXIES=10.0.0.0/8"), "keep frontDoor.trustedProxies"},
		"gateway switched off":    {append(on, "--set", "services.gateway.enabled=false"), "services.gateway.enabled is false"},
		"a proxy that is no CIDR": {[]string{"--set", "frontDoor.trustedProxies={everyone}"}, "values don't meet the specifications of the schema"},
		"the old selector":        {[]string{"--set", "networkPolicy.ingressNamespaceSelector.matchLabels.x=y"}, "values don't meet the specifications of the schema"},
	} {
		err := renderError(t, c.values...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a failure saying %q", name, err, c.want)
		}
	}
}
