#!/usr/bin/env bash
# lint.sh fails on unformatted files, go vet findings and staticcheck findings.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Tracked and new files alike (not the ignored ones).
unformatted="$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go') 2>/dev/null || true)"
if [ -n "$unformatted" ]; then
	echo "lint: these files need gofmt -w:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
"$(hack/tools.sh staticcheck)" ./...
# The chaos and cluster tests hide behind build tags (make chaos, make
# cluster-test); check them too.
go vet -tags chaos ./services/chaos/
"$(hack/tools.sh staticcheck)" -tags chaos ./services/chaos/
go vet -tags cluster ./charts/kshop/clustertest/
"$(hack/tools.sh staticcheck)" -tags cluster ./charts/kshop/clustertest/
echo "lint: ok" >&2
