#!/usr/bin/env bash
# tools.sh builds a Go tool once at a pinned version into the cache folder and
# prints its path; later calls reuse the build.
#
#   hack/tools.sh staticcheck
#   hack/tools.sh mailpit      (the SMTP sink with a web inbox that make run uses)
#   hack/tools.sh helm         (chart checks)
#   hack/tools.sh skaffold     (skaffold render checks)
#   hack/tools.sh registry     (the local image registry skaffold's local profile pushes to)
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

build() { # name package version [ldflags] [cache key, when the ldflags make a different build]
	local name=$1 pkg=$2 version=$3 ldflags=${4:-} dir="$KSHOP_CACHE_DIR/tools/$1-${5:-$3}"
	if [ ! -x "$dir/$name" ]; then
		echo "tools: building $name $version once (about a minute), cached in $dir" >&2
		mkdir -p "$dir"
		GOBIN="$dir" GOFLAGS= go install -ldflags "$ldflags" "$pkg@$version" >&2
	fi
	printf '%s\n' "$dir/$name"
}

# skaffold cannot be installed with `go install`: its go.mod has replace
# directives, which only apply in the main module. A wrapper module that
# requires it and repeats those replace lines builds it.
build_skaffold() { # version
	local version=$1 dir="$KSHOP_CACHE_DIR/tools/skaffold-$1" work gomod
	if [ ! -x "$dir/skaffold" ]; then
		echo "tools: building skaffold $version once (about 8 minutes on 2 cores), cached in $dir" >&2
		mkdir -p "$dir"
		work="$(mktemp -d)"
		(
			cd "$work"
			go mod init kshop.local/skaffold >/dev/null 2>&1
			gomod="$(GOFLAGS=-mod=mod go mod download -json "github.com/GoogleContainerTools/skaffold/v2@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
			{
				echo "require github.com/GoogleContainerTools/skaffold/v2 $version"
				grep -E '^replace ' "$gomod"
			} >>go.mod
			printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold"\n' >tools.go
			GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
			GOFLAGS=-mod=mod go build -ldflags "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$version" -o "$dir/skaffold" github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold
		) >&2
		rm -rf "$work"
	fi
	printf '%s\n' "$dir/skaffold"
}

# promtool comes from Debian's prometheus package, unpacked into the cache
# rather than installed: installing it would also start a Prometheus server.
build_promtool() {
	local dir="$KSHOP_CACHE_DIR/tools/promtool-debian"
	if [ ! -x "$dir/usr/bin/promtool" ]; then
		echo "tools: unpacking promtool from Debian's prometheus package, cached in $dir" >&2
		mkdir -p "$dir"
		# A fresh machine may have no package lists yet: update them once on failure.
		(cd "$dir" && { apt-get download prometheus >&2 2>/dev/null || { apt-get update -qq >&2 && apt-get download prometheus >&2; }; } &&
			dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb)
	fi
	printf '%s\n' "$dir/usr/bin/promtool"
}

case "${1:-}" in
staticcheck) build staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2 ;;
mailpit) build mailpit github.com/axllent/mailpit v1.27.11 ;;
# helm's idea of "the cluster's version" when no cluster is asked (template,
# lint) comes from ldflags, as in its release builds; without them it is 1.20,
# and charts requiring a newer Kubernetes refuse to render.
helm) build helm helm.sh/helm/v3/cmd/helm v3.22.0 \
	"-X helm.sh/helm/v3/internal/version.version=v3.22.0 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37" \
	v3.22.0-k8s1.37 ;;
skaffold) build_skaffold v2.24.0 ;;
kind) build kind sigs.k8s.io/kind v0.33.0 ;;
registry) build registry github.com/distribution/distribution/v3/cmd/registry v3.1.2 ;;
promtool) build_promtool ;;
*) echo "usage: hack/tools.sh staticcheck|mailpit|helm|skaffold|kind|promtool|registry" >&2; exit 2 ;;
esac
