#!/usr/bin/env bash
# image.sh builds one kshop service's image without Docker: the same binary the
# Dockerfile's build stage compiles, on the same distroless base (made from
# Debian packages by hack/ociimage), as a docker-archive tarball.
# hack/ociimage's tests check that this script and the Dockerfile agree.
#
#   hack/image.sh SERVICE REF [OUT.tar]
#
#   hack/image.sh --compile-only SERVICE...
#
# SERVICE is gateway, auth, product, order, mail, controller or loadgen; REF the
# image reference (kshop.local/kshop/gateway:dev). OUT defaults to
# $KSHOP_CACHE_DIR/images/<REF without its tag, / and : made _>.tar, one file per
# image name, replaced by each build.
#
# With KSHOP_CLUSTER_CONTAINERD set (hack/cluster.sh env), the image is also
# imported into that containerd (namespace k8s.io), where the kubelet finds it.
# With PUSH_IMAGE=true (skaffold's custom builder sets it), it is pushed to the
# registry REF names instead (hack/registry.sh, for skaffold's local profile),
# and written to OUT only if OUT is given.
# GCFLAGS passes -gcflags to the build, as the Dockerfile's GCFLAGS build
# argument does (skaffold debug).
# --compile-only compiles the binaries and keeps nothing but the Go build cache,
# so that later image builds only link (make test does it while its Go suite runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/cachedir.sh
source hack/cachedir.sh

usage() {
	echo "usage: hack/image.sh gateway|auth|product|order|mail|controller|loadgen REF [OUT.tar]" >&2
	echo "       hack/image.sh --compile-only SERVICE..." >&2
	exit 2
}
check_service() {
	case "$1" in
	gateway | auth | product | order | mail | controller | loadgen) ;;
	*) usage ;;
	esac
}
GCFLAGS=${GCFLAGS:-}

# compile SERVICE OUT builds the binary the Dockerfile's build stage builds.
compile() {
	local service=$1 out=$2 cgo started=$SECONDS
	# The services that link librdkafka (confluent-kafka-go, directly or through
	# the outbox) need cgo; the same list as the Dockerfile's.
	case "$service" in
	product|order|controller) cgo=1 ;;
	*) cgo=0 ;;
	esac
	if [ "$cgo" = 1 ]; then
		echo "image: building services/cmd/$service with cgo (the first cgo build compiles confluent-kafka-go's C side, a few minutes)" >&2
	else
		echo "image: building services/cmd/$service" >&2
	fi
	# The Dockerfile's flags: -trimpath, -tags nomsgpack, and -s -w unless debugging with GCFLAGS.
	CGO_ENABLED=$cgo GOOS=linux go build -trimpath -tags nomsgpack -gcflags "$GCFLAGS" -ldflags "$([ -n "$GCFLAGS" ] || echo -s -w)" \
		-o "$out" "./services/cmd/$service"
	echo "image: compiled services/cmd/$service in $((SECONDS - started))s" >&2
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ "${1:-}" = --compile-only ]; then
	shift
	[ $# -ge 1 ] || usage
	for service in "$@"; do check_service "$service"; done
	for service in "$@"; do compile "$service" "$work/$service"; done
	exit 0
fi

[ $# -ge 2 ] && [ $# -le 3 ] || usage
SERVICE=$1 REF=$2
check_service "$SERVICE"
OUT=${3:-}

output=()
if [ "${PUSH_IMAGE:-false}" = true ]; then
	output=(-push)
	# The registry keeps the image: no copy on disk unless asked.
	[ -z "$OUT" ] || output+=(-o "$OUT")
	case "${REF%%/*}" in
	*.* | *:* | localhost) ;;
	*)
		echo "image: skaffold asks to push $REF, which names no registry: run skaffold with --default-repo=127.0.0.1:15000 (the registry of hack/registry.sh up)" >&2
		exit 1
		;;
	esac
else
	OUT=${OUT:-$KSHOP_CACHE_DIR/images/$(printf '%s' "${REF%:*}" | tr '/:' '__').tar}
	output=(-o "$OUT")
fi

started=$SECONDS
compile "$SERVICE" "$work/app"

# The Dockerfile's runtime stage: distroless/base-debian12:nonroot, /app, USER
# 65532:65532, ENTRYPOINT ["/app"].
go run ./hack/ociimage -base distroless-base -add "$work/app:/app:0755" -entrypoint /app \
	-user 65532:65532 -tag "$REF" "${output[@]}"

# A pushed image reaches the cluster from the registry; an import would only
# duplicate it under another digest.
if [ -n "${KSHOP_CLUSTER_CONTAINERD:-}" ] && [ "${PUSH_IMAGE:-false}" != true ]; then
	ctr --address "$KSHOP_CLUSTER_CONTAINERD" -n k8s.io images import "$OUT" >&2
	echo "image: imported $REF into $KSHOP_CLUSTER_CONTAINERD" >&2
fi
echo "image: $REF in $((SECONDS - started))s${OUT:+: $OUT}" >&2
