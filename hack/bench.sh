#!/usr/bin/env bash
# bench.sh is `make bench`: it starts the private servers, runs the Go benchmarks
# against them and prints their figures, then stops the servers.
#   make bench                 every benchmark
#   make bench BENCH=Relay     only those matching a pattern
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pattern="${1:-.}"

hack/install-deps.sh
trap 'hack/testenv.sh down || true' EXIT
trap 'exit 130' INT TERM
hack/testenv.sh up
eval "$(hack/testenv.sh env)"

go test -run '^$' -bench "$pattern" -benchtime "${BENCHTIME:-3s}" ./... |
	grep -E '^(Benchmark|goos|goarch|cpu|pkg:|ok|FAIL|---)' 
