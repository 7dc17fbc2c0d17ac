#!/usr/bin/env bash
# cluster-infra.sh runs the infrastructure that the chart's external mode points
# at when kshop is installed on the test cluster (hack/cluster.sh): PostgreSQL,
# Redis, RabbitMQ, a Kafka-protocol broker and Mailpit, outside the cluster, on
# the cluster's bridge address, the way a staging cluster reaches managed
# databases and brokers. Pods reach them through 10.213.0.1; nothing listens on
# any other interface. Every password is generated at `up`; the chart reads them
# from Secrets that `secrets` creates (charts/kshop/values-local.yaml names them).
#
#   hack/cluster-infra.sh up               start everything (after hack/cluster.sh up)
#   hack/cluster-infra.sh down             stop everything
#   hack/cluster-infra.sh env              print the export lines tests read
#   hack/cluster-infra.sh secrets NS       create or update the Secrets in namespace NS
#   hack/cluster-infra.sh status           show what answers
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/cachedir.sh
source hack/cachedir.sh

DIR="${KSHOP_CLUSTER_INFRA_DIR:-$KSHOP_CACHE_DIR/cluster-infra}"
HOST_IP="${KSHOP_CLUSTER_HOST_IP:-10.213.0.1}"
POD_CIDR="${KSHOP_CLUSTER_POD_CIDR:-10.213.0.0/24}"
# Ports of their own (13xxx), so `make test`'s, `make chaos`'s and `make run`'s
# servers can run beside them; values-local.yaml names the same ones.
POSTGRES_PORT="${KSHOP_CLUSTER_POSTGRES_PORT:-13432}"
REDIS_PORT="${KSHOP_CLUSTER_REDIS_PORT:-13379}"
RABBITMQ_PORT="${KSHOP_CLUSTER_RABBITMQ_PORT:-13672}"
KAFKA_PORT="${KSHOP_CLUSTER_KAFKA_PORT:-13092}"
SMTP_PORT="${KSHOP_CLUSTER_SMTP_PORT:-13025}"
INBOX_PORT="${KSHOP_CLUSTER_INBOX_PORT:-13080}"
DATABASES="auth product order mail"
DB_USER=kshop
AMQP_USER=kshop

log() { printf 'cluster-infra: %s\n' "$*" >&2; }
die() { printf 'cluster-infra: error: %s\n' "$*" >&2; exit 1; }

# random_password is 24 characters from 18 random bytes, base64 with '+' and '/'
# as '_' and '.': safe in URLs and never starting with '-', which rabbitmqctl
# would read as an option (base64's '+' turned into '-' did, one run in 64).
random_password() { head -c 18 /dev/urandom | base64 | tr '+/' '_.'; }

# The servers themselves are hack/testenv.sh's, on the bridge address.
testenv() {
	KSHOP_TESTENV_DIR="$DIR/servers" KSHOP_TESTENV_HOST="$HOST_IP" KSHOP_TESTENV_CLIENTS="$POD_CIDR" \
		KSHOP_TESTENV_SERVERS="postgres redis rabbitmq" KSHOP_TESTENV_POSTGRES_PORT="$POSTGRES_PORT" \
		KSHOP_TESTENV_REDIS_PORT="$REDIS_PORT" KSHOP_TESTENV_RABBITMQ_PORT="$RABBITMQ_PORT" \
		KSHOP_TESTENV_REDIS_PASSWORD="${REDIS_PASSWORD:-}" hack/testenv.sh "$@"
}

load_credentials() {
	[ -f "$DIR/credentials" ] || die "no credentials in $DIR: run hack/cluster-infra.sh up first"
	# shellcheck source=/dev/null
	source "$DIR/credentials"
}

