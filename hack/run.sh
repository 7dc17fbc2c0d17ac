#!/usr/bin/env bash
# run.sh is `make run`: it starts private PostgreSQL, Redis and RabbitMQ instances for
# development (ports of their own, data in the cache folder), then the all-in-one
# `kshop` binary in the foreground. Ctrl-C stops the binary and every server it
# started. The development servers use other ports than the test servers, so
# `make run` and `make test` can run side by side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/cachedir.sh

export KSHOP_TESTENV_DIR="$KSHOP_CACHE_DIR/run"
export KSHOP_TESTENV_SERVERS="postgres redis rabbitmq"
export KSHOP_TESTENV_POSTGRES_PORT="${KSHOP_RUN_POSTGRES_PORT:-14432}"
export KSHOP_TESTENV_REDIS_PORT="${KSHOP_RUN_REDIS_PORT:-14379}"
export KSHOP_TESTENV_RABBITMQ_PORT="${KSHOP_RUN_RABBITMQ_PORT:-14672}"
kafka_addr="127.0.0.1:${KSHOP_RUN_KAFKA_PORT:-14092}"

hack/install-deps.sh

kshop_pid=""
stop_servers() {
	if [ -n "$kshop_pid" ]; then
		kill -TERM "$kshop_pid" 2>/dev/null || true
		wait "$kshop_pid" 2>/dev/null || true
	fi
	echo "run: stopping the development servers" >&2
	hack/testenv.sh down || true
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

hack/testenv.sh up

echo "run: building the kshop binary" >&2
mkdir -p "$KSHOP_CACHE_DIR/bin"
go build -o "$KSHOP_CACHE_DIR/bin/kshop" ./services/cmd/kshop

cat >&2 <<EOF

kshop development platform
  PostgreSQL  postgres://postgres@127.0.0.1:$KSHOP_TESTENV_POSTGRES_PORT/postgres
  Redis       127.0.0.1:$KSHOP_TESTENV_REDIS_PORT
  RabbitMQ    amqp://guest:guest@127.0.0.1:$KSHOP_TESTENV_RABBITMQ_PORT/
  Kafka       $kafka_addr (in-process Kafka-protocol broker; try: kcat -b $kafka_addr -L)
Press Ctrl-C to stop everything.

EOF

# Not exec: the trap above must outlive the binary to stop the servers.
KSHOP_DEV_KAFKA_ADDR="$kafka_addr" "$KSHOP_CACHE_DIR/bin/kshop" &
kshop_pid=$!
wait "$kshop_pid" || true
kshop_pid=""
