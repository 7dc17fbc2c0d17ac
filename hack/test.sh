#!/usr/bin/env bash
# test.sh is `make test`: it installs what is missing, starts the private test
# servers, runs go vet and the race-enabled test suite against them, and stops the
# servers again however the run ends (success, failure, Ctrl-C).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source hack/cachedir.sh

hack/install-deps.sh

started=$SECONDS
background=()
stop_background() {
	local pid
	# Each background job leads its own process group (setsid), so its go
	# build children stop with it.
	for pid in "${background[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
}
trap stop_background EXIT
trap 'exit 130' INT TERM

# The chart and skaffold tests run helm, skaffold and a real kube-apiserver +
# etcd; all are built from the Go module proxy once (about 15 minutes the first
# time on 2 cores) and cached outside the work tree. Two lanes at a time:
# kube-apiserver's compile keeps both cores busy most of the time, and the
# other lane takes the time its module download and single-threaded link
# leave idle.
answers="$(mktemp -d)"
setsid hack/kube-tools.sh >"$answers/kube" &
background+=($!)
kube_tools=$!
setsid bash -c 'for tool in helm skaffold promtool registry; do hack/tools.sh "$tool" || exit; done' >"$answers/tools" &
background+=($!)
wait "$kube_tools" || { echo "test: building kube-apiserver, kubectl or etcd failed (above)" >&2; exit 1; }
wait "${background[1]}" || { echo "test: building helm, skaffold, promtool or the registry failed (above)" >&2; exit 1; }
background=()
KUBEBUILDER_ASSETS="$(cat "$answers/kube")"
{ read -r KSHOP_HELM; read -r KSHOP_SKAFFOLD; read -r KSHOP_PROMTOOL; read -r KSHOP_REGISTRY; } <"$answers/tools"
rm -rf "$answers"
# KSHOP_REGISTRY is the registry skaffold's local profile pushes to (its build test runs one).
export KUBEBUILDER_ASSETS KSHOP_HELM KSHOP_SKAFFOLD KSHOP_PROMTOOL KSHOP_REGISTRY
echo "test: the Go suite's tools are ready ($((SECONDS - started)) s)" >&2

# The images' base layer, from Debian packages (once per package versions, a few
# seconds, cached in $KSHOP_CACHE_DIR/images): the image tests build on it.
go run ./hack/ociimage -base distroless-base -prepare >/dev/null

stop_servers() { hack/testenv.sh down || true; }
trap 'stop_servers; stop_background' EXIT

hack/testenv.sh up
eval "$(hack/testenv.sh env)"

# The cluster phase's components (kubelet, CoreDNS, metrics-server, ...; about
# 13 minutes the first time) and the images' binaries compile while the Go suite
# runs, at the lowest CPU priority: the suite waits on its servers much of the
# time, and these builds take those idle cycles rather than the suite's. With a
# warm cache they find everything built and end at once.
# setsid puts the job in a session of its own, and where the kernel groups
# CPU time by session (autogroup), a session's processes share one weight
# whatever their nice: the job lowers its session's weight too.
prebuild_log="$KSHOP_CACHE_DIR/test-prebuild.log"
setsid nice -n 19 bash -c '
	echo 19 >/proc/self/autogroup 2>/dev/null || true
	hack/kube-tools.sh cluster >/dev/null && hack/image.sh --compile-only gateway auth product order mail controller loadgen' >"$prebuild_log" 2>&1 &
background+=($!)

echo "test: go vet ./..." >&2
go vet ./...
go vet -tags cluster ./charts/kshop/clustertest/

# Each package's tests run in their own process; two at a time fits 2 cores and the
# servers. -count=1 because results depend on servers, not only on code.
echo "test: go test -race ./... (first run compiles confluent-kafka-go's cgo part, about a minute)" >&2
go test -race -count=1 -timeout 20m ${GO_TEST_FLAGS:-} ./...
echo "test: the Go suite passed ($((SECONDS - started)) s since the start)" >&2

waited=$SECONDS
echo "test: waiting for the cluster's components, built in the background during the Go suite (log: $prebuild_log)" >&2
if ! wait "${background[0]}"; then
	# Not fatal: the cluster phase builds what is missing again, in the open.
	tail -n 20 "$prebuild_log" >&2
	echo "test: the background build failed (above); the cluster phase builds what is missing" >&2
fi
background=()
echo "test: waited $((SECONDS - waited)) s for them" >&2

# The chart on a real one-node Kubernetes (docs/kubernetes.md, "The test
# cluster"): its own cluster and infrastructure, so the test servers go first.
stop_servers
trap - EXIT
hack/cluster-test.sh
echo "test: the cluster phase passed ($((SECONDS - started)) s since the start)" >&2

# The chaos run (docs/chaos.md): load while RabbitMQ, the Kafka broker and
# PostgreSQL restart, then a reconciliation of everything. It uses servers of
# its own.
hack/chaos.sh
