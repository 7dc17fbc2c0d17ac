#!/usr/bin/env bash
# test.sh is `make test`: it installs what is missing, starts the private test
# servers, runs go vet and the race-enabled test suite against them, and stops the
# servers again however the run ends (success, failure, Ctrl-C).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/install-deps.sh

# The chart and skaffold tests run helm, skaffold and a real kube-apiserver +
# etcd; all are built from the Go module proxy once (about 15 minutes the first
# time on 2 cores) and cached outside the work tree.
KUBEBUILDER_ASSETS="$(hack/kube-tools.sh)"
KSHOP_HELM="$(hack/tools.sh helm)"
KSHOP_SKAFFOLD="$(hack/tools.sh skaffold)"
KSHOP_PROMTOOL="$(hack/tools.sh promtool)"
# The registry skaffold's local profile pushes to (its build test runs one).
KSHOP_REGISTRY="$(hack/tools.sh registry)"
export KUBEBUILDER_ASSETS KSHOP_HELM KSHOP_SKAFFOLD KSHOP_PROMTOOL KSHOP_REGISTRY
# The images' base layer, from Debian packages (once per package versions, a few
# seconds, cached in $KSHOP_CACHE_DIR/images): the image tests build on it.
go run ./hack/ociimage -base distroless-base -prepare >/dev/null

stop_servers() { hack/testenv.sh down || true; }
trap stop_servers EXIT
trap 'exit 130' INT TERM

hack/testenv.sh up
eval "$(hack/testenv.sh env)"

echo "test: go vet ./..." >&2
go vet ./...
go vet -tags cluster ./charts/kshop/clustertest/

# Each package's tests run in their own process; two at a time fits 2 cores and the
# servers. -count=1 because results depend on servers, not only on code.
echo "test: go test -race ./... (first run compiles confluent-kafka-go's cgo part, about a minute)" >&2
go test -race -count=1 -timeout 20m ${GO_TEST_FLAGS:-} ./...

# The chart on a real one-node Kubernetes (docs/kubernetes.md, "The test
# cluster"): its own cluster and infrastructure, so the test servers go first.
stop_servers
trap - EXIT
hack/cluster-test.sh

# The chaos run (docs/chaos.md): load while RabbitMQ, the Kafka broker and
# PostgreSQL restart, then a reconciliation of everything. It uses servers of
# its own.
hack/chaos.sh
