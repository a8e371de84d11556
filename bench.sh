#!/usr/bin/env bash
# Compares xfsimg with the kernel and xfsprogs on the same work, on the same
# image and disk, and prints each ratio (xfsimg time / reference time; below
# 1 means xfsimg is faster). Needs root, loop devices and xfsprogs.
#
#   sudo ./bench.sh            all sections
#   sudo ./bench.sh read       one section (read, check, convert, write)
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

work=$(mktemp -d /var/tmp/xfsimg-bench.XXXXXX)
mnt="$work/mnt"
mkdir -p "$mnt"
attached=()
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	for d in "${attached[@]}"; do losetup -d "$d" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# Built as a release would be: no symbol tables to page in at start, and
# static (CGO_ENABLED=0): a cgo build loads the C library and starts its
# threads through it, about 0.8 ms more per run on this kind of machine.
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/xfsimg" ./cmd/xfsimg
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/floor" ./internal/benchfloor
X="$work/xfsimg"

# median_ms RUNS CMD...: median wall time of RUNS runs, in milliseconds.
# When $prep is set, it runs (untimed) before each run.
prep=
median_ms() {
	local runs=$1
	shift
	local times=()
	for _ in $(seq "$runs"); do
		local t0 t1
		[ -z "$prep" ] || bash -c "$prep"
		t0=$(date +%s%N)
		"$@" >/dev/null
		t1=$(date +%s%N)
		times+=($(((t1 - t0) / 1000)))
	done
	printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

# Each command runs under bash -c, which costs a few milliseconds of its
# own: that is measured once and taken off both sides before the ratio,
# which would otherwise drift towards 1 for short commands.
shell_ms=
# compare NAME RUNS "OURS" "THEIRS": prints both medians (less the shell's
# cost) and the ratio.
compare() {
	local name=$1 runs=$2 ours=$3 theirs=$4
	local a b
	[ -n "$shell_ms" ] || shell_ms=$(median_ms 41 bash -c true)
	a=$(median_ms "$runs" bash -c "$ours")
	b=$(median_ms "$runs" bash -c "$theirs")
	awk -v n="$name" -v a="$a" -v b="$b" -v s="$shell_ms" 'BEGIN {a -= s; b -= s
		printf "%-44s xfsimg %9.2f ms   reference %9.2f ms   ratio %.2f\n", n, a, b, a/b}'
}

# compare_cache NAME RUNS "OURS" "THEIRS" IMAGE: compare twice, with the
# image's pages in the host's page cache and without. xfs_db reads through
# the page cache and xfsimg directly, except for pages already cached: run
# one after the other, the first xfs_db run would cache the image for the
# others and xfsimg's would not, and the comparison would depend on the
# order. Warm: the whole image is read into the cache first. Cold: the
# image's pages are dropped before every run (dd iflag=nocache).
compare_cache() {
	local name=$1 runs=$2 ours=$3 theirs=$4 image=$5
	cat "$image" >/dev/null
	compare "$name, warm" "$runs" "$ours" "$theirs"
	prep="dd if=$image iflag=nocache count=0 status=none"
	compare "$name, cold" "$runs" "$ours" "$theirs"
	prep=
}

attach() {
	local dev
	dev=$(losetup -f --show "$1")
	attached+=("$dev")
	echo "$dev"
}

