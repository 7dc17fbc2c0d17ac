#!/usr/bin/env bash
# tools.sh builds a Go tool once at a pinned version into the cache folder and
# prints its path; later calls reuse the build.
#
#   hack/tools.sh staticcheck
#   hack/tools.sh mailpit      (the SMTP sink with a web inbox that make run uses)
#   hack/tools.sh helm         (chart checks)
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

build() { # name package version
	local name=$1 pkg=$2 version=$3 dir="$KSHOP_CACHE_DIR/tools/$1-$3"
	if [ ! -x "$dir/$name" ]; then
		echo "tools: building $name $version once (about a minute), cached in $dir" >&2
		mkdir -p "$dir"
		GOBIN="$dir" GOFLAGS= go install "$pkg@$version" >&2
	fi
	printf '%s\n' "$dir/$name"
}

case "${1:-}" in
staticcheck) build staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2 ;;
mailpit) build mailpit github.com/axllent/mailpit v1.27.11 ;;
helm) build helm helm.sh/helm/v3/cmd/helm v3.22.0 ;;
*) echo "usage: hack/tools.sh staticcheck|mailpit|helm" >&2; exit 2 ;;
esac
