#!/usr/bin/env bash
# install-deps.sh installs the Debian packages the tests and `make run` need, if any
# is missing. It is idempotent and changes nothing on a machine that has them; the
# system's own services (if running) are left alone: kshop starts private instances.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
have gcc || missing+=(gcc) # confluent-kafka-go needs cgo
have curl || missing+=(curl) # hack/registry.sh asks the registry whether it answers
# The e2e and chaos tests run a private Prometheus that scrapes the services and
# answers every dashboard panel's and alert's query (services/e2e/dashboards_test.go).
have prometheus || missing+=(prometheus)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]} from Debian packages (once, about a minute)" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo, then retry" >&2; exit 1; }
	sudo=sudo
fi
# Packaged services must not try to start under a policy-rc.d-less container init;
# whether they start or not does not matter to kshop, which runs its own instances.
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
