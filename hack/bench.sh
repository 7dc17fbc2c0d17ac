#!/usr/bin/env bash
# bench.sh is `make bench`. Without a pattern it prints kshop's benchmark table
# (services/cmd/benchtable: every figure beside its comparison or ceiling, about
# 6 minutes); with one it runs the matching Go benchmarks and prints their lines.
#   make bench                 the whole table (docs/benchmarks.md keeps one)
#   make bench BENCH=Relay     only the benchmarks matching a pattern
#
# It starts private PostgreSQL, Redis and RabbitMQ instances of its own (ports
# 13432, 13379, 13672, data in the cache folder) and stops only those, so it never
# disturbs the test servers. When KSHOP_TEST_POSTGRES_URL is already set (after
# `eval "$(hack/testenv.sh env)"`), it uses the servers named there instead and
# starts and stops nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/cachedir.sh
pattern="${1:-.}"

hack/install-deps.sh
if [ -z "${KSHOP_TEST_POSTGRES_URL:-}" ]; then
	export KSHOP_TESTENV_DIR="$KSHOP_CACHE_DIR/bench"
	export KSHOP_TESTENV_SERVERS="postgres redis rabbitmq"
	export KSHOP_TESTENV_POSTGRES_PORT="${KSHOP_BENCH_POSTGRES_PORT:-13432}"
	export KSHOP_TESTENV_REDIS_PORT="${KSHOP_BENCH_REDIS_PORT:-13379}"
	export KSHOP_TESTENV_REDIS_CLUSTER_PORT="${KSHOP_BENCH_REDIS_CLUSTER_PORT:-13001}"
	export KSHOP_TESTENV_RABBITMQ_PORT="${KSHOP_BENCH_RABBITMQ_PORT:-13672}"
	export KSHOP_TESTENV_RABBITMQ_RESTARTABLE_PORT="${KSHOP_BENCH_RABBITMQ_RESTARTABLE_PORT:-13682}"
	trap 'echo "bench: stopping the benchmark servers" >&2; hack/testenv.sh down || true' EXIT
	trap 'exit 130' INT TERM
	hack/testenv.sh up
	eval "$(hack/testenv.sh env)"
fi

if [ "$pattern" = . ]; then
	go run ./services/cmd/benchtable
else
	# Only the packages that have benchmarks: the others' TestMain may want tools
	# (kube-apiserver, helm) that only `make test` provides.
	mapfile -t packages < <(grep -rl --include='*_test.go' '^func Benchmark' services | xargs -n1 dirname | sort -u | sed 's|^|./|')
	go test -run '^$' -bench "$pattern" -benchtime "${BENCHTIME:-3s}" "${packages[@]}" |
		grep -E '^(Benchmark|goos|goarch|cpu|pkg:|ok|FAIL|---)'
fi
