#!/usr/bin/env bash
# chaos.sh is `make chaos`: it starts PostgreSQL, Redis and RabbitMQ instances of
# its own (own ports, own data folder: the chaos test stops and starts them, so it
# never touches the shared test servers or `make run`'s), then runs the chaos test:
# load through the gateway while RabbitMQ, the Kafka broker process and PostgreSQL
# are each restarted once, then a reconciliation of every database and broker.
# It stops only the servers it started, however the run ends.
#
#   KSHOP_CHAOS_DURATION=60s   how long the load runs (the faults are spread over it)
#   KSHOP_CHAOS_RATE=30        requests per second of the load
#   KSHOP_CHAOS_SETTLE=4m      how long to wait for the platform to settle afterwards
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/cachedir.sh

hack/install-deps.sh

export KSHOP_TESTENV_DIR="$KSHOP_CACHE_DIR/chaos"
export KSHOP_TESTENV_SERVERS="postgres redis rabbitmq"
export KSHOP_TESTENV_POSTGRES_PORT="${KSHOP_CHAOS_POSTGRES_PORT:-12432}"
export KSHOP_TESTENV_REDIS_PORT="${KSHOP_CHAOS_REDIS_PORT:-12379}"
export KSHOP_TESTENV_RABBITMQ_PORT="${KSHOP_CHAOS_RABBITMQ_PORT:-12672}"
export KSHOP_CHAOS_KAFKA_PORT="${KSHOP_CHAOS_KAFKA_PORT:-12092}"

stop_servers() {
	echo "chaos: stopping the chaos servers" >&2
	hack/testenv.sh down || true
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

hack/testenv.sh up
eval "$(hack/testenv.sh env)"
# The test refuses to stop servers unless they are these.
export KSHOP_CHAOS_OWN_SERVERS=1

echo "chaos: go test -tags chaos ./services/chaos (about 3 minutes: ${KSHOP_CHAOS_DURATION:-60s} of load, then settling and reconciling)" >&2
go test -tags chaos -count=1 -v -timeout 20m ./services/chaos/