wait_for_port() { # name port seconds
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		if (exec 3<>"/dev/tcp/$HOST_IP/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$1 did not open $HOST_IP:$2 within $3 s; see $DIR/$1.log"
}

start_background() { # name command...
	local name=$1
	shift
	nohup "$@" >"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
}

stop_background() { # name
	local file="$DIR/$1.pid" pid i
	[ -f "$file" ] || return 0
	pid="$(cat "$file")"
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

up() {
	ip -o addr show | grep -q " inet $HOST_IP/" ||
		die "$HOST_IP is not an address of this machine: start the test cluster first (hack/cluster.sh up)"
	down
	mkdir -p "$DIR"
	local started=$SECONDS
	# Fresh random passwords every time: nothing published, nothing reused.
	umask 077
	cat >"$DIR/credentials" <<-EOF
		POSTGRES_PASSWORD=$(random_password)
		REDIS_PASSWORD=$(random_password)
		RABBITMQ_PASSWORD=$(random_password)
	EOF
	umask 022
	load_credentials
	testenv up

	local socket="$DIR/servers/postgres" db
	psql -q -h "$socket" -p "$POSTGRES_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
		-c "CREATE ROLE $DB_USER LOGIN PASSWORD '$POSTGRES_PASSWORD'" >/dev/null
	for db in $DATABASES; do
		psql -q -h "$socket" -p "$POSTGRES_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
			-c "CREATE DATABASE \"$db\" OWNER $DB_USER" >/dev/null # quoted: order is a keyword
	done
	testenv user "$AMQP_USER" "$RABBITMQ_PASSWORD" /

	log "building the kshop binary for its development Kafka broker"
	mkdir -p "$KSHOP_CACHE_DIR/bin"
	go build -tags nomsgpack -o "$KSHOP_CACHE_DIR/bin/kshop" ./services/cmd/kshop
	# An empty broker, as a managed one is: the platform controller creates the topics.
	KSHOP_DEV_KAFKA_ADDR="$HOST_IP:$KAFKA_PORT" KSHOP_DEV_KAFKA_SEED_TOPICS=false \
		start_background kafka "$KSHOP_CACHE_DIR/bin/kshop" devkafka
	local mailpit
	mailpit="$(hack/tools.sh mailpit)"
	start_background mailpit "$mailpit" --smtp "$HOST_IP:$SMTP_PORT" --listen "$HOST_IP:$INBOX_PORT" \
		--disable-version-check --max 5000
	wait_for_port kafka "$KAFKA_PORT" 30
	wait_for_port mailpit "$INBOX_PORT" 30
	print_env >"$DIR/env"
	log "PostgreSQL, Redis, RabbitMQ, Kafka and Mailpit up on $HOST_IP in $((SECONDS - started)) s; passwords in $DIR/credentials"
}

down() {
	stop_background mailpit
	stop_background kafka
	if [ -f "$DIR/credentials" ]; then load_credentials; fi
	testenv down
}

print_env() {
	cat <<-EOF
		export KSHOP_CLUSTER_INFRA_DIR='$DIR'
		export KSHOP_CLUSTER_INFRA_POSTGRES='$HOST_IP:$POSTGRES_PORT'
		export KSHOP_CLUSTER_INFRA_REDIS='$HOST_IP:$REDIS_PORT'
		export KSHOP_CLUSTER_INFRA_RABBITMQ='$HOST_IP:$RABBITMQ_PORT'
		export KSHOP_CLUSTER_INFRA_KAFKA='$HOST_IP:$KAFKA_PORT'
		export KSHOP_CLUSTER_INFRA_SMTP='$HOST_IP:$SMTP_PORT'
		export KSHOP_CLUSTER_INFRA_INBOX='http://$HOST_IP:$INBOX_PORT'
	EOF
}

# secrets writes what the user of a managed service would: one Secret per
# dependency, with the keys charts/kshop/values-local.yaml names.
secrets() { # namespace
	local ns=$1 kubectl
	load_credentials
	kubectl="$(hack/kube-tools.sh)/kubectl"
	"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
	{
		"$kubectl" -n "$ns" create secret generic kshop-external-postgres \
			--from-literal=password="$POSTGRES_PASSWORD" --dry-run=client -o yaml
		echo ---
		"$kubectl" -n "$ns" create secret generic kshop-external-redis \
			--from-literal=password="$REDIS_PASSWORD" --dry-run=client -o yaml
		echo ---
		"$kubectl" -n "$ns" create secret generic kshop-external-rabbitmq \
			--from-literal=username="$AMQP_USER" --from-literal=password="$RABBITMQ_PASSWORD" --dry-run=client -o yaml
	} | "$kubectl" apply -f - >/dev/null
	log "Secrets kshop-external-postgres, kshop-external-redis and kshop-external-rabbitmq in namespace $ns"
}

status() {
	local name port
	for name in postgres:$POSTGRES_PORT redis:$REDIS_PORT rabbitmq:$RABBITMQ_PORT kafka:$KAFKA_PORT smtp:$SMTP_PORT inbox:$INBOX_PORT; do
		port=${name#*:}
		if (exec 3<>"/dev/tcp/$HOST_IP/$port") 2>/dev/null; then state=up; else state=down; fi
		printf '%-9s %s:%s %s\n' "${name%%:*}" "$HOST_IP" "$port" "$state"
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
env) print_env ;;
secrets) secrets "${2:?name the namespace}" ;;
status) status ;;
*) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