detach() {
	losetup -d "$1"
	# losetup -d only marks a device still held open (udev probing after
	# the unmount) for release; wait until the image no longer backs it,
	# or xfsimg refuses to write it.
	local backing=/sys/block/${1#/dev/}/loop/backing_file n
	for ((n = 0; n < 1000 && -e $backing; n++)); do sleep 0.01; done
	local keep=()
	for d in "${attached[@]}"; do [ "$d" != "$1" ] && keep+=("$d"); done
	attached=("${keep[@]}")
}

bench_read() {
	echo "== read path: xfsimg against xfs_db and dd iflag=direct"
	local img="$work/read.img"
	truncate -s 4G "$img"
	mkfs.xfs -f -q "$img"
	local dev
	dev=$(attach "$img")
	mount "$dev" "$mnt"
	xfs_io -f -c "pwrite -q -b 4m 0 1g" -c fsync "$mnt/big"
	# A file of 3000 one-block extents: its BMBT has two levels.
	local args=()
	for i in $(seq 0 2999); do args+=(-c "pwrite -q $((i * 8192)) 4k"); done
	xfs_io -f "${args[@]}" "$mnt/frag"
	local ino
	ino=$(stat -c %i "$mnt/frag")
	umount "$mnt"
	detach "$dev"
	xfs_db -r -c "inode $ino" -c "p core.format" "$img" | grep -q btree || { echo "frag is not in btree format" >&2; exit 1; }
	# The loop device left the image dirty in the host's page cache: write
	# it back first, or the O_DIRECT reads (xfsimg's and dd's) race the
	# writeback for the disk while xfs_db reads the cached pages.
	sync

	compare_cache "inspect freesp (few extents)" 41 "$X inspect $img freesp" "xfs_db -r -c freesp $img" "$img"
	# The least any Go program built like xfsimg takes (see
	# internal/benchfloor): on an image this small, xfs_db's whole run
	# takes about that long.
	compare "  floor: Go start-up vs xfs_db freesp" 41 "$work/floor" "xfs_db -r -c freesp $img"
	# Free space cut into 100,000 one-block extents: a prealloc'd file
	# punched every other block.
	local frag="$work/fragfree.img"
	truncate -s 1G "$frag"
	mkfs.xfs -f -q -b size=1024 "$frag"
	dev=$(attach "$frag")
	mount "$dev" "$mnt"
	python3 -c '
import sys
print("falloc 0 800m")
for i in range(100000):
    print("fpunch %dk 1k" % (2 * i))
' >"$work/punch.cmds"
	xfs_io -f -c "$(head -1 "$work/punch.cmds")" "$mnt/f"
	# xfs_io takes commands on stdin when given none with -c.
	tail -n +2 "$work/punch.cmds" | xfs_io "$mnt/f" >/dev/null
	umount "$mnt"
	detach "$dev"
	sync
	compare_cache "inspect freesp (100k free extents)" 21 "$X inspect $frag freesp" "xfs_db -r -c freesp $frag" "$frag"
	compare_cache "inspect bmap (BMBT) vs xfs_db bmap" 21 "$X inspect $img bmap $ino" "xfs_db -r -c 'inode $ino' -c bmap $img" "$img"
	# cat is compared with dd iflag=direct: both read the disk, whatever
	# the cache holds.
	# dd reads the same 1 GiB where the file's extents are on the image:
	# one dd per extent, byte offsets from the extent map.
	local dds
	dds=$($X --json inspect "$img" bmap /big | python3 -c '
import json, sys
exts = json.load(sys.stdin)
bs, agblocks, agblklog = [int(a) for a in sys.argv[2:5]]
cmds = []
for e in exts:
    agno, agbno = e["startblock"] >> agblklog, e["startblock"] & ((1 << agblklog) - 1)
    off = (agno * agblocks + agbno) * bs
    cmds.append("dd if=%s iflag=direct,skip_bytes,count_bytes bs=4M skip=%d count=%d of=/dev/null status=none" % (sys.argv[1], off, e["blockcount"] * bs))
print("; ".join(cmds))
' "$img" "$(xfs_db -r -c sb -c 'p blocksize' "$img" | awk '{print $3}')" \
		"$(xfs_db -r -c sb -c 'p agblocks' "$img" | awk '{print $3}')" \
		"$(xfs_db -r -c sb -c 'p agblklog' "$img" | awk '{print $3}')")
	compare "cat 1 GiB vs dd iflag=direct 1 GiB" 5 "$X cat $img /big" "$dds"
}

bench_check() {
	echo "== check: xfsimg check against xfs_repair -n on 100,000 inodes"
	# The image (4 GiB, 1000 directories of 100 files, large and fragmented
	# files, all made by the kernel) is built once by the Go perf test and
	# kept in the cache directory.
	local cache=${XFSIMG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xfsimg}
	local img="$cache/check-perf-100k.img"
	if [ ! -f "$img" ]; then
		echo "building $img (once)"
		XFSIMG_LONG=1 XFSIMG_CACHE="$cache" go test ./check -run TestCheckPerformance -count=1 >/dev/null
	fi
	"$X" check "$img" >/dev/null
	compare "check vs xfs_repair -n" 7 "$X check $img" "xfs_repair -n -f $img 2>/dev/null"
	compare "check --buffered vs xfs_repair -n" 7 "$X --buffered check $img" "xfs_repair -n -f $img 2>/dev/null"
}

# convert_ops N BS WINDOW SEED: a seeded sequence of N xfs_io commands on one
# file, the mix of convert's kernel comparison test: falloc (with and without
# -k, some one to three blocks), fpunch, truncate, offsets and lengths
# aligned or not, in a WINDOW-byte range.
convert_ops() {
	python3 - "$@" <<'PY'
import random, sys
n, bs, window, seed = (int(a) for a in sys.argv[1:5])
r = random.Random(seed)
def length():
    x = r.randrange(100)
    if x < 50: return (1 + r.randrange(8)) * bs
    if x < 85: return (1 + r.randrange(256)) * bs
    return 1 + r.randrange(window // 4)
out = []
while len(out) < n:
    off = r.randrange(window)
    if r.randrange(10) < 7: off &= ~(bs - 1)
    l = length()
    if r.randrange(10) < 7: l = (l + bs - 1) & ~(bs - 1)
    l = min(l, window - off)
    if l <= 0: continue
    x = r.randrange(100)
    if x < 25: out.append("falloc %d %d" % (off, l))
    elif x < 40: out.append("falloc -k %d %d" % (off, l))
    elif x < 60: out.append("falloc -k %d %d" % (off & ~(bs - 1), (1 + r.randrange(3)) * bs))
    elif x < 94: out.append("fpunch %d %d" % (off, l))
    else: out.append("truncate %d" % r.randrange(window))
print("\n".join(out))
PY
}

# time_ms CMD...: wall time of one run, in milliseconds.
time_ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

bench_convert() {
	echo "== convert: 10,000 falloc/fpunch/truncate commands, xfsimg convert against xfs_io on a loop mount (mount, run, unmount)"
	local name size mkfsopt bs window frag
	for spec in "4k 1G 4096 104857600 0" "1k-frag 400M 1024 41943040 31457280"; do
		read -r name size bs window frag <<<"$spec"
		local base="$work/conv-$name.img"
		rm -f "$base"
		truncate -s "$size" "$base"
		if [ "$bs" = 1024 ]; then mkfsopt="-b size=1024 -d agcount=4"; else mkfsopt=""; fi
		# shellcheck disable=SC2086
		mkfs.xfs -f -q $mkfsopt "$base"
		mount -o loop "$base" "$mnt"
		xfs_io -f -c "pwrite -q 0 300k" -c fsync "$mnt/f"
		if [ "$frag" != 0 ]; then
			# Free space cut into one-block extents by the kernel: the
			# free-space btrees are three levels deep.
			python3 -c "
import sys
print('open -f $mnt/frag'); print('falloc 0 $frag')
for o in range(0, $frag, 2 * $bs): print('fpunch %d $bs' % o)
" | xfs_io >/dev/null
		fi
		umount "$mnt"
		convert_ops 10000 "$bs" "$window" 7 >"$work/conv-$name.cmds"
		local ours=() theirs=()
		for _ in 1 2 3 4 5; do
			cp --sparse=always "$base" "$work/conv.img"
			ours+=($(time_ms "$X" convert "$work/conv.img" /f -f "$work/conv-$name.cmds"))
			xfs_repair -n "$work/conv.img" >/dev/null 2>&1 || { echo "xfs_repair -n failed after xfsimg convert" >&2; exit 1; }
			cp --sparse=always "$base" "$work/conv.img"
			theirs+=($(time_ms bash -c "mount -o loop '$work/conv.img' '$mnt' && xfs_io '$mnt/f' <'$work/conv-$name.cmds' >/dev/null; umount '$mnt'"))
		done
		local a b
		a=$(printf '%s\n' "${ours[@]}" | sort -n | sed -n 3p)
		b=$(printf '%s\n' "${theirs[@]}" | sort -n | sed -n 3p)
		awk -v n="convert 10k commands ($name)" -v a="$a" -v b="$b" \
			'BEGIN {printf "%-38s xfsimg %9.1f ms   reference %9.1f ms   ratio %.2f\n", n, a, b, a/b}'
	done
}

bench_write() {
	echo "== write: xfsimg write and convert pwrite against dd oflag=direct and the kernel"
	local img="$work/write.img" base="$work/write-base.img"
	# An image with an empty /f, made by the kernel.
	truncate -s 6G "$base"
	mkfs.xfs -f -q "$base"
	mount -o loop "$base" "$mnt"
	touch "$mnt/f"
	umount "$mnt"

	# Memory: 4 GiB of a pattern (a random 4000-byte line repeated)
	# through a pipe, with a 64 MiB page cache.
	cp --sparse=always "$base" "$img"
	local line
	line=$(head -c 3000 /dev/urandom | base64 -w0)
	/usr/bin/time -v -o "$work/time.txt" bash -c "yes '$line' | head -c 4G | '$X' write --dirty-limit 64m '$img' /f" >/dev/null
	local rss
	rss=$(awk '/Maximum resident set size/ {print $6}' "$work/time.txt")
	# time -v measures bash's largest child: xfsimg, by far.
	awk -v r="$rss" 'BEGIN {printf "%-38s peak RSS %.1f MiB (limit 128 MiB): %s\n", "write 4 GiB, --dirty-limit 64m", r/1024, (r < 131072) ? "ok" : "OVER"}'
	xfs_repair -n "$img" >/dev/null 2>&1 || { echo "xfs_repair -n failed after xfsimg write" >&2; exit 1; }
	[ "$("$X" cat "$img" /f | head -c 4G | cmp - <(yes "$line" | head -c 4G) && echo same)" = same ] || { echo "4 GiB write: wrong bytes" >&2; exit 1; }

	# 1 GiB of random data, in the host's page cache for every reader.
	local host="$work/host"
	head -c 1G /dev/urandom >"$host"
	cat "$host" >/dev/null
	cp --sparse=always "$base" "$img"
	local a b c
	sync
	a=$(time_ms "$X" write "$img" /f --from "$host")
	mount -o loop,ro "$img" "$mnt"
	cmp "$host" "$mnt/f" || { echo "1 GiB write: wrong bytes" >&2; exit 1; }
	umount "$mnt"
	# dd writes the same 1 GiB into the same image file, at 4 GiB (a
	# region of the image the write above did not touch; the image is
	# thrown away after).
	sync
	b=$(time_ms dd if="$host" of="$img" bs=1M oflag=direct conv=notrunc seek=4096 status=none)
	cp --sparse=always "$base" "$img"
	sync
	c=$(time_ms bash -c "mount -o loop '$img' '$mnt' && cp '$host' '$mnt/f'; umount '$mnt'")
	awk -v n="write 1 GiB vs dd oflag=direct bs=1M" -v a="$a" -v b="$b" \
		'BEGIN {printf "%-38s xfsimg %9.1f ms   reference %9.1f ms   ratio %.2f (target <= 1.25)\n", n, a, b, a/b}'
	awk -v n="write 1 GiB vs mount, cp, umount" -v a="$a" -v b="$c" \
		'BEGIN {printf "%-38s xfsimg %9.1f ms   reference %9.1f ms   ratio %.2f (target < 1)\n", n, a, b, a/b}'

	# 100,000 random 4 KiB pwrites into a 1 GiB file the kernel wrote.
	mount -o loop "$base" "$mnt"
	xfs_io -c "pwrite -q -b 4m 0 1g" -c fsync "$mnt/f"
	umount "$mnt"
	python3 -c '
import random
r = random.Random(7)
for i in range(100000):
    print("pwrite -q -S %d %d 4k" % (i % 251, r.randrange(262144) * 4096))
' >"$work/pwrite.cmds"
	cp --sparse=always "$base" "$img"
	sync
	a=$(time_ms "$X" convert "$img" /f -f "$work/pwrite.cmds")
	xfs_repair -n "$img" >/dev/null 2>&1 || { echo "xfs_repair -n failed after xfsimg convert pwrite" >&2; exit 1; }
	local ours theirs
	ours=$("$X" cat "$img" /f | sha256sum)
	cp --sparse=always "$base" "$img"
	sync
	b=$(time_ms bash -c "mount -o loop '$img' '$mnt' && xfs_io '$mnt/f' <'$work/pwrite.cmds' >/dev/null; umount '$mnt'")
	theirs=$("$X" cat "$img" /f | sha256sum)
	[ "$ours" = "$theirs" ] || { echo "random pwrites: xfsimg and the kernel differ" >&2; exit 1; }
	awk -v n="100k random 4k pwrites vs kernel" -v a="$a" -v b="$b" \
		'BEGIN {printf "%-38s xfsimg %9.1f ms   reference %9.1f ms   ratio %.2f (target < 1)\n", n, a, b, a/b}'
	rm -f "$img" "$host"
}

if [ $# -gt 0 ]; then
	sections=("$@")
else
	sections=(read check convert write)
fi
for s in "${sections[@]}"; do
	"bench_$s"
done
