#!/usr/bin/env bash
# kube-tools.sh builds, once per version, the Kubernetes pieces the chart and
# controller tests run for real: kube-apiserver and kubectl from k8s.io/kubernetes,
# etcd from go.etcd.io/etcd, all through the Go module proxy. It prints the folder
# holding them (what envtest calls KUBEBUILDER_ASSETS).
#
#   hack/kube-tools.sh        build if missing, print the folder
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

KUBE_VERSION="${KSHOP_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${KSHOP_ETCD_VERSION:-v3.7.3}"
DIR="$KSHOP_CACHE_DIR/tools/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"

build_kubernetes() {
	local work minor major staging
	echo "kube-tools: building kube-apiserver and kubectl $KUBE_VERSION once (about 10 minutes on 2 cores), cached in $DIR" >&2
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' RETURN
	# k8s.io/kubernetes points its staging modules at ./staging; a module that
	# requires it must point them at their published versions (v0.x.y).
	staging="v0.${KUBE_VERSION#v1.}"
	(
		cd "$work"
		go mod init kshop.local/kube-tools >/dev/null 2>&1
		gomod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
		{
			echo "require k8s.io/kubernetes $KUBE_VERSION"
			grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
		} >>go.mod
		cat >tools.go <<-'GO'
			//go:build tools

			package tools

			import (
				_ "k8s.io/kubernetes/cmd/kube-apiserver"
				_ "k8s.io/kubernetes/cmd/kubectl"
			)
		GO
		GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
		major=1
		minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
		ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
		GOFLAGS=-mod=mod go build -tags tools -ldflags "$ldflags" -o "$DIR/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
		GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$DIR/kubectl" k8s.io/kubernetes/cmd/kubectl
	)
}

build_etcd() {
	local work
	echo "kube-tools: building etcd $ETCD_VERSION once (about 2 minutes), cached in $DIR" >&2
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' RETURN
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
		GOFLAGS=-mod=mod go build -ldflags "-s -w" -o "$DIR/etcd" .
	)
}

mkdir -p "$DIR"
[ -x "$DIR/kube-apiserver" ] && [ -x "$DIR/kubectl" ] || build_kubernetes
[ -x "$DIR/etcd" ] || build_etcd
printf '%s\n' "$DIR"
