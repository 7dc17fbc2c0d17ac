#!/usr/bin/env bash
# loadgen.sh is `make smoke` and `make load`: services/cmd/loadgen against a
# running `make run`, signed in as make run's development admin. make run draws
# that admin's address and password anew at every start and writes them to
# $KSHOP_CACHE_DIR/run/admin.env (readable by you only); this script reads them
# unless KSHOP_LOADGEN_ADMIN and KSHOP_LOADGEN_ADMIN_PASSWORD are set already.
#
#   hack/loadgen.sh smoke|load [loadgen flags]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/cachedir.sh

admin_env="$KSHOP_CACHE_DIR/run/admin.env"
if [ -z "${KSHOP_LOADGEN_ADMIN:-}" ] || [ -z "${KSHOP_LOADGEN_ADMIN_PASSWORD:-}" ]; then
	if [ ! -r "$admin_env" ]; then
		echo "loadgen: $admin_env is missing: start the platform with 'make run' in another terminal first" \
			"(or set KSHOP_LOADGEN_ADMIN and KSHOP_LOADGEN_ADMIN_PASSWORD to an admin of your own platform)" >&2
		exit 1
	fi
	set -a
	# shellcheck source=/dev/null
	source "$admin_env"
	set +a
fi
exec go run ./services/cmd/loadgen "$@"
