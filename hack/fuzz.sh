#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the repository for a while, one after
# the other (a fuzz run uses every core). `go test` already replays the seeds
# and the committed corpora (testdata/fuzz/) on every run; this explores beyond
# them. A failing input is written to the package's testdata/fuzz/<target>/:
# fix the bug and commit the file, it becomes a regression seed.
#
#   hack/fuzz.sh                   every target, FUZZTIME each (default 15s)
#   FUZZTIME=2m hack/fuzz.sh Money   only the targets whose name matches
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZTIME="${FUZZTIME:-15s}"
MATCH="${1:-.}"

# Only the packages whose tests declare fuzz targets: listing every package
# would compile every test binary.
targets=()
while read -r dir; do
	pkg="./$dir"
	while read -r name; do
		[[ "$name" == Fuzz* && "$name" =~ $MATCH ]] && targets+=("$pkg $name")
	done < <(go test -list '^Fuzz' "$pkg")
done < <(grep -rl --include='*_test.go' '^func Fuzz' services | xargs -n1 dirname | sort -u)
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no target matches '$MATCH'" >&2; exit 1; }

echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
failed=0
fuzz_one() { # pkg name fuzztime
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$3" "$1" 2>&1
}
for entry in "${targets[@]}"; do
	read -r pkg name <<<"$entry"
	printf 'fuzz: %-34s %-24s ' "$name" "${pkg#./}"
	status=0
	out="$(fuzz_one "$pkg" "$name" "$FUZZTIME")" || status=$?
	# Go stops with "context deadline exceeded" when the time runs out before
	# it has replayed the corpus once (a busy machine): once more, with longer.
	if [ "$status" -ne 0 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input' <<<"$out"; then
		printf '(corpus not replayed within %s; again with 1m) ' "$FUZZTIME"
		status=0
		out="$(fuzz_one "$pkg" "$name" 1m)" || status=$?
	fi
	if [ "$status" -eq 0 ]; then
		# Progress lines read "fuzz: elapsed: 15s, execs: 123456 (8230/sec), ..."; the last has the total.
		{ grep -o 'execs: [0-9]*' <<<"$out" || echo 'execs: ?'; } | tail -1 | sed 's/execs: \(.*\)/\1 inputs, no failure/'
	else
		failed=1
		echo "FAILED"
		grep -v '^fuzz: elapsed' <<<"$out" | sed 's/^/    /'
	fi
done
if [ "$failed" -ne 0 ]; then
	echo "fuzz: failures above. Each failing input is in its package's testdata/fuzz/<target>/;" >&2
	echo "fuzz: fix the bug, then commit the file, so go test replays it from now on." >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran $FUZZTIME without a failure"
