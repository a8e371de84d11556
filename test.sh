#!/usr/bin/env bash
# Runs every xfsimg test. Tests that need root, loop devices or xfsprogs
# skip when those are missing, unless XFSIMG_REQUIRE_ORACLES=1 (CI sets it),
# which makes them fail instead. xfsprogs and e2fsprogs are installed when
# missing and we are root. Extra arguments go to `go test` (e.g. -run X).
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "test.sh: installing ${need[*]}" >&2
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		echo "test.sh: ${need[*]} missing and cannot be installed here; oracle tests will skip" >&2
	fi
fi

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# The tests' scratch images live under a directory of this run's own. A
# test that times out panics without running its cleanups, and a killed
# run leaves its mounts and loop devices behind: on the way out, unmount
# and detach whatever still uses a file under it, and only that.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/xfsimg-test.XXXXXX")
export TMPDIR=$scratch
cleanup() {
	local m d
	if [ "$(id -u)" = 0 ]; then
		findmnt -rn -o TARGET | awk -v d="$scratch/" 'index($0, d) == 1' | sort -r |
			while read -r m; do umount "$m" || umount -l "$m" || true; done
		losetup -ln -O NAME,BACK-FILE | awk -v d="$scratch/" 'index($2, d) == 1 {print $1}' |
			while read -r d; do
				echo "test.sh: detaching $d, left attached by a test" >&2
				losetup -d "$d" || true
			done
	fi
	rm -rf --one-file-system "$scratch"
}
trap cleanup EXIT
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change: $unformatted" >&2
	exit 1
fi
go test -timeout 80m "$@" ./...
if [ $# -eq 0 ]; then
	# The concurrency tests again under the race detector, the random
	# one for a minute: writers, truncates, punches and fsyncs racing
	# writeback workers and the flusher.
	XFSIMG_RACE_SECONDS=60 go test -race -timeout 20m -run 'TestRace|TestConcurrent' ./convert ./agf ./log
fi
