#!/usr/bin/env bash
# registry.sh runs the image registry that skaffold's `local` profile pushes to:
# CNCF distribution on 127.0.0.1:15000, plain HTTP, no credentials, reachable
# from this machine only. Skaffold cannot build without a Docker daemon unless it
# pushes (it asks the registry for each image's digest), and the test cluster's
# containerd pulls from a loopback registry over plain HTTP by default.
# The registry is a transit point, not a store: `down` deletes what it holds.
#
#   hack/registry.sh up      start it (idempotent)
#   hack/registry.sh down    stop it, delete its data
#
# Then: skaffold run -m kshop -p local --default-repo=127.0.0.1:15000
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

# Fixed, as skaffold.yaml's local profile names its images after it; below
# Linux's ephemeral port range like the test servers' ports.
ADDRESS=127.0.0.1:15000
STATE_DIR="$KSHOP_CACHE_DIR/registry"

log() { printf 'registry: %s\n' "$*" >&2; }

running() { [ -f "$STATE_DIR/pid" ] && kill -0 "$(cat "$STATE_DIR/pid")" 2>/dev/null; }
answers() { curl -fsS -o /dev/null "http://$ADDRESS/v2/" 2>/dev/null; }

up() {
	if running && answers; then
		log "already running on $ADDRESS"
		return
	fi
	local registry
	registry="$("$HACK_DIR/tools.sh" registry)"
	mkdir -p "$STATE_DIR/data"
	cat >"$STATE_DIR/config.yml" <<-EOF
		version: 0.1
		log:
		  level: warn
		storage:
		  filesystem:
		    rootdirectory: $STATE_DIR/data
		  delete:
		    enabled: true
		http:
		  addr: $ADDRESS
	EOF
	log "starting the image registry on $ADDRESS (data in $STATE_DIR)"
	# No traces or metrics exported anywhere: nothing listens for them here.
	OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
		setsid "$registry" serve "$STATE_DIR/config.yml" >"$STATE_DIR/log" 2>&1 </dev/null &
	echo $! >"$STATE_DIR/pid"
	for _ in $(seq 100); do
		answers && return
		running || break
		sleep 0.1
	done
	log "the registry did not answer on $ADDRESS; its log:"
	tail -20 "$STATE_DIR/log" >&2 || true
	exit 1
}

down() {
	if running; then
		local pid
		pid="$(cat "$STATE_DIR/pid")"
		kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
		log "stopped"
	fi
	rm -rf "$STATE_DIR"
}

case "${1:-}" in
up) up ;;
down) down ;;
*) echo "usage: hack/registry.sh up|down" >&2; exit 2 ;;
esac
