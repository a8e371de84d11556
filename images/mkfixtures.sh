#!/usr/bin/env bash
# mkfixtures.sh regenerates the XFS test fixtures in this directory.
#
# Each fixture is a sparse image made by mkfs.xfs and populated through the
# Linux kernel (loop device, mount, write, fsync, unmount). Its manifest is
# computed from a fresh read-only mount of the finished image, so it records
# what the kernel says is in it, never what our own code thinks. xfs_db then
# confirms the on-disk shapes each fixture promises (btree forks, leaf and
# node directories, free-space btree levels) and the check fails loudly if
# the kernel laid things out differently. xfs_repair -n must be clean.
#
# Usage: sudo images/mkfixtures.sh [fixture...]   (default: all)
# KEEP_WORK=1 keeps the uncompressed images in the work directory.
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
	echo "mkfixtures.sh: must run as root (loop devices, mount)" >&2
	exit 1
fi
for tool in mkfs.xfs xfs_db xfs_repair xfs_io losetup mount umount fstrim zstd python3 truncate; do
	command -v "$tool" >/dev/null || { echo "mkfixtures.sh: $tool not found" >&2; exit 1; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /tmp/xfsimg-fixtures.XXXXXX)
umask 022

# Everything this script attached or mounted, so cleanup touches exactly
# those and nothing another process owns.
declare -a our_loops=() our_mounts=()

