#!/usr/bin/env bash
# kind.sh is `make kind-up` and `make kind-down`: the local Kubernetes cluster for
# `make dev` (skaffold dev). It needs Docker, which kind runs its nodes in.
#
#   hack/kind.sh up      create the cluster if missing, install metrics-server and ingress-nginx
#   hack/kind.sh down    delete the cluster
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLUSTER=kshop
CONTEXT="kind-$CLUSTER"
METRICS_SERVER_VERSION=v0.8.0
# ingress-nginx's manifest for kind: the controller on the node labelled
# ingress-ready (kind/cluster.yaml), host ports 80 and 443, IngressClass nginx.
INGRESS_NGINX_VERSION=controller-v1.15.1

kind="$(hack/tools.sh kind)"
need_docker() {
	docker info >/dev/null 2>&1 || {
		echo "kind: Docker is not running here; kind runs its nodes as Docker containers. Start Docker (or Docker Desktop) and run make kind-up again." >&2
		exit 1
	}
}

up() {
	need_docker
	if "$kind" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
		echo "kind: cluster $CLUSTER already exists" >&2
	else
		echo "kind: creating cluster $CLUSTER (1 control plane + 1 worker, about a minute)" >&2
		"$kind" create cluster --config kind/cluster.yaml --wait 120s
	fi
	echo "kind: fetching the chart's dependencies (Bitnami PostgreSQL, Kafka, Redis, RabbitMQ operator, Mailpit)" >&2
	"$(hack/tools.sh helm)" dependency build charts/kshop >&2
	echo "kind: installing metrics-server $METRICS_SERVER_VERSION (kubelets in kind have self-signed certificates)" >&2
	kubectl --context "$CONTEXT" apply -f "https://github.com/kubernetes-sigs/metrics-server/releases/download/$METRICS_SERVER_VERSION/components.yaml"
	kubectl --context "$CONTEXT" -n kube-system patch deployment metrics-server --type=json \
		-p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]' >/dev/null || true
	kubectl --context "$CONTEXT" -n kube-system rollout status deployment metrics-server --timeout=120s
	echo "kind: installing ingress-nginx $INGRESS_NGINX_VERSION, the front door on localhost:8080 (charts/kshop/values-kind.yaml, frontDoor)" >&2
	kubectl --context "$CONTEXT" apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX_VERSION/deploy/static/provider/kind/deploy.yaml"
	kubectl --context "$CONTEXT" -n ingress-nginx rollout status deployment ingress-nginx-controller --timeout=180s
	cat >&2 <<-EOF

		kind: cluster $CLUSTER is ready (context $CONTEXT).
		Next:
		  make dev                      skaffold dev: build, deploy and follow the logs (light profile)
		  curl -s localhost:8080/products   the API, through ingress-nginx      http://localhost:8025   the mail inbox
		  kubectl --context $CONTEXT get hpa -A -w
		  make kind-down                delete the cluster
	EOF
}

down() {
	"$kind" delete cluster --name "$CLUSTER"
}

case "${1:-}" in
up) up ;;
down) down ;;
*) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
