#!/usr/bin/env bash
# cluster-test.sh is `make cluster-test` (and the cluster phase of `make test`):
# it starts the one-node Kubernetes (hack/cluster.sh), the infrastructure outside
# it (hack/cluster-infra.sh), builds every image offline into the cluster
# (hack/image.sh), and runs charts/kshop/clustertest, which installs the chart
# and proves its promises. Everything is stopped and removed however the run
# ends: a cluster left behind would hold iptables rules, mounts and processes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/cachedir.sh

teardown() {
	echo "cluster-test: tearing down the infrastructure and the cluster" >&2
	hack/cluster-infra.sh down || true
	hack/cluster.sh down || true
}
trap teardown EXIT
trap 'exit 130' INT TERM

KSHOP_HELM="$(hack/tools.sh helm)"
KSHOP_SKAFFOLD="$(hack/tools.sh skaffold)"
export KSHOP_HELM KSHOP_SKAFFOLD

hack/cluster.sh up
eval "$(hack/cluster.sh env)"
hack/cluster-infra.sh up
eval "$(hack/cluster-infra.sh env)"

# A tag per run, so the cluster never runs an image of an earlier build.
KSHOP_CLUSTER_IMAGE_TAG="test-$(date +%s)"
export KSHOP_CLUSTER_IMAGE_TAG
started=$SECONDS
echo "cluster-test: building the 7 images offline and importing them into the cluster (about a minute with a warm Go cache)" >&2
for service in gateway auth product order mail controller loadgen; do
	log="$KSHOP_CLUSTER_DIR/logs/image-$service.log"
	if ! hack/image.sh "$service" "kshop.local/kshop/$service:$KSHOP_CLUSTER_IMAGE_TAG" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		echo "cluster-test: the $service image did not build; its log: $log" >&2
		exit 1
	fi
	echo "cluster-test:   $(tail -n 1 "$log" | sed 's/^image: //')" >&2
done
echo "cluster-test: images ready in $((SECONDS - started)) s" >&2

echo "cluster-test: go test -tags cluster ./charts/kshop/clustertest (about 15 minutes: install, helm test, a rolling upgrade under load, key rotation, HPA, PDB, NetworkPolicy, uninstall, skaffold run)" >&2
go test -tags cluster -count=1 -v -timeout 50m ./charts/kshop/clustertest/