cleanup() {
	local rc=$? i
	for ((i = ${#our_mounts[@]} - 1; i >= 0; i--)); do
		if mountpoint -q "${our_mounts[i]}"; then
			umount "${our_mounts[i]}" || echo "cleanup: umount ${our_mounts[i]} failed" >&2
		fi
	done
	for ((i = ${#our_loops[@]} - 1; i >= 0; i--)); do
		losetup -d "${our_loops[i]}" || echo "cleanup: losetup -d ${our_loops[i]} failed" >&2
	done
	if [[ ${KEEP_WORK:-0} == 1 ]]; then
		echo "work directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

attach() { # attach IMG: sets $dev
	dev=$(losetup -f --show "$1")
	our_loops+=("$dev")
}

detach() { # detach DEV
	local keep=() d
	losetup -d "$1"
	# losetup -d only marks a device still held open (udev probing after
	# the unmount) for release; wait until the image no longer backs it,
	# or xfsimg refuses to write it.
	local backing=/sys/block/${1#/dev/}/loop/backing_file n
	for ((n = 0; n < 1000 && -e $backing; n++)); do sleep 0.01; done
	for d in "${our_loops[@]}"; do [[ $d == "$1" ]] || keep+=("$d"); done
	our_loops=("${keep[@]+"${keep[@]}"}")
}

do_mount() { # do_mount DEV DIR [opts]
	mount -t xfs ${3:+-o "$3"} "$1" "$2"
	our_mounts+=("$2")
}

do_umount() { # do_umount DIR
	local keep=() m
	umount "$1"
	for m in "${our_mounts[@]}"; do [[ $m == "$1" ]] || keep+=("$m"); done
	our_mounts=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------------------
# The Python half: populate a mounted fixture, walk it for the manifest, and
# check the unmounted image with xfs_db. Standard library only.
cat >"$work/fx.py" <<'PYEOF'
import fcntl, hashlib, json, mmap, os, random, re, socket, stat, struct, subprocess, sys

SECTOR = 512


def sector(path, n):
    """Sector n of the file first created at path: a header line naming the
    file and sector, then one letter derived from n repeated, then a newline.
    Every sector of every file differs, yet it all compresses to almost
    nothing, and `cat` of a fixture file is readable."""
    hdr = f"{path} sector {n}\n".encode()
    fill = 512 - len(hdr) - 1
    if fill < 0:
        return hdr[:SECTOR]
    return hdr + bytes([0x61 + n % 26]) * fill + b"\n"


def content(path, off, length):
    """Bytes [off, off+length) of the generated content of path."""
    first, last = off // SECTOR, (off + length + SECTOR - 1) // SECTOR
    buf = b"".join(sector(path, n) for n in range(first, last))
    skip = off - first * SECTOR
    return buf[skip:skip + length]


class Pop:
    """Populates one mounted fixture. fs paths are absolute inside the
    fixture ("/dir/file"); the generated content is keyed by them."""

    def __init__(self, mnt):
        self.mnt = mnt

    def p(self, path):
        return os.path.join(self.mnt, path.lstrip("/"))

    def mkdir(self, path):
        os.mkdir(self.p(path))

    def write(self, path, size, fsync=False):
        fd = os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.pwrite(fd, path, 0, size)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def pwrite(self, fd, path, off, length):
        step = 1 << 20
        pos = off
        while pos < off + length:
            n = min(step, off + length - pos)
            data = content(path, pos, n)
            assert os.pwrite(fd, data, pos) == n
            pos += n

    def text(self, path, s):
        with open(self.p(path), "w") as f:
            f.write(s)

    def link(self, old, new):
        os.link(self.p(old), self.p(new))

    def symlink(self, target, path):
        os.symlink(target, self.p(path))

    def unlink(self, path):
        os.unlink(self.p(path))

    def xfs_io(self, path, *cmds):
        args = ["xfs_io", "-f"]
        for c in cmds:
            args += ["-c", c]
        subprocess.run(args + [self.p(path)], check=True, stdout=subprocess.DEVNULL)

    def interleave(self, paths, blocks, bs):
        """Appends `blocks` direct-I/O blocks to each of paths in turn, so
        every allocation lands right after the other file's last block and
        each file ends up with one extent per block, with no holes."""
        buf = mmap.mmap(-1, bs)
        fds = [os.open(self.p(q), os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644) for q in paths]
        try:
            for b in range(blocks):
                for q, fd in zip(paths, fds):
                    buf.seek(0)
                    buf.write(content(q, b * bs, bs))
                    assert os.pwrite(fd, buf, b * bs) == bs
        finally:
            for fd in fds:
                os.close(fd)

    def dir_extents(self, path):
        return bmap_count(self.p(path))


def bmap_count(p):
    """Extents of a directory's data fork as the kernel reports them through
    XFS_IOC_GETBMAPX (xfs_io bmap), holes excluded."""
    out = subprocess.run(["xfs_io", "-r", "-c", "bmap", p], check=True,
                         capture_output=True, text=True).stdout
    n = 0
    for line in out.splitlines():
        m = re.match(r"\s*\d+: \[\d+\.\.\d+\]: (.*)", line)
        if m and not m.group(1).startswith("hole"):
            n += 1
    return n


FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1


def fiemap_count(p):
    """Number of mapped extents (written and unwritten, including
    preallocation beyond EOF; holes are not extents) from FS_IOC_FIEMAP with
    fm_extent_count 0, as filefrag counts them."""
    fd = os.open(p, os.O_RDONLY)
    try:
        req = bytearray(struct.pack("=QQIIII", 0, 0xFFFFFFFFFFFFFFFF, FIEMAP_FLAG_SYNC, 0, 0, 0))
        fcntl.ioctl(fd, FS_IOC_FIEMAP, req)
        return struct.unpack("=QQIIII", req)[3]
    finally:
        os.close(fd)


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def word(r, n):
    return "".join(r.choice(LETTERS) for _ in range(n))


# ---------------------------------------------------------------- fixtures

def pop_dirs_4k(P):
    r = random.Random(4096)
    # shortform: 3 entries
    P.mkdir("/sf")
    P.write("/sf/file", 10)
    P.mkdir("/sf/sub")
    P.symlink("file", "/sf/link")

    # block: ~40 entries of every type, a 255-byte name, two deletions
    P.mkdir("/block")
    for i in range(30):
        P.write(f"/block/file-{i:02d}", r.randint(0, 3000))
    for i in range(4):
        P.mkdir(f"/block/dir-{i}")
    P.symlink("file-00", "/block/sym-rel")
    P.symlink("../sf/file", "/block/sym-up")
    P.symlink("/nonexistent/absolute/target", "/block/sym-dangling")
    os.mkfifo(P.p("/block/fifo"), 0o644)
    os.mknod(P.p("/block/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(P.p("/block/loop200"), 0o660 | stat.S_IFBLK, os.makedev(7, 200))
    s = socket.socket(socket.AF_UNIX)
    s.bind(P.p("/block/socket"))
    s.close()
    name255 = ("name255-" + LETTERS * 10)[:255]
    P.write("/block/" + name255, 700)
    P.link("/sf/file", "/block/hardlink-to-sf-file")
    P.unlink("/block/file-05")
    P.unlink("/block/file-17")

    # leaf: ~400 entries, hard links (nlink > 1), holes from deletions
    P.mkdir("/leaf")
    last = None
    for i in range(400):
        name = f"/leaf/leaf-{i:03d}"
        if i % 10 == 0:
            P.write(name, r.randint(0, 8000))
            last = name
        elif i % 37 == 5:
            P.mkdir(name)
        else:
            P.link(last, name)
    for i in range(6, 400, 13):
        if i % 10 and i % 37 != 5:
            P.unlink(f"/leaf/leaf-{i:03d}")

    # node: ~1000 entries, past one leaf block (node format) yet few enough
    # data and leaf blocks that the data fork still fits in the inode.
    P.mkdir("/node")
    for i in range(1000):
        name = f"/node/node-{i:04d}"
        if i % 100 == 0:
            P.write(name, r.randint(0, 20000))
            last = name
        elif i % 250 == 7:
            P.mkdir(name)
        elif i % 333 == 11:
            P.symlink("../leaf", name)
        else:
            P.link(last, name)
    for i in range(3, 1000, 7):
        if i % 100 and i % 250 != 7:
            P.unlink(f"/node/node-{i:04d}")

    # btree: a node directory whose data fork no longer fits in the inode
    # (21 extents with 512-byte inodes). Long names fill a directory block
    # every ~24 entries; every 8 entries a small file written with O_DIRECT
    # (allocated at once, like an fsync'd write, but without forcing the
    # log) takes the block the directory would have grown into.
    P.mkdir("/btree")
    P.write("/btree/target", 1000)
    pad = "long-name-" * 15
    frag = 0
    i = 0
    while True:
        name = f"/btree/entry-{i:04d}-{pad}"[:158]
        if i % 200 == 100:
            P.mkdir(name)
        else:
            P.link("/btree/target", name)
        if i % 8 == 7:
            P.interleave([f"/btree/frag-{frag:03d}"], 1, 4096)
            frag += 1
        i += 1
        # GETBMAPX only sees the data blocks (below i_size); more than 21
        # of those alone is enough for a BMBT fork.
        if i >= 600 and i % 20 == 0 and P.dir_extents("/btree") >= 24:
            break
        if i > 5000:
            sys.exit("btree directory: could not fragment the data fork")
    for k in range(5, i, 11):
        if k % 200 != 100:
            P.unlink(f"/btree/entry-{k:04d}-{pad}"[:158])


def pop_files_4k(P):
    r = random.Random(4097)
    P.write("/empty", 0)
    P.write("/tiny1", 1)
    P.write("/tiny100", 100)
    P.write("/exact4096", 4096)
    P.write("/large", 64 << 20)

    fd = os.open(P.p("/sparse"), os.O_WRONLY | os.O_CREAT, 0o644)
    P.pwrite(fd, "/sparse", 0, 4196)
    P.pwrite(fd, "/sparse", 1 << 20, 10000)
    P.pwrite(fd, "/sparse", (1 << 30) + 777, 5000)
    os.close(fd)

    # Two files growing in turn, one direct-I/O block at a time: 700
    # one-block extents each, so both data forks are BMBT with a root of
    # level 1 in the inode (a 4 KiB leaf holds 251 records).
    P.interleave(["/frag-a", "/frag-b"], 700, 4096)

    # One file mixing unwritten and written extents.
    P.xfs_io("/prealloc", "falloc 0 4m")
    fd = os.open(P.p("/prealloc"), os.O_WRONLY)
    P.pwrite(fd, "/prealloc", 1 << 20, 64 << 10)
    os.fsync(fd)
    os.close(fd)
    # Unwritten preallocation past EOF (size stays 10000).
    P.write("/prealloc-eof", 10000, fsync=True)
    P.xfs_io("/prealloc-eof", "falloc -k 16k 1m")

    P.symlink("tiny100", "/link-inline")
    target = "/".join(f"component-{i:03d}" for i in range(100))[:1000]
    P.symlink(target, "/link-remote")

    P.mkdir("/links")
    P.link("/tiny100", "/links/tiny100-a")
    P.link("/tiny100", "/links/tiny100-b")
    P.link("/exact4096", "/links/exact4096")

    P.write("/xattr-sf", 300)
    os.setxattr(P.p("/xattr-sf"), "user.color", b"blue")
    os.setxattr(P.p("/xattr-sf"), "user.shape", b"round")
    os.setxattr(P.p("/xattr-sf"), "trusted.fixture", b"files-4k")
    P.write("/xattr-leaf", 300)
    for i in range(40):
        os.setxattr(P.p("/xattr-leaf"), f"user.attr-{i:02d}", (f"value {i:02d} " * 6).encode())
    P.write("/xattr-remote", 300)
    os.setxattr(P.p("/xattr-remote"), "user.big", ("".join(word(r, 60) + "\n" for _ in range(100))).encode())

    os.chown(P.p("/tiny1"), 1000, 1000)
    os.chmod(P.p("/exact4096"), 0o600)
    os.chmod(P.p("/tiny100"), 0o4755)


def pop_freesp_1k(P):
    r = random.Random(1024)
    names = []
    for d in range(4):
        P.mkdir(f"/d{d}")
        for i in range(500):
            name = f"/d{d}/f{i:04d}"
            P.write(name, r.randint(1, 8 * 1024))
            names.append(name)
    os.sync()
    for i, name in enumerate(names):
        if i % 2 == 1:
            P.unlink(name)


def pop_multi_ag(P):
    r = random.Random(16)
    for d in range(24):
        P.mkdir(f"/ag-dir-{d:02d}")
        for i in range(3):
            P.write(f"/ag-dir-{d:02d}/file-{i}", r.randint(0, 40000))
        P.mkdir(f"/ag-dir-{d:02d}/sub")
        P.write(f"/ag-dir-{d:02d}/sub/leaf", r.randint(1, 5000))
    # This kernel gives every new inode an empty attribute fork (forkoff 24:
    # a 192-byte data fork) because an LSM is active. Adding and removing
    # an xattr drops that fork, so the data fork gets the whole literal
    # area of a 1 KiB inode (848 bytes): a 40-entry directory stays
    # shortform and 45 extents still fit in the inode's extent list, while
    # the partner file, which keeps forkoff 24, needs a BMBT for the same.
    P.mkdir("/bigsf")
    drop_attr_fork(P.p("/bigsf"))
    P.write("/bigsf/entry-00", 123)
    for i in range(1, 40):
        if i % 10 == 0:
            P.symlink("entry-00", f"/bigsf/entry-{i:02d}")
        else:
            P.link("/bigsf/entry-00", f"/bigsf/entry-{i:02d}")
    P.write("/frag45", 0)
    drop_attr_fork(P.p("/frag45"))
    P.interleave(["/frag45", "/frag45-partner"], 45, 4096)
    # ~600 bytes of attributes stay inline only with big inodes.
    P.write("/xattr-inline", 50)
    for i in range(12):
        os.setxattr(P.p("/xattr-inline"), f"user.key-{i:02d}", f"value-{i:02d}-".encode() * 3)


def drop_attr_fork(p):
    os.setxattr(p, "user.drop-attr-fork", b"x")
    os.removexattr(p, "user.drop-attr-fork")


SAMPLE_README = """\
This is the xfsimg sample image.

It is a small XFS v5 filesystem (4 KiB blocks) made by mkfs.xfs and filled
through the Linux kernel by images/mkfixtures.sh in the xfsimg repository.
Try:

    xfsimg inspect sample.img
    xfsimg ls -l sample.img /
    xfsimg cat sample.img /README.txt

What is in it:

    README.txt            this file
    docs/                 a few text files, one nested directory
    src/                  a tiny C program
    data/sparse.bin       a sparse file: 1 MiB of data, a 200 MiB hole, 64 KiB
    data/fragmented.bin   40 one-block extents, so its extent map is a B+tree
    latest                a symbolic link to docs/usage.txt
"""

SAMPLE_FILES = {
    "/docs/intro.txt": """\
XFS divides a filesystem into allocation groups. Each group has its own
free-space btrees (by block number and by size) and its own inode btrees,
so allocations in different groups do not contend.
""",
    "/docs/usage.txt": """\
Reading an image never needs a mount: xfsimg decodes the superblock, walks
the inode and directory structures, and follows each file's extent map.
""",
    "/docs/notes/todo.txt": """\
- look at data/fragmented.bin with `xfsimg bmap`
- compare with `xfs_db -r -c 'inode N' -c bmap`
""",
    "/src/hello.c": """\
#include <stdio.h>

int main(void)
{
\tputs("hello from an XFS image");
\treturn 0;
}
""",
    "/src/Makefile": "hello: hello.c\n\tcc -o $@ $<\n",
}


def pop_sample(P):
    P.text("/README.txt", SAMPLE_README)
    for d in ("/docs", "/docs/notes", "/src", "/data"):
        P.mkdir(d)
    for path, s in SAMPLE_FILES.items():
        P.text(path, s)
    fd = os.open(P.p("/data/sparse.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    P.pwrite(fd, "/data/sparse.bin", 0, 1 << 20)
    P.pwrite(fd, "/data/sparse.bin", 201 << 20, 64 << 10)
    os.close(fd)
    P.interleave(["/data/fragmented.bin", "/data/partner.bin"], 40, 4096)
    P.symlink("docs/usage.txt", "/latest")


POPULATE = {
    "dirs-4k": pop_dirs_4k,
    "files-4k": pop_files_4k,
    "freesp-1k": pop_freesp_1k,
    "multi-ag": pop_multi_ag,
    "sample": pop_sample,
}

# Shapes each fixture promises, confirmed with xfs_db on the unmounted
# image: (role, path, [xfs_db commands after `inode N`], check). A check is
# a regexp the output must match; None just records the output.
DIR_LEAF_4K = "dblock 8388608"  # XFS_DIR2_LEAF_OFFSET (32 GiB) in 4 KiB dir blocks
SHAPES = {
    "dirs-4k": [
        ("sf_dir", "/sf", ["p core.format core.forkoff"], r"= 1 \(local\)"),
        ("block_dir", "/block", ["p core.format", "dblock 0", "p bhdr.hdr.magic"], r"0x58444233"),
        ("leaf_dir", "/leaf", ["p core.format", DIR_LEAF_4K, "p lhdr.info.hdr.magic"], r"= 2 \(extents\)\n.*0x3df1"),
        ("node_dir", "/node", ["p core.format core.nextents", DIR_LEAF_4K, "p nhdr.info.hdr.magic nhdr.level"], r"= 2 \(extents\)\n.*\n.*0x3ebe"),
        ("btree_dir", "/btree", ["p core.format core.nextents u3.bmbt.level", DIR_LEAF_4K, "p nhdr.info.hdr.magic nhdr.level"], r"= 3 \(btree\)\n.*\n.*\n.*0x3ebe"),
        ("name255", None, ["p core.format"], None),
        ("fifo", "/block/fifo", ["p core.format core.mode"], r"= 0 \(dev\)"),
        ("chardev", "/block/null", ["p core.format core.mode u3.dev"], r"= 0 \(dev\)"),
    ],
    "files-4k": [
        ("btree_file", "/frag-a", ["p core.format core.nextents u3.bmbt.level"], r"= 3 \(btree\)\n.*\nu3.bmbt.level = [1-9]"),
        ("btree_file_b", "/frag-b", ["p core.format core.nextents u3.bmbt.level"], r"= 3 \(btree\)\n.*\nu3.bmbt.level = [1-9]"),
        ("large", "/large", ["p core.format", "bmap"], r"= 2 \(extents\)"),
        ("sparse", "/sparse", ["p core.size", "bmap"], None),
        ("unwritten", "/prealloc", ["bmap"], r"flag 1(.|\n)*flag 0(.|\n)*flag 1"),
        ("prealloc_past_eof", "/prealloc-eof", ["p core.size", "bmap"], r"flag 1"),
        ("empty", "/empty", ["p core.format core.size core.nextents core.forkoff core.aformat"], r"core.nextents = 0"),
        ("inline_symlink", "/link-inline", ["p core.format"], r"= 1 \(local\)"),
        ("remote_symlink", "/link-remote", ["p core.format core.size", "bmap"], r"= 2 \(extents\)"),
        ("xattr_shortform", "/xattr-sf", ["p core.aformat"], r"= 1 \(local\)"),
        ("xattr_leaf", "/xattr-leaf", ["p core.aformat", "ablock 0", "p hdr.info.hdr.magic"], r"= 2 \(extents\)\n.*0x3bee"),
        ("xattr_remote", "/xattr-remote", ["p core.aformat core.naextents"], r"= 2 \(extents\)"),
    ],
    "freesp-1k": [],
    "multi-ag": [
        ("bigsf_dir", "/bigsf", ["p core.format core.size core.forkoff"], r"= 1 \(local\)\ncore.size = [3-9]\d\d\ncore.forkoff = 0"),
        ("extents_45", "/frag45", ["p core.format core.nextents core.forkoff"], r"= 2 \(extents\)\ncore.nextents = 45\ncore.forkoff = 0"),
        ("btree_45", "/frag45-partner", ["p core.format core.nextents core.forkoff u3.bmbt.level"], r"= 3 \(btree\)\ncore.nextents = 45\ncore.forkoff = 24"),
        ("xattr_inline", "/xattr-inline", ["p core.aformat core.forkoff core.naextents"], r"= 1 \(local\)"),
    ],
    "sample": [
        ("btree_file", "/data/fragmented.bin", ["p core.format core.nextents u3.bmbt.level"], r"= 3 \(btree\)"),
        ("sparse", "/data/sparse.bin", ["bmap"], None),
        ("readme", "/README.txt", ["p core.format core.size"], r"= 2 \(extents\)"),
    ],
}


# ---------------------------------------------------------------- manifest

def ftype(mode):
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    raise ValueError(oct(mode))


def dtype(e):
    if e.is_symlink():
        return "symlink"
    if e.is_dir(follow_symlinks=False):
        return "dir"
    if e.is_file(follow_symlinks=False):
        return "file"
    return ftype(e.stat(follow_symlinks=False).st_mode)


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def walk(mnt):
    """Pre-order walk in kernel readdir order (os.scandir = getdents)."""
    files = []

    def visit(rel):
        p = os.path.join(mnt, rel.lstrip("/"))
        st = os.lstat(p)
        t = ftype(st.st_mode)
        f = {"path": rel, "type": t, "inode": st.st_ino, "mode": st.st_mode, "nlink": st.st_nlink,
             "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size, "blocks": st.st_blocks}
        if t == "file":
            f["sha256"] = sha256(p)
            f["extents"] = fiemap_count(p)
        elif t == "symlink":
            f["target"] = os.readlink(p)
        if t in ("chardev", "blockdev"):
            f["major"], f["minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
        if t in ("file", "dir"):
            xa = {}
            for k in os.listxattr(p, follow_symlinks=False):
                xa[k] = os.getxattr(p, k, follow_symlinks=False).decode()
            if xa:
                f["xattrs"] = dict(sorted(xa.items()))
        files.append(f)
        if t == "dir":
            with os.scandir(p) as it:
                ents = [(e.name, e.inode(), dtype(e)) for e in it]
            f["entries"] = [{"name": n, "inode": i, "type": ty} for n, i, ty in ents]
            for n, _, _ in ents:
                visit(rel.rstrip("/") + "/" + n)

    visit("/")
    return files


def cmd_populate(name, mnt):
    os.umask(0o022)
    POPULATE[name](Pop(mnt))


def cmd_walk(mnt, out):
    with open(out, "w") as f:
        json.dump(walk(mnt), f)


def xfs_db(img, cmds):
    args = ["xfs_db", "-r"]
    for c in cmds:
        args += ["-c", c]
    return subprocess.run(args + [img], check=True, capture_output=True, text=True).stdout


def cmd_finish(name, img, walked, out, made_by, mkfs_args):
    files = json.load(open(walked))
    by_path = {f["path"]: f for f in files}
    size = os.path.getsize(img)
    blocksize = int(re.search(r"blocksize = (\d+)", xfs_db(img, ["sb 0", "p blocksize"])).group(1))

    # core.nextents of every inode, in one xfs_db run. Regular files must
    # agree with what the kernel reported through FIEMAP. Directories,
    # symlinks and special files take it from here: FIEMAP does not work on
    # directories and GETBMAPX stops at a directory's i_size, before its
    # leaf and free-index blocks; a symlink cannot be opened at all.
    inos = sorted({f["inode"] for f in files})
    cmds = []
    for ino in inos:
        cmds += [f"inode {ino}", "p core.nextents"]
    got = [int(x) for x in re.findall(r"core.nextents = (\d+)", xfs_db(img, cmds))]
    if len(got) != len(inos):
        sys.exit(f"{name}: xfs_db returned {len(got)} nextents for {len(inos)} inodes")
    nextents = dict(zip(inos, got))
    bad = []
    for f in files:
        if "extents" in f:
            if f["extents"] != nextents[f["inode"]]:
                bad.append(f'{f["path"]}: kernel {f["extents"]} xfs_db {nextents[f["inode"]]}')
        else:
            f["extents"] = nextents[f["inode"]]
    if bad:
        sys.exit(f"{name}: extent counts disagree:\n" + "\n".join(bad[:20]))

    roles, checks = {}, []
    for role, path, cmds, want in SHAPES[name]:
        if path is None and role == "name255":
            path = next(f["path"] for f in files if len(os.path.basename(f["path"])) == 255)
        f = by_path[path]
        full = [f"inode {f['inode']}"] + cmds
        out_text = xfs_db(img, full).rstrip("\n")
        if want is not None and not re.search(want, out_text):
            sys.exit(f"{name}: {role} {path}: xfs_db {full} printed\n{out_text}\nexpected /{want}/")
        roles[role] = path
        checks.append({"why": role, "cmds": full, "out": out_text})

    agcount = int(re.search(r"agcount = (\d+)", xfs_db(img, ["sb 0", "p agcount"])).group(1))
    levels = []
    for ag in range(agcount):
        full = [f"agf {ag}", "p bnolevel cntlevel freeblks longest"]
        o = xfs_db(img, full).rstrip("\n")
        checks.append({"why": f"ag{ag} free space", "cmds": full, "out": o})
        levels.append((int(re.search(r"bnolevel = (\d+)", o).group(1)), int(re.search(r"cntlevel = (\d+)", o).group(1))))
    if name == "freesp-1k" and max(l for l, _ in levels) < 2:
        sys.exit(f"{name}: free space not fragmented enough, bno/cnt levels {levels}")
    full = ["sb 0", "p blocksize sectsize inodesize agcount agblocks dirblklog"]
    checks.append({"why": "geometry", "cmds": full, "out": xfs_db(img, full).rstrip("\n")})

    m = {"name": name, "mkfs": mkfs_args, "size": size, "blocksize": blocksize, "made_by": made_by,
         "roles": roles, "xfs_db": checks}
    with open(out, "w") as w:
        w.write("{\n")
        for k, v in m.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                w.write(f" {json.dumps(k)}: [\n")
                w.write(",\n".join("  " + json.dumps(x) for x in v))
                w.write("\n ],\n")
            else:
                w.write(f" {json.dumps(k)}: {json.dumps(v)},\n")
        w.write(' "files": [\n')
        w.write(",\n".join("  " + json.dumps(f, separators=(",", ":")) for f in files))
        w.write("\n ]\n}\n")
    print(f"{name}: {len(files)} paths; bno/cnt levels per AG {levels}; roles " +
          ", ".join(f"{r}={by_path[p]['inode']}" for r, p in roles.items()))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "populate":
        cmd_populate(*sys.argv[2:4])
    elif cmd == "walk":
        cmd_walk(*sys.argv[2:4])
    elif cmd == "finish":
        cmd_finish(*sys.argv[2:7], sys.argv[7:])
    else:
        sys.exit("unknown command " + cmd)
PYEOF

made_by="mkfs.xfs $(mkfs.xfs -V | awk '{print $NF}') + Linux $(uname -r)"

# make_fixture NAME SIZE [mkfs args...]
make_fixture() {
	local name=$1 size=$2
	shift 2
	local img=$work/$name.img mnt=$work/$name.mnt dev
	echo "== $name: mkfs.xfs $* ($size)"
	truncate -s "$size" "$img"
	mkfs.xfs -f -q "$@" "$img"
	mkdir -p "$mnt"

	attach "$img"
	do_mount "$dev" "$mnt"
	python3 "$work/fx.py" populate "$name" "$mnt"
	sync
	# Free space goes back to the sparse backing file as holes, so blocks
	# freed by deletions cost nothing compressed.
	fstrim "$mnt" || echo "warning: fstrim failed on $name; image will compress worse" >&2
	do_umount "$mnt"

	# The manifest comes from a fresh read-only mount: nothing is served
	# from the page cache of the populating mount.
	do_mount "$dev" "$mnt" ro
	python3 "$work/fx.py" walk "$mnt" "$work/$name.walk.json"
	do_umount "$mnt"
	detach "$dev"

	if ! xfs_repair -n -f "$img" >"$work/$name.repair" 2>&1; then
		cat "$work/$name.repair" >&2
		echo "mkfixtures.sh: xfs_repair -n found problems in $name" >&2
		exit 1
	fi
	python3 "$work/fx.py" finish "$name" "$img" "$work/$name.walk.json" \
		"$work/$name.manifest.json" "$made_by" "$@"
	zstd -19 -q -f "$img" -o "$work/$name.img.zst"
	mv "$work/$name.img.zst" "$work/$name.manifest.json" "$here/"
	echo "   $(stat -c %s "$here/$name.img.zst") bytes compressed"
}

all=(dirs-4k files-4k freesp-1k multi-ag sample)
want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=("${all[@]}")
for name in "${want[@]}"; do
	case $name in
	dirs-4k) make_fixture dirs-4k 512M ;;
	files-4k) make_fixture files-4k 512M ;;
	freesp-1k) make_fixture freesp-1k 400M -b size=1024 -d agcount=4 ;;
	# 16 AGs of 80 MiB: the log (64 MiB minimum) must fit inside one AG.
	multi-ag) make_fixture multi-ag 1280M -d agcount=16 -s size=4096 -i size=1024 ;;
	sample) make_fixture sample 300M ;;
	*)
		echo "mkfixtures.sh: unknown fixture $name (have: ${all[*]})" >&2
		exit 1
		;;
	esac
done
du -ch "$here"/*.img.zst "$here"/*.manifest.json | tail -1
