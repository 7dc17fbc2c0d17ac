#!/usr/bin/env bash
# kube-tools.sh builds, once per version, the Kubernetes pieces kshop runs for real,
# all through the Go module proxy, into cache folders outside the work tree.
#
#   hack/kube-tools.sh           kube-apiserver, kubectl and etcd (what the chart and
#                                controller tests use); prints their folder (envtest's
#                                KUBEBUILDER_ASSETS)
#   hack/kube-tools.sh cluster   also everything hack/cluster.sh runs: kubelet,
#                                kube-controller-manager, kube-scheduler, kube-proxy,
#                                CoreDNS, metrics-server, kube-router and the pause
#                                binary; prints shell assignments (paths, versions) to eval
#
# Every version the test cluster runs is pinned here, in one place.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

KUBE_VERSION="${KSHOP_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${KSHOP_ETCD_VERSION:-v3.7.3}"
COREDNS_VERSION=v1.15.0
METRICS_SERVER_VERSION=v0.8.0
# The NetworkPolicy enforcer. kube-router's firewall (iptables + ipset) rather than
# sigs.k8s.io/kube-network-policies: the latter hands packets to user space with
# nftables' `queue` statement, and kernels built without CONFIG_NFT_QUEUE (this
# test machine's among them) reject that rule.
KUBE_ROUTER_VERSION=v2.1.0
# The pause binary comes from build/pause in the k8s.io/kubernetes module; its
# image tag follows that folder's Makefile (TAG), not the Kubernetes version.
PAUSE_VERSION=3.10.2

TOOLS="$KSHOP_CACHE_DIR/tools"
DIR="$TOOLS/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"

log() { printf 'kube-tools: %s\n' "$*" >&2; }

# Two runs (make test's phases, a developer's shell) must not build the same
# binary at once: the second waits for the first and then finds it built.
lock_builds() {
	mkdir -p "$TOOLS"
	exec 9>"$TOOLS/.kube-tools.lock"
	if ! flock -n 9; then
		log "another kube-tools.sh is building; waiting for it"
		flock 9
	fi
}

# gomod_with_kubernetes writes, in the current folder, a throwaway module that
# requires k8s.io/kubernetes and imports the given commands. k8s.io/kubernetes
# points its staging modules at ./staging; a module that requires it must point
# them at their published versions (v0.x.y).
gomod_with_kubernetes() { # cmd...
	local staging="v0.${KUBE_VERSION#v1.}" gomod cmd
	go mod init kshop.local/kube-tools >/dev/null 2>&1
	gomod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
	{
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
	} >>go.mod
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
		printf ')\n'
	} >tools.go
	GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
}

# Build times measured on 2 cores with a cold Go build cache, each command after
# those before it (they share most packages): kube-apiserver 6.5 min, kubectl 25 s,
# kubelet 80 s, kube-controller-manager 35 s, kube-scheduler and kube-proxy 15 s.
kube_build_time() {
	case "$1" in
	kube-apiserver) echo "about 7 minutes" ;;
	kubelet) echo "about 1.5 minutes" ;;
	*) echo "under a minute" ;;
	esac
}

