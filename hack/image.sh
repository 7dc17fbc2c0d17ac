#!/usr/bin/env bash
# image.sh builds one kshop service's image without Docker: the same binary the
# Dockerfile's build stage compiles, on the same distroless base (made from
# Debian packages by hack/ociimage), as a docker-archive tarball.
# hack/ociimage's tests check that this script and the Dockerfile agree.
#
#   hack/image.sh SERVICE REF [OUT.tar]
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
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/cachedir.sh
source hack/cachedir.sh

usage() {
	echo "usage: hack/image.sh gateway|auth|product|order|mail|controller|loadgen REF [OUT.tar]" >&2
	exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
SERVICE=$1 REF=$2
case "$SERVICE" in
gateway | auth | product | order | mail | controller | loadgen) ;;
*) usage ;;
esac
OUT=${3:-}
GCFLAGS=${GCFLAGS:-}

# The services that link librdkafka (confluent-kafka-go, directly or through
# the outbox) need cgo; the same list as the Dockerfile's.
case "$SERVICE" in
product|order|controller) cgo=1 ;;
*) cgo=0 ;;
esac

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

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

started=$SECONDS
if [ "$cgo" = 1 ]; then
	echo "image: building services/cmd/$SERVICE with cgo (the first cgo build compiles confluent-kafka-go's C side, a few minutes)" >&2
else
	echo "image: building services/cmd/$SERVICE" >&2
fi
# The Dockerfile's flags: -trimpath, -tags nomsgpack, and -s -w unless debugging with GCFLAGS.
CGO_ENABLED=$cgo GOOS=linux go build -trimpath -tags nomsgpack -gcflags "$GCFLAGS" -ldflags "$([ -n "$GCFLAGS" ] || echo -s -w)" \
	-o "$work/app" "./services/cmd/$SERVICE"

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