build_kubernetes() { # cmd... (only the missing ones are built)
	local missing=() cmd work major=1 minor ldflags start
	for cmd in "$@"; do [ -x "$DIR/$cmd" ] || missing+=("$cmd"); done
	[ ${#missing[@]} -gt 0 ] || return 0
	work="$(mktemp -d)"
	minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
	ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
	(
		cd "$work"
		gomod_with_kubernetes "${missing[@]}"
		for cmd in "${missing[@]}"; do
			log "building $cmd $KUBE_VERSION once ($(kube_build_time "$cmd") on 2 cores), cached in $DIR"
			start=$SECONDS
			GOFLAGS=-mod=mod go build -tags tools -ldflags "$ldflags" -o "$DIR/$cmd.partial" "k8s.io/kubernetes/cmd/$cmd"
			mv "$DIR/$cmd.partial" "$DIR/$cmd"
			log "built $cmd in $((SECONDS - start))s"
		done
	)
	rm -rf "$work"
}

build_etcd() {
	local work start
	[ -x "$DIR/etcd" ] && return 0
	log "building etcd $ETCD_VERSION once (about a minute), cached in $DIR"
	start=$SECONDS
	work="$(mktemp -d)"
	(
		cd "$work"
		go mod init kshop.local/etcd >/dev/null 2>&1
		cat >main.go <<-'GO'
			package main

			import (
				"os"

				"go.etcd.io/etcd/server/v3/etcdmain"
			)

			func main() { etcdmain.Main(os.Args) }
		GO
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
		GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
		GOFLAGS=-mod=mod go build -ldflags "-s -w" -o "$DIR/etcd.partial" .
		mv "$DIR/etcd.partial" "$DIR/etcd"
	)
	rm -rf "$work"
	log "built etcd in $((SECONDS - start))s"
}

# go_install builds a module's command that needs no replace directives; static
# (CGO_ENABLED=0) so that it runs on an image without a C library.
go_install() { # name package version minutes [ldflags]
	local name=$1 pkg=$2 version=$3 minutes=$4 ldflags=${5:-} dir="$TOOLS/$1-$3" start=$SECONDS
	[ -x "$dir/$name" ] && return 0
	log "building $name $version once (about $minutes minutes on 2 cores), cached in $dir"
	mkdir -p "$dir"
	GOBIN="$dir" GOFLAGS='' CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version" >&2
	log "built $name in $((SECONDS - start))s"
}

# CoreDNS from a small main that links only the plugins the cluster's Corefile
# uses: the stock binary links every plugin (cloud DNS providers and all) and
# takes several times longer to build. Directives keep CoreDNS's own order.
build_coredns() {
	local dir="$TOOLS/coredns-$COREDNS_VERSION" work start=$SECONDS
	[ -x "$dir/coredns" ] && return 0
	log "building coredns $COREDNS_VERSION once (about 2 minutes on 2 cores), cached in $dir"
	mkdir -p "$dir"
	work="$(mktemp -d)"
	(
		cd "$work"
		go mod init kshop.local/coredns >/dev/null 2>&1
		cat >main.go <<-'GO'
			// Command coredns is CoreDNS with the plugins a cluster-local DNS needs.
			package main

			import (
				"github.com/coredns/coredns/core/dnsserver"
				"github.com/coredns/coredns/coremain"

				_ "github.com/coredns/coredns/plugin/cache"
				_ "github.com/coredns/coredns/plugin/errors"
				_ "github.com/coredns/coredns/plugin/health"
				_ "github.com/coredns/coredns/plugin/kubernetes"
				_ "github.com/coredns/coredns/plugin/loadbalance"
				_ "github.com/coredns/coredns/plugin/log"
				_ "github.com/coredns/coredns/plugin/metrics"
				_ "github.com/coredns/coredns/plugin/ready"
				_ "github.com/coredns/coredns/plugin/reload"
				_ "github.com/coredns/coredns/plugin/template"
			)

			// The order CoreDNS's plugin.cfg gives these plugins.
			func init() {
				dnsserver.Directives = []string{
					"reload", "ready", "health", "prometheus", "errors", "log",
					"loadbalance", "cache", "template", "kubernetes",
				}
			}

			func main() { coremain.Run() }
		GO
		GOFLAGS=-mod=mod go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1
		GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
		GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/coredns.partial" .
		mv "$dir/coredns.partial" "$dir/coredns"
	)
	rm -rf "$work"
	log "built coredns in $((SECONDS - start))s"
}

# The pause binary: Kubernetes' own build/pause/linux/pause.c, static, as its
# Makefile builds it.
build_pause() {
	local dir="$TOOLS/pause-$PAUSE_VERSION" src
	[ -x "$dir/pause" ] && return 0
	log "building pause $PAUSE_VERSION once (seconds), cached in $dir"
	mkdir -p "$dir"
	src="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c"
	[ -f "$src" ] || { log "error: $src is missing from the k8s.io/kubernetes module"; exit 1; }
	gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-kshop" -o "$dir/pause.partial" "$src"
	mv "$dir/pause.partial" "$dir/pause"
}

mkdir -p "$DIR"
lock_builds
case "${1:-}" in
"")
	build_kubernetes kube-apiserver kubectl
	build_etcd
	printf '%s\n' "$DIR"
	;;
cluster)
	build_kubernetes kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy
	build_etcd
	build_pause
	build_coredns
	go_install metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" 2.5 \
		"-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
	go_install kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" 1.5 \
		"-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
	cat <<-EOF
		KUBE_VERSION=$KUBE_VERSION
		ETCD_VERSION=$ETCD_VERSION
		COREDNS_VERSION=$COREDNS_VERSION
		METRICS_SERVER_VERSION=$METRICS_SERVER_VERSION
		KUBE_ROUTER_VERSION=$KUBE_ROUTER_VERSION
		PAUSE_VERSION=$PAUSE_VERSION
		KUBE_BIN_DIR=$DIR
		PAUSE_BIN=$TOOLS/pause-$PAUSE_VERSION/pause
		COREDNS_BIN=$TOOLS/coredns-$COREDNS_VERSION/coredns
		METRICS_SERVER_BIN=$TOOLS/metrics-server-$METRICS_SERVER_VERSION/metrics-server
		KUBE_ROUTER_BIN=$TOOLS/kube-router-$KUBE_ROUTER_VERSION/kube-router
	EOF
	;;
*)
	echo "usage: hack/kube-tools.sh [cluster]" >&2
	exit 2
	;;
esac
