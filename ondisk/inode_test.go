package ondisk

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// Lines of `xfs_db -c 'inode N' -c print` that Fields does not render:
// shortform directories and shortform attributes belong to the directory
// and attribute code.
var inoSkippedDBPrefixes = []string{"u3.sfdir3.", "a.sfattr."}

// xfs_db's diagnostic for an inode whose CRC does not match is printed with
// the fields but is not one; the CRC verdict itself is in v3.crc.
const inoDBCRCDiagnostic = "Metadata CRC error detected for ino "

// inoImage is an image file opened for reading structures out of it.
type inoImage struct {
	path string
	f    *os.File
	sb   *Superblock
	g    *Geometry
}

func openInoImage(t testing.TB, path string) *inoImage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf := make([]byte, 65536)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := DecodeSuperblock(buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Verify(); err != nil {
		t.Fatal(err)
	}
	return &inoImage{path: path, f: f, sb: sb, g: NewGeometry(sb)}
}

func (im *inoImage) read(t testing.TB, off int64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := im.f.ReadAt(b, off); err != nil {
		t.Fatalf("read %d bytes at %d: %v", n, off, err)
	}
	return b
}

// inode reads inode ino, computing its place from the inode number alone.
func (im *inoImage) inode(t testing.TB, ino uint64) []byte {
	g := im.g
	agno, agino := g.InoAgno(ino), g.InoAgino(ino)
	off := g.AGBDaddr(agno, g.AginoAgbno(agino))<<BBShift + int64(g.AginoOffset(agino)*g.InodeSize)
	return im.read(t, off, g.InodeSize)
}

// blocks reads n file system blocks at an AG-encoded block number.
func (im *inoImage) blocks(t testing.TB, fsb uint64, n int) []byte {
	return im.read(t, im.g.FSBOffset(fsb), n*im.g.BlockSize)
}

// inoEntry is a file made through the kernel, with what stat said about it
// before unmounting.
type inoEntry struct {
	name   string
	ino    uint64
	mode   fs.FileMode
	size   int64
	nlink  uint64
	uid    uint32
	gid    uint32
	mtime  time.Time
	ctime  time.Time
	target string // symlink target
}

const inoLongTarget600 = 600
const inoLongTarget1000 = 1000

// inoPopulate creates through the mounted kernel file system every kind of
// inode the decoders must handle, and returns them by name.
func inoPopulate(t *testing.T, dir string) (map[string]*inoEntry, uint64) {
	t.Helper()
	p := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	xfsIO := func(file string, cmds ...string) {
		t.Helper()
		args := []string{"-f"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		oracle.Run(t, "xfs_io", append(args, file)...)
	}
	names := []string{}
	add := func(n string) { names = append(names, n) }

	must(os.WriteFile(p("empty"), nil, 0o644))
	add("empty")
	must(os.WriteFile(p("small"), []byte("hello\n"), 0o644))
	add("small")
	must(os.Link(p("small"), p("small-link")))
	add("small-link")
	xfsIO(p("holes"), "pwrite 0 4k", "pwrite 1m 4k", "pwrite 3m 4k")
	add("holes")
	var many []string
	for i := 0; i < 300; i++ {
		many = append(many, fmt.Sprintf("pwrite %d 4k", i*8192))
	}
	xfsIO(p("many"), many...)
	add("many")
	xfsIO(p("unwritten"), "falloc 0 1m")
	add("unwritten")
	xfsIO(p("mixed"), "falloc 0 1m", "pwrite 256k 64k")
	add("mixed")
	must(os.Symlink("short", p("short")))
	add("short")
	must(os.Symlink("a\tb\nc?'\"\\\xe9 z\x01\x7f", p("weird")))
	add("weird")
	must(os.Symlink(strings.Repeat("x", inoLongTarget600), p("long600")))
	add("long600")
	must(os.Symlink(strings.Repeat("0123456789", inoLongTarget1000/10), p("long1000")))
	add("long1000")
	must(os.Mkdir(p("dir"), 0o755))
	add("dir")
	must(os.Mkdir(p("bigdir"), 0o755))
	for i := 0; i < 300; i++ {
		must(os.Link(p("empty"), p(fmt.Sprintf("bigdir/entry-%04d-padding-name", i))))
	}
	add("bigdir")
	must(unix.Mkfifo(p("fifo"), 0o644))
	add("fifo")
	must(unix.Mknod(p("chr"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3))))
	add("chr")
	must(unix.Mknod(p("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
	add("blk")
	if len(p("sock")) < 100 {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		must(err)
		must(unix.Bind(fd, &unix.SockaddrUnix{Name: p("sock")}))
		unix.Close(fd)
		add("sock")
	}
	must(os.WriteFile(p("xattr-short"), nil, 0o644))
	must(unix.Setxattr(p("xattr-short"), "user.foo", []byte("bar"), 0))
	add("xattr-short")
	must(os.WriteFile(p("xattr-extents"), []byte("data"), 0o644))
	for i := 0; i < 30; i++ {
		must(unix.Setxattr(p("xattr-extents"), fmt.Sprintf("user.b%03d", i), bytes.Repeat([]byte{'w'}, 100), 0))
	}
	add("xattr-extents")
	// Remote values with holes between them in the attr fork's address
	// space: too many extents for the inode, so the attr fork is a btree.
	must(os.WriteFile(p("xattr-btree"), nil, 0o644))
	for i := 0; i < 300; i++ {
		must(unix.Setxattr(p("xattr-btree"), fmt.Sprintf("user.a%03d", i), bytes.Repeat([]byte{'v'}, 4000), 0))
	}
	for i := 0; i < 300; i += 2 {
		must(unix.Removexattr(p("xattr-btree"), fmt.Sprintf("user.a%03d", i)))
	}
	add("xattr-btree")
	xfsIO(p("flags"), "extsize 64k", "cowextsize 64k", "chattr +AdsfS", "pwrite 0 8k")
	add("flags")
	must(os.Mkdir(p("pdir"), 0o755))
	oracle.Run(t, "xfs_io", "-c", "extsize 16k", "-c", "chattr +PnE", p("pdir"))
	add("pdir")
	xfsIO(p("appendonly"), "pwrite 0 1k", "chattr +a")
	add("appendonly")
	xfsIO(p("immutable"), "pwrite 0 1k", "chattr +i")
	add("immutable")
	xfsIO(p("src"), "pwrite 0 64k")
	xfsIO(p("reflinked"), "reflink "+p("src"))
	add("src")
	add("reflinked")
	must(os.WriteFile(p("owned"), []byte("x"), 0o644))
	must(os.Chown(p("owned"), 1234, 5678))
	must(os.Chmod(p("owned"), 0o6755))
	oracle.Run(t, "xfs_io", "-c", "chproj 74565", p("owned"))
	add("owned")
	must(os.Mkdir(p("sticky"), 0o1777))
	add("sticky")
	for name, tm := range map[string]time.Time{
		"old":    time.Date(1950, 1, 1, 0, 0, 0, 123456789, time.UTC),
		"future": time.Date(2200, 1, 1, 0, 0, 0, 999999999, time.UTC),
		"epoch":  time.Unix(-1<<31, 0),
	} {
		must(os.WriteFile(p(name), nil, 0o644))
		must(os.Chtimes(p(name), tm, tm))
		add(name)
	}
	// New directories go to other AGs, so their files have inode and block
	// numbers with a non-zero AG part.
	for i := 1; i <= 3; i++ {
		sub := fmt.Sprintf("sub%d", i)
		must(os.Mkdir(p(sub), 0o755))
		add(sub)
		xfsIO(p(sub+"/file"), "pwrite 0 4k", "pwrite 64k 4k", "falloc 128k 64k")
		add(sub + "/file")
		must(os.Symlink(strings.Repeat("y", inoLongTarget1000), p(sub+"/link")))
		add(sub + "/link")
	}
	must(os.WriteFile(p("deleted"), bytes.Repeat([]byte{1}, 8192), 0o644))
	var st unix.Stat_t
	must(unix.Lstat(p("deleted"), &st))
	deleted := st.Ino
	must(os.Remove(p("deleted")))
	oracle.Run(t, "sync")

	out := map[string]*inoEntry{}
	for _, n := range names {
		var st unix.Stat_t
		must(unix.Lstat(p(n), &st))
		fi, err := os.Lstat(p(n))
		must(err)
		e := &inoEntry{name: n, ino: st.Ino, mode: fi.Mode(), size: st.Size, nlink: uint64(st.Nlink),
			uid: st.Uid, gid: st.Gid, mtime: time.Unix(st.Mtim.Unix()), ctime: time.Unix(st.Ctim.Unix())}
		if fi.Mode()&fs.ModeSymlink != 0 {
			e.target, err = os.Readlink(p(n))
			must(err)
		}
		out[n] = e
	}
	return out, deleted
}

// inoGeometries are the mkfs variants every kernel-made inode is checked on.
var inoGeometries = []struct {
	name string
	args []string
}{
	{"default", nil},
	{"b1k", []string{"-b", "size=1024"}},
	{"i1k", []string{"-i", "size=1024"}},
	{"nrext64", []string{"-i", "nrext64=1"}},
	{"nobigtime", []string{"-m", "bigtime=0"}},
	{"s4k", []string{"-s", "size=4096"}},
}

// TestInodesAgainstXFSDB makes images with mkfs.xfs, fills them through the
// kernel and checks every inode of the chunks it used against xfs_db and
// stat: Fields line by line, decoded extents and BMBT roots against
// `bmap`, remote symlink blocks against `dblock 0`, byte-exact re-encoding,
// and Verify.
func TestInodesAgainstXFSDB(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, geo := range inoGeometries {
		t.Run(geo.name, func(t *testing.T) {
			t.Parallel()
			img := oracle.Mkfs(t, 400<<20, geo.args...)
			dir, _ := oracle.Mount(t, img)
			ents, deleted := inoPopulate(t, dir)
			oracle.Unmount(t, dir)
			im := openInoImage(t, img)
			checkInoImage(t, im, ents, deleted)
			if geo.name == "default" {
				testInoVerifyRules(t, im, ents)
			}
		})
	}
}

// TestMkfsInodesAgainstXFSDB checks the inodes mkfs.xfs writes from a
// protofile (no kernel needed) against xfs_db, and that they verify and
// re-encode exactly.
func TestMkfsInodesAgainstXFSDB(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	im, _ := inoFuzzSeeds(t)
	var list []uint64
	for ino := im.sb.RootIno; ino < im.sb.RootIno+InodesPerChunk; ino++ {
		list = append(list, ino)
	}
	db := inoBatchDB(t, im.path, list, "p")
	for _, ino := range list {
		buf := im.inode(t, ino)
		d, err := DecodeDinode(buf)
		if err != nil {
			t.Fatalf("inode %d: %v", ino, err)
		}
		inoCompareDB(t, fmt.Sprintf("inode %d", ino), db[ino], d.Fields(im.g, buf).String())
		if err := d.Verify(im.g, ino); err != nil {
			t.Errorf("inode %d: %v", ino, err)
		}
		cp := bytes.Clone(buf)
		d.Encode(cp)
		if !bytes.Equal(cp, buf) {
			t.Errorf("inode %d: re-encodes differently at byte %d", ino, inoFirstDiff(cp, buf))
		}
	}
}

func checkInoImage(t *testing.T, im *inoImage, ents map[string]*inoEntry, deleted uint64) {
	g := im.g
	// Every inode of every chunk the files live in, allocated or not.
	inos := map[uint64]bool{im.sb.RootIno: true, deleted: true}
	for _, e := range ents {
		base := e.ino &^ (InodesPerChunk - 1)
		for i := uint64(0); i < InodesPerChunk; i++ {
			inos[base+i] = true
		}
	}
	var list []uint64
	bufs := map[uint64][]byte{}
	for ino := range inos {
		b := im.inode(t, ino)
		if inoBE16(b) != DinodeMagic {
			continue // a hole in a sparse chunk
		}
		list = append(list, ino)
		bufs[ino] = b
	}
	slices.Sort(list)

	db := inoBatchDB(t, im.path, list, "p")
	dinodes := map[uint64]*Dinode{}
	for _, ino := range list {
		buf := bufs[ino]
		d, err := DecodeDinode(buf)
		if err != nil {
			t.Fatalf("inode %d: %v", ino, err)
		}
		dinodes[ino] = d
		inoCompareDB(t, fmt.Sprintf("inode %d", ino), db[ino], d.Fields(g, buf).String())
		if err := d.Verify(g, ino); err != nil {
			t.Errorf("inode %d: Verify: %v", ino, err)
		}
		cp := bytes.Clone(buf)
		d.Encode(cp)
		if !bytes.Equal(cp, buf) {
			t.Errorf("inode %d: encode differs from disk at byte %d", ino, inoFirstDiff(cp, buf))
		}
	}
	free := 0
	for _, d := range dinodes {
		if d.IsFree() {
			free++
		}
	}
	t.Logf("%d inodes compared with xfs_db (%d free)", len(list), free)
	if len(list)-free < len(ents) || free == 0 {
		t.Errorf("expected all %d files and some free inodes among those compared", len(ents))
	}
	if d := dinodes[deleted]; d == nil || !d.IsFree() {
		t.Errorf("deleted inode %d is not free on disk", deleted)
	}

	checkInoStat(t, im, ents, dinodes)
	checkInoMappings(t, im, list, bufs, dinodes)
	checkInoSymlinks(t, im, ents, bufs, dinodes)
	checkInoCoverage(t, im, ents, dinodes)
}

func inoBE16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func inoFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// inoBatchDB runs one xfs_db for all inodes, each as "inode N" followed by
// cmds, and returns each inode's output.
func inoBatchDB(t testing.TB, img string, inos []uint64, cmds ...string) map[uint64]string {
	t.Helper()
	var args []string
	for _, ino := range inos {
		args = append(args, fmt.Sprintf("echo @@@ %d", ino), fmt.Sprintf("inode %d", ino))
		args = append(args, cmds...)
	}
	out := inoDBStdout(t, img, args...)
	res := map[uint64]string{}
	var cur uint64
	var b strings.Builder
	flush := func() {
		if cur != 0 {
			res[cur] = b.String()
		}
		b.Reset()
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "@@@ "); ok {
			flush()
			n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				t.Fatalf("xfs_db echo line %q", line)
			}
			cur = n
			continue
		}
		b.WriteString(line)
	}
	flush()
	return res
}

// inoDBStdout runs xfs_db -r and returns its standard output only: xfs_db
// reports CRC errors on stderr, unbuffered, and mixed into the buffered
// stdout they could split a line.
func inoDBStdout(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	args := []string{"-r"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("xfs_db", append(args, img)...).Output()
	if err != nil {
		t.Fatalf("xfs_db %s: %v", img, err)
	}
	return string(out)
}

// inoCompareDB compares xfs_db output with ours line by line, leaving
// out the prefixes Fields does not render.
func inoCompareDB(t testing.TB, what, db, ours string) {
	t.Helper()
	var want []string
	for _, l := range strings.Split(strings.TrimRight(db, "\n"), "\n") {
		skip := strings.HasPrefix(l, inoDBCRCDiagnostic)
		for _, p := range inoSkippedDBPrefixes {
			skip = skip || strings.HasPrefix(l, p)
		}
		if !skip {
			want = append(want, l)
		}
	}
	got := strings.Split(strings.TrimRight(ours, "\n"), "\n")
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Errorf("%s: line %d differs from xfs_db:\n xfs_db: %q\n ours:   %q", what, i+1, w, g)
			return
		}
	}
}

// checkInoStat compares the decoded cores with what the kernel's stat said.
func checkInoStat(t *testing.T, im *inoImage, ents map[string]*inoEntry, dinodes map[uint64]*Dinode) {
	for _, e := range ents {
		d := dinodes[e.ino]
		if d == nil {
			t.Errorf("%s: inode %d not read", e.name, e.ino)
			continue
		}
		if got := d.GoMode(); got != e.mode {
			t.Errorf("%s: GoMode %v, stat says %v", e.name, got, e.mode)
		}
		if got := d.FileType(); got != e.mode.Type() {
			t.Errorf("%s: FileType %v, stat says %v", e.name, got, e.mode.Type())
		}
		if d.IsDir() != e.mode.IsDir() || d.IsReg() != e.mode.IsRegular() || d.IsSymlink() != (e.mode&fs.ModeSymlink != 0) {
			t.Errorf("%s: type predicates disagree with %v", e.name, e.mode)
		}
		if d.Size != e.size || uint64(d.Nlink) != e.nlink || d.UID != e.uid || d.GID != e.gid {
			t.Errorf("%s: size/nlink/uid/gid %d/%d/%d/%d, stat says %d/%d/%d/%d", e.name,
				d.Size, d.Nlink, d.UID, d.GID, e.size, e.nlink, e.uid, e.gid)
		}
		if !d.Mtime.Time().Equal(e.mtime) || !d.Ctime.Time().Equal(e.ctime) {
			t.Errorf("%s: mtime/ctime %v/%v, stat says %v/%v", e.name, d.Mtime.Time(), d.Ctime.Time(), e.mtime, e.ctime)
		}
	}
	if d := dinodes[ents["owned"].ino]; d.ProjID() != 74565 {
		t.Errorf("owned: project id %d, want 74565", d.ProjID())
	}
}

// checkInoMappings decodes every extent list and BMBT root and compares the
// mapping with `xfs_db bmap`, and re-encodes the forks byte for byte.
func checkInoMappings(t *testing.T, im *inoImage, list []uint64, bufs map[uint64][]byte, dinodes map[uint64]*Dinode) {
	g := im.g
	var mapped []uint64
	for _, ino := range list {
		if d := dinodes[ino]; !d.IsFree() && (d.NExtents != 0 || d.ANExtents != 0) {
			mapped = append(mapped, ino)
		}
	}
	db := inoBatchDB(t, im.path, mapped, "bmap")
	for _, ino := range mapped {
		d, buf := dinodes[ino], bufs[ino]
		var want strings.Builder
		for _, fk := range []struct {
			name   string
			format uint8
			n      uint64
			fork   []byte
		}{
			{"data", d.Format, d.NExtents, DataFork(buf, d, g)},
			{"attr", d.AFormat, uint64(d.ANExtents), AttrFork(buf, d, g)},
		} {
			if fk.n == 0 {
				continue
			}
			exts := inoForkExtents(t, im, ino, fk.name, fk.format, fk.n, fk.fork)
			if uint64(len(exts)) != fk.n {
				t.Errorf("inode %d %s: %d extents mapped, core says %d", ino, fk.name, len(exts), fk.n)
			}
			if err := CheckExtents(exts, g); err != nil {
				t.Errorf("inode %d %s: CheckExtents: %v", ino, fk.name, err)
			}
			for _, e := range exts {
				flag := 0
				if e.Unwritten {
					flag = 1
				}
				fmt.Fprintf(&want, "%s offset %d startblock %d (%d/%d) count %d flag %d\n", fk.name,
					e.StartOff, e.StartBlock, g.FSBAgno(e.StartBlock), g.FSBAgbno(e.StartBlock), e.BlockCount, flag)
			}
		}
		if got := db[ino]; got != want.String() {
			t.Errorf("inode %d: mapping differs from xfs_db bmap:\nxfs_db:\n%s\nours:\n%s", ino, got, want.String())
		}
	}
}

// inoForkExtents decodes one fork's mapping: the records in the inode, or the
// leaves of the BMBT whose root is in the inode. It also checks that
// re-encoding reproduces the fork bytes.
func inoForkExtents(t *testing.T, im *inoImage, ino uint64, name string, format uint8, n uint64, fork []byte) []Extent {
	switch format {
	case FmtExtents:
		exts, err := DecodeExtents(fork, n)
		if err != nil {
			t.Errorf("inode %d %s: %v", ino, name, err)
			return nil
		}
		cp := bytes.Clone(fork)
		EncodeExtents(cp, exts)
		if !bytes.Equal(cp, fork) {
			t.Errorf("inode %d %s: extents re-encode differently at byte %d", ino, name, inoFirstDiff(cp, fork))
		}
		return exts
	case FmtBtree:
		r, err := DecodeBmdr(fork)
		if err != nil {
			t.Errorf("inode %d %s: %v", ino, name, err)
			return nil
		}
		if err := r.Verify(im.g, 8); err != nil {
			t.Errorf("inode %d %s: bmdr Verify: %v", ino, name, err)
		}
		cp := bytes.Clone(fork)
		r.Encode(cp)
		if !bytes.Equal(cp, fork) {
			t.Errorf("inode %d %s: bmbt root re-encodes differently at byte %d", ino, name, inoFirstDiff(cp, fork))
		}
		var exts []Extent
		for i, p := range r.Ptrs {
			sub := inoWalkBMBT(t, im, p, int(r.Level)-1)
			if len(sub) == 0 || sub[0].StartOff != r.Keys[i] {
				t.Errorf("inode %d %s: root key %d is %d, child starts at %v", ino, name, i+1, r.Keys[i], sub)
			}
			exts = append(exts, sub...)
		}
		return exts
	}
	t.Errorf("inode %d %s: extents in format %d", ino, name, format)
	return nil
}

// inoWalkBMBT reads the long-format v5 BMBT blocks below a root pointer (a
// test-only reader: 72-byte header, then keys and pointers or records).
func inoWalkBMBT(t *testing.T, im *inoImage, fsb uint64, level int) []Extent {
	const hdr = 72
	b := im.blocks(t, fsb, 1)
	if string(b[:4]) != "BMA3" || int(inoBE16(b[4:])) != level {
		t.Fatalf("bmbt block %d: magic %q level %d, want BMA3 level %d", fsb, b[:4], inoBE16(b[4:]), level)
	}
	n := int(inoBE16(b[6:]))
	if level == 0 {
		exts, err := DecodeExtents(b[hdr:], uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		return exts
	}
	maxrecs := (im.g.BlockSize - hdr) / 16
	var out []Extent
	for i := 0; i < n; i++ {
		p := beU64sAt(b, hdr+maxrecs*8+i*8, 1)[0]
		out = append(out, inoWalkBMBT(t, im, p, level-1)...)
	}
	return out
}

// checkInoSymlinks reads every symlink target back: from the inode, or from
// the remote blocks (checked against `xfs_db dblock 0`).
func checkInoSymlinks(t *testing.T, im *inoImage, ents map[string]*inoEntry, bufs map[uint64][]byte, dinodes map[uint64]*Dinode) {
	g := im.g
	var remote []uint64
	for _, e := range ents {
		if e.target == "" {
			continue
		}
		d, buf := dinodes[e.ino], bufs[e.ino]
		if d.Format == FmtLocal {
			got, err := LocalSymlink(buf, d, g)
			if err != nil || string(got) != e.target {
				t.Errorf("%s: local target %q, %v; want %q", e.name, got, err, e.target)
			}
			continue
		}
		remote = append(remote, e.ino)
		exts, err := DecodeExtents(DataFork(buf, d, g), d.NExtents)
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		var target []byte
		for _, x := range exts {
			blk := im.blocks(t, x.StartBlock, int(x.BlockCount))
			h, payload, err := DecodeSymlinkBlock(blk)
			if err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			if err := h.Verify(blk, g, e.ino, g.FSBDaddr(x.StartBlock)); err != nil {
				t.Errorf("%s: %v", e.name, err)
			}
			if int(h.Offset) != len(target) {
				t.Errorf("%s: block at offset %d, have %d bytes", e.name, h.Offset, len(target))
			}
			cp := bytes.Clone(blk)
			h.Encode(cp)
			if !bytes.Equal(cp, blk) {
				t.Errorf("%s: symlink header re-encodes differently at byte %d", e.name, inoFirstDiff(cp, blk))
			}
			target = append(target, payload...)
		}
		if string(target) != e.target {
			t.Errorf("%s: remote target %q, want %q", e.name, target, e.target)
		}
		if SymlinkBlocks(len(e.target), g.BlockSize) != int(d.NBlocks) {
			t.Errorf("%s: SymlinkBlocks %d, inode has %d blocks", e.name, SymlinkBlocks(len(e.target), g.BlockSize), d.NBlocks)
		}
	}
	slices.Sort(remote)
	db := inoBatchDB(t, im.path, remote, "dblock 0", "p")
	for _, ino := range remote {
		d, buf := dinodes[ino], bufs[ino]
		exts, _ := DecodeExtents(DataFork(buf, d, g), d.NExtents)
		// xfs_db reads one block, so a two-block buffer shows a bad CRC
		// and a clipped target there; the same block gives the same view.
		blk := im.blocks(t, exts[0].StartBlock, 1)
		h, _, _ := DecodeSymlinkBlock(blk)
		inoCompareDB(t, fmt.Sprintf("symlink block of inode %d", ino), db[ino], h.Fields(blk).String())
	}
}

// checkInoCoverage makes sure the image really has the cases the test claims to
// check, so that a change in kernel behaviour cannot make it vacuous.
func checkInoCoverage(t *testing.T, im *inoImage, ents map[string]*inoEntry, dinodes map[uint64]*Dinode) {
	g := im.g
	lit := LiteralSize(g)
	d := func(name string) *Dinode { return dinodes[ents[name].ino] }
	checks := []struct {
		name string
		ok   bool
	}{
		{"many is a btree", d("many").Format == FmtBtree},
		{"xattr-btree has a btree attr fork", d("xattr-btree").AFormat == FmtBtree},
		{"xattr-extents has an extents attr fork", d("xattr-extents").AFormat == FmtExtents && d("xattr-extents").ANExtents > 0},
		{"xattr-short has a local attr fork", d("xattr-short").AFormat == FmtLocal},
		{"short is local", d("short").Format == FmtLocal},
		{"long1000 is remote", d("long1000").Format == FmtExtents},
		{"long600 is remote when it does not fit", d("long600").Format == FmtExtents || lit >= inoLongTarget600},
		{"unwritten has the prealloc flag", d("unwritten").Flags&DiFlagPrealloc != 0},
		{"dir is local", d("dir").Format == FmtLocal},
		{"bigdir is in extents", d("bigdir").Format == FmtExtents},
		{"chr is dev", d("chr").Format == FmtDev},
		{"reflinked has the reflink flag", d("reflinked").Flags2&DiFlags2Reflink != 0},
		{"flags has its flags", d("flags").Flags&(DiFlagNoatime|DiFlagNodump|DiFlagSync|DiFlagNodefrag|DiFlagFilestream|DiFlagExtsize) ==
			DiFlagNoatime|DiFlagNodump|DiFlagSync|DiFlagNodefrag|DiFlagFilestream|DiFlagExtsize && d("flags").Flags2&DiFlags2Cowextsize != 0},
		{"pdir has its flags", d("pdir").Flags&(DiFlagProjinherit|DiFlagNosymlinks|DiFlagExtszinherit) == DiFlagProjinherit|DiFlagNosymlinks|DiFlagExtszinherit},
		{"bigtime per feature", (d("small").Flags2&DiFlags2Bigtime != 0) == g.Bigtime},
		{"nrext64 per feature", (d("small").Flags2&DiFlags2Nrext64 != 0) == g.Nrext64},
		{"a sub directory file in another AG", g.InoAgno(ents["sub1/file"].ino) != 0 ||
			g.InoAgno(ents["sub2/file"].ino) != 0 || g.InoAgno(ents["sub3/file"].ino) != 0},
	}
	hasUnwritten := false
	exts, _ := DecodeExtents(DataFork(im.inode(t, ents["mixed"].ino), d("mixed"), g), d("mixed").NExtents)
	for _, e := range exts {
		hasUnwritten = hasUnwritten || e.Unwritten
	}
	checks = append(checks, struct {
		name string
		ok   bool
	}{"mixed has unwritten and written extents", hasUnwritten && len(exts) >= 2})
	if g.BlockSize == 1024 {
		// Two blocks allocated together are one buffer with one header.
		sl, _ := DecodeExtents(DataFork(im.inode(t, ents["long1000"].ino), d("long1000"), g), d("long1000").NExtents)
		checks = append(checks, struct {
			name string
			ok   bool
		}{"long1000 is one two-block buffer", len(sl) == 1 && sl[0].BlockCount == 2})
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("coverage: %s: not so on this image", c.name)
		}
	}
}

// testInoVerifyRules breaks real inodes one rule at a time (re-stamping the
// CRC) and checks that Verify rejects each, and that the unbroken inodes
// and free inodes pass.
func testInoVerifyRules(t *testing.T, im *inoImage, ents map[string]*inoEntry) {
	g := im.g
	lit := LiteralSize(g)
	type mut func(d *Dinode, g *Geometry)
	cases := []struct {
		name   string
		base   string
		mutate mut
		ok     bool
	}{
		{"regular file as is", "holes", nil, true},
		{"btree file as is", "many", nil, true},
		{"symlink as is", "short", nil, true},
		{"device as is", "chr", nil, true},
		{"free inode as the kernel leaves it", "holes", func(d *Dinode, g *Geometry) {
			d.Mode, d.Format, d.ForkOff, d.NExtents, d.NBlocks, d.Size = 0, FmtExtents, 0, 0, 0, 0
		}, true},
		{"free inode as mkfs leaves it", "holes", func(d *Dinode, g *Geometry) {
			*d = Dinode{Magic: DinodeMagic, Version: 3, Ino: d.Ino, UUID: d.UUID, NextUnlinked: NullAGIno}
		}, true},
		{"short symlink in extents format", "short", func(d *Dinode, g *Geometry) {
			d.Format, d.NExtents, d.NBlocks = FmtExtents, 1, 1
		}, true},
		{"bad magic", "holes", func(d *Dinode, g *Geometry) { d.Magic = 0x4e49 }, false},
		{"version 2", "holes", func(d *Dinode, g *Geometry) { d.Version = 2 }, false},
		{"wrong inode number", "holes", func(d *Dinode, g *Geometry) { d.Ino++ }, false},
		{"wrong uuid", "holes", func(d *Dinode, g *Geometry) { d.UUID[0] ^= 1 }, false},
		{"negative size", "holes", func(d *Dinode, g *Geometry) { d.Size = -1 }, false},
		{"undefined file type", "holes", func(d *Dinode, g *Geometry) { d.Mode = 0xe000 | 0o644 }, false},
		{"empty symlink", "short", func(d *Dinode, g *Geometry) { d.Size = 0 }, false},
		{"empty directory", "dir", func(d *Dinode, g *Geometry) { d.Size = 0 }, false},
		{"v3 pad set", "holes", func(d *Dinode, g *Geometry) { d.V3Pad = 1 }, false},
		{"nrext64 without the feature", "holes", func(d *Dinode, g *Geometry) {
			d.Flags2 |= DiFlags2Nrext64
			g.Nrext64 = false
		}, false},
		{"nrext64 with the feature", "holes", func(d *Dinode, g *Geometry) {
			d.Flags2 |= DiFlags2Nrext64
			g.Nrext64 = true
		}, true},
		{"nrext64 pad set", "holes", func(d *Dinode, g *Geometry) {
			d.Flags2 |= DiFlags2Nrext64
			d.Nrext64Pad = 1
			g.Nrext64 = true
		}, false},
		{"more extents than blocks", "holes", func(d *Dinode, g *Geometry) { d.NBlocks = d.NExtents - 1 }, false},
		{"forkoff at the end of the literal area", "holes", func(d *Dinode, g *Geometry) { d.ForkOff = uint8(lit / 8) }, false},
		{"forkoff just inside the literal area", "empty", func(d *Dinode, g *Geometry) { d.ForkOff = uint8(lit/8 - 1) }, true},
		{"device with a wide forkoff", "chr", func(d *Dinode, g *Geometry) { d.ForkOff = 2 }, false},
		{"fifo in extents format", "fifo", func(d *Dinode, g *Geometry) { d.Format = FmtExtents }, false},
		{"regular file in local format", "small", func(d *Dinode, g *Geometry) {
			d.Format, d.NExtents = FmtLocal, 0
		}, false},
		{"directory in dev format", "dir", func(d *Dinode, g *Geometry) { d.Format = FmtDev }, false},
		{"short directory in extents format", "dir", func(d *Dinode, g *Geometry) { d.Format = FmtExtents }, false},
		{"short symlink in btree format", "short", func(d *Dinode, g *Geometry) { d.Format = FmtBtree }, false},
		{"local symlink longer than its fork", "short", func(d *Dinode, g *Geometry) { d.Size = int64(lit) + 1 }, false},
		{"unknown data fork format", "holes", func(d *Dinode, g *Geometry) { d.Format = 7 }, false},
		{"more extents than the fork holds", "holes", func(d *Dinode, g *Geometry) {
			d.NExtents = uint64(DataForkSize(d, g)/ExtentSize + 1)
			d.NBlocks = d.NExtents
		}, false},
		{"btree with extents that fit the inode", "many", func(d *Dinode, g *Geometry) {
			d.NExtents = uint64(DataForkSize(d, g) / ExtentSize)
		}, false},
		{"attr extents without an attr fork", "empty", func(d *Dinode, g *Geometry) {
			d.ForkOff, d.ANExtents, d.NBlocks = 0, 1, 1
		}, false},
		{"attr format local without an attr fork", "empty", func(d *Dinode, g *Geometry) {
			d.ForkOff, d.AFormat = 0, FmtLocal
		}, false},
		{"attr format 0 without an attr fork", "empty", func(d *Dinode, g *Geometry) {
			d.ForkOff, d.AFormat = 0, 0
		}, true},
		{"local attr fork with extents", "xattr-short", func(d *Dinode, g *Geometry) {
			d.ANExtents, d.NBlocks = 1, 1
		}, false},
		{"bad attr fork format", "xattr-short", func(d *Dinode, g *Geometry) { d.AFormat = FmtDev }, false},
		{"extsize without the hint flag", "holes", func(d *Dinode, g *Geometry) { d.ExtSize = 16 }, false},
		{"extsize hint on a directory", "pdir", func(d *Dinode, g *Geometry) { d.Flags |= DiFlagExtsize }, false},
		{"extsize inherit on a file", "flags", func(d *Dinode, g *Geometry) { d.Flags |= DiFlagExtszinherit }, false},
		{"extsize hint of 0", "flags", func(d *Dinode, g *Geometry) { d.ExtSize = 0 }, false},
		{"extsize over half an AG", "flags", func(d *Dinode, g *Geometry) { d.ExtSize = g.AGBlocks/2 + 1 }, false},
		{"cowextsize without the flag", "holes", func(d *Dinode, g *Geometry) { d.CowExtSize = 16 }, false},
		{"cowextsize on a symlink", "short", func(d *Dinode, g *Geometry) {
			d.Flags2 |= DiFlags2Cowextsize
			d.CowExtSize = 16
		}, false},
		{"reflink on a directory", "dir", func(d *Dinode, g *Geometry) { d.Flags2 |= DiFlags2Reflink }, false},
		{"realtime flag", "holes", func(d *Dinode, g *Geometry) { d.Flags |= DiFlagRealtime }, false},
		{"bigtime without the feature", "holes", func(d *Dinode, g *Geometry) { g.Bigtime = false }, false},
	}
	for _, c := range cases {
		e := ents[c.base]
		buf := im.inode(t, e.ino)
		d, err := DecodeDinode(buf)
		if err != nil {
			t.Fatal(err)
		}
		gc := *g
		ino := e.ino
		if c.mutate != nil {
			c.mutate(d, &gc)
			d.Encode(buf)
			if d, err = DecodeDinode(buf); err != nil && c.ok {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		err = d.Verify(&gc, ino)
		if c.ok && err != nil {
			t.Errorf("%s: Verify: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Verify returned %v, want a corruption error", c.name, err)
		}
	}
	// A CRC that does not match the bytes.
	buf := im.inode(t, ents["holes"].ino)
	buf[DinodeCoreSize] ^= 1
	d, _ := DecodeDinode(buf)
	if d.CRCOK() || !errors.Is(d.Verify(g, ents["holes"].ino), ErrCorrupt) {
		t.Errorf("flipped fork byte: CRCOK %v, Verify accepted it", d.CRCOK())
	}
}

func TestTimestamp(t *testing.T) {
	cases := []struct {
		name    string
		raw     uint64
		bigtime bool
		want    Timestamp
		utc     string
	}{
		{"legacy epoch", 0, false, Timestamp{0, 0}, "1970-01-01T00:00:00Z"},
		{"legacy negative", uint64(0xffffffff)<<32 | 5, false, Timestamp{-1, 5}, "1969-12-31T23:59:59.000000005Z"},
		{"legacy min", uint64(0x80000000) << 32, false, Timestamp{-1 << 31, 0}, "1901-12-13T20:45:52Z"},
		{"legacy max", uint64(0x7fffffff)<<32 | 999999999, false, Timestamp{1<<31 - 1, 999999999}, "2038-01-19T03:14:07.999999999Z"},
		{"legacy raw nsec kept", 0xffffffff, false, Timestamp{0, 0xffffffff}, ""},
		{"bigtime zero", 0, true, Timestamp{-1 << 31, 0}, "1901-12-13T20:45:52Z"},
		{"bigtime unix epoch", 1 << 31 * 1e9, true, Timestamp{0, 0}, "1970-01-01T00:00:00Z"},
		{"bigtime nsec", 1<<31*1e9 + 123456789, true, Timestamp{0, 123456789}, "1970-01-01T00:00:00.123456789Z"},
		{"bigtime max", ^uint64(0), true, Timestamp{int64(^uint64(0)/1e9) - 1<<31, uint32(^uint64(0) % 1e9)}, "2486-07-02T20:20:25.709551615Z"},
	}
	for _, c := range cases {
		var b [8]byte
		for i := range 8 {
			b[i] = byte(c.raw >> (56 - 8*i))
		}
		got := DecodeTimestamp(b[:], c.bigtime)
		if got != c.want {
			t.Errorf("%s: decoded %+v, want %+v", c.name, got, c.want)
		}
		if c.utc != "" {
			if s := got.Time().UTC().Format(time.RFC3339Nano); s != c.utc {
				t.Errorf("%s: time %s, want %s", c.name, s, c.utc)
			}
		}
		var e [8]byte
		got.Encode(e[:], c.bigtime)
		if e != b {
			t.Errorf("%s: re-encoded % x, want % x", c.name, e, b)
		}
	}
	// Every legacy time has the same meaning in bigtime.
	for _, ts := range []Timestamp{{-1 << 31, 0}, {-1, 999999999}, {0, 1}, {1<<31 - 1, 999999999}, {1700000000, 42}} {
		var b [8]byte
		ts.Encode(b[:], true)
		if got := DecodeTimestamp(b[:], true); got != ts {
			t.Errorf("bigtime round trip of %+v gave %+v", ts, got)
		}
		ts.Encode(b[:], false)
		if got := DecodeTimestamp(b[:], false); got != ts {
			t.Errorf("legacy round trip of %+v gave %+v", ts, got)
		}
		if TimestampFromTime(ts.Time()) != ts {
			t.Errorf("TimestampFromTime(%v) != %+v", ts.Time(), ts)
		}
	}
}

func TestExtentPacking(t *testing.T) {
	e := Extent{StartOff: 1<<53 | 5, StartBlock: 1<<51 | 1<<43 | 7, BlockCount: MaxExtLen, Unwritten: true}
	var b [16]byte
	e.Encode(b[:])
	// flag | startoff<<9 | startblock>>43 ; startblock<<21 | count
	want := [16]byte{0xc0, 0, 0, 0, 0, 0, 0x0b, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff}
	if b != want {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	if got := DecodeExtent(b[:]); got != e {
		t.Fatalf("decoded %+v, want %+v", got, e)
	}
	if e.End() != e.StartOff+MaxExtLen {
		t.Fatal("End")
	}
	if _, err := DecodeExtents(make([]byte, 47), 3); !errors.Is(err, ErrCorrupt) {
		t.Errorf("3 extents in 47 bytes: %v", err)
	}
	if _, err := DecodeExtents(make([]byte, 48), ^uint64(0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("2^64-1 extents: %v", err)
	}
	if x, err := DecodeExtents(make([]byte, 48), 3); err != nil || len(x) != 3 {
		t.Errorf("3 extents in 48 bytes: %v %v", x, err)
	}
}

func TestCheckExtents(t *testing.T) {
	// 4 AGs of 1000 4 KiB blocks, 512-byte sectors: AG headers in block 0.
	g := &Geometry{BlockSize: 4096, BlockLog: 12, SectSize: 512, AGBlocks: 1000, AGCount: 4, AGBlkLog: 10, DBlocks: 3900}
	g1 := *g
	g1.SectSize = 4096 // headers take blocks 0-3
	fsb := g.FSB
	cases := []struct {
		name string
		g    *Geometry
		exts []Extent
		ok   bool
	}{
		{"empty", g, nil, true},
		{"two", g, []Extent{{0, fsb(0, 10), 5, false}, {5, fsb(1, 1), 10, true}}, true},
		{"zero length", g, []Extent{{0, fsb(0, 10), 0, false}}, false},
		{"too long", g, []Extent{{0, fsb(0, 10), MaxExtLen + 1, false}}, false},
		{"overlap", g, []Extent{{0, fsb(0, 10), 5, false}, {4, fsb(0, 20), 1, false}}, false},
		{"unsorted", g, []Extent{{10, fsb(0, 10), 5, false}, {0, fsb(0, 20), 1, false}}, false},
		{"AG header block", g, []Extent{{0, fsb(0, 0), 1, false}}, false},
		{"first data block", g, []Extent{{0, fsb(0, 1), 1, false}}, true},
		{"4k sector headers", &g1, []Extent{{0, fsb(0, 3), 1, false}}, false},
		{"after 4k sector headers", &g1, []Extent{{0, fsb(0, 4), 1, false}}, true},
		{"past the AG", g, []Extent{{0, fsb(0, 999), 2, false}}, false},
		{"last AG is short", g, []Extent{{0, fsb(3, 899), 1, false}}, true},
		{"past the short last AG", g, []Extent{{0, fsb(3, 900), 1, false}}, false},
		{"no such AG", g, []Extent{{0, fsb(4, 10), 1, false}}, false},
		{"end of file offsets", g, []Extent{{MaxFileOff - 1, fsb(0, 10), 1, false}}, true},
		{"past file offsets", g, []Extent{{MaxFileOff - 1, fsb(0, 10), 2, false}}, false},
	}
	for _, c := range cases {
		err := CheckExtents(c.exts, c.g)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrCorrupt)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestBmdr(t *testing.T) {
	g := &Geometry{BlockSize: 4096, BlockLog: 12, SectSize: 512, AGBlocks: 1000, AGCount: 4, AGBlkLog: 10, DBlocks: 4000}
	fork := bytes.Repeat([]byte{0xee}, 192) // 11 records and 12 spare bytes
	if BmdrMaxRecs(192) != 11 || BmdrMaxRecs(3) != 0 {
		t.Fatal("BmdrMaxRecs")
	}
	r := &BmdrRoot{Level: 1, NumRecs: 2, Keys: []uint64{0, 100}, Ptrs: []uint64{g.FSB(0, 5), g.FSB(2, 7)}}
	r.Encode(fork)
	if fork[4+7] != 0 || fork[4+8+7] != 100 || fork[4+11*8+7] != 5 || fork[4+12*8+7] != 7 {
		t.Fatalf("layout: % x", fork)
	}
	for i := 4 + 2*8; i < 4+11*8; i++ {
		if fork[i] != 0 {
			t.Fatalf("unused key byte %d not zeroed", i)
		}
	}
	if !bytes.Equal(fork[180:], bytes.Repeat([]byte{0xee}, 12)) {
		t.Fatal("trailing bytes changed")
	}
	got, err := DecodeBmdr(fork)
	if err != nil || got.Level != 1 || got.NumRecs != 2 || !slices.Equal(got.Keys, r.Keys) || !slices.Equal(got.Ptrs, r.Ptrs) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if err := got.Verify(g, 5); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		r    BmdrRoot
	}{
		{"level 0", BmdrRoot{Level: 0, NumRecs: 1, Keys: []uint64{0}, Ptrs: []uint64{g.FSB(0, 5)}}},
		{"too deep", BmdrRoot{Level: 6, NumRecs: 1, Keys: []uint64{0}, Ptrs: []uint64{g.FSB(0, 5)}}},
		{"keys out of order", BmdrRoot{Level: 1, NumRecs: 2, Keys: []uint64{5, 5}, Ptrs: []uint64{g.FSB(0, 5), g.FSB(0, 6)}}},
		{"pointer to AG header", BmdrRoot{Level: 1, NumRecs: 1, Keys: []uint64{0}, Ptrs: []uint64{g.FSB(1, 0)}}},
		{"pointer past the file system", BmdrRoot{Level: 1, NumRecs: 1, Keys: []uint64{0}, Ptrs: []uint64{g.FSB(5, 1)}}},
		{"count mismatch", BmdrRoot{Level: 1, NumRecs: 2, Keys: []uint64{0}, Ptrs: []uint64{g.FSB(0, 5)}}},
	}
	for _, c := range bad {
		if err := c.r.Verify(g, 5); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Verify %v", c.name, err)
		}
	}
	for _, c := range []struct {
		level, numrecs uint16
	}{{0, 1}, {1, 0}, {1, 12}} {
		b := make([]byte, 192)
		b[1], b[3] = byte(c.level), byte(c.numrecs)
		if _, err := DecodeBmdr(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("level %d numrecs %d: %v", c.level, c.numrecs, err)
		}
	}
	if _, err := DecodeBmdr(make([]byte, 3)); !errors.Is(err, ErrCorrupt) {
		t.Error("3-byte fork decoded")
	}
}

func TestModeMapping(t *testing.T) {
	cases := []struct {
		mode  uint16
		ftype uint8
		gm    fs.FileMode
	}{
		{SIFREG | 0o644, FTRegFile, 0o644},
		{SIFDIR | 0o1777, FTDir, fs.ModeDir | fs.ModeSticky | 0o777},
		{SIFLNK | 0o777, FTSymlink, fs.ModeSymlink | 0o777},
		{SIFCHR | 0o600, FTChrdev, fs.ModeDevice | fs.ModeCharDevice | 0o600},
		{SIFBLK | 0o600, FTBlkdev, fs.ModeDevice | 0o600},
		{SIFIFO | 0o644, FTFifo, fs.ModeNamedPipe | 0o644},
		{SIFSOCK | 0o755, FTSock, fs.ModeSocket | 0o755},
		{SIFREG | 0o6755, FTRegFile, fs.ModeSetuid | fs.ModeSetgid | 0o755},
		{0, FTUnknown, fs.ModeIrregular},
		{0xe000 | 0o644, FTUnknown, fs.ModeIrregular | 0o644},
	}
	for _, c := range cases {
		d := &Dinode{Mode: c.mode}
		if got := ModeToFType(c.mode); got != c.ftype {
			t.Errorf("%#o: ftype %d, want %d", c.mode, got, c.ftype)
		}
		if got := d.GoMode(); got != c.gm {
			t.Errorf("%#o: GoMode %v, want %v", c.mode, got, c.gm)
		}
	}
}

func TestDBCharns(t *testing.T) {
	// What xfs_db prints for each byte class, as seen on a real symlink
	// ("a\tb\nc?'\"\\\xc3\xa9 z" printed as a\cb\dc\?\'\"\\\303\251 z).
	got := dbCharns([]byte("a\tb\nc?'\"\\\xc3\xa9 z\x00\x7f\a\b\v\f\r"))
	want := `"a\cb\dc\?\'\"\\\303\251 z\000\177\a\b\e\f\g"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestDamagedInodeFields writes damaged and unusual inodes (copies of real
// ones, changed one field at a time) into free slots of an image and checks
// that Fields still prints them exactly as xfs_db does.
func TestDamagedInodeFields(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	im, _ := inoFuzzSeeds(t)
	g := im.g
	bases := map[string][]byte{}
	var free []uint64
	for ino := im.sb.RootIno; ino < im.sb.RootIno+InodesPerChunk; ino++ {
		b := im.inode(t, ino)
		d, err := DecodeDinode(b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case d.IsFree():
			free = append(free, ino)
		case d.IsReg() && d.NExtents > 0:
			bases["file"] = b
		case d.IsSymlink():
			bases["link"] = b
		case d.Mode&SIFMT == SIFIFO:
			bases["fifo"] = b
		}
	}
	if len(bases) != 3 {
		t.Fatalf("protofile image lacks a base inode: have %d", len(bases))
	}
	lit := LiteralSize(g)
	type mut func(d *Dinode, b []byte)
	cases := []struct {
		name, base string
		mutate     mut
		raw        func(b []byte) // after encoding, without a new CRC
	}{
		{"version 2", "file", func(d *Dinode, b []byte) { d.Version = 2 }, nil},
		{"version 1", "file", func(d *Dinode, b []byte) { d.Version, d.OnLink = 1, 7 }, nil},
		{"version 0", "file", func(d *Dinode, b []byte) { d.Version = 0 }, nil},
		{"version 200", "file", func(d *Dinode, b []byte) { d.Version = 200 }, nil},
		{"unknown format", "file", func(d *Dinode, b []byte) { d.Format = 7 }, nil},
		{"unknown attr format", "file", func(d *Dinode, b []byte) { d.ForkOff, d.AFormat = 20, 9 }, nil},
		{"attr extents", "file", func(d *Dinode, b []byte) {
			d.ForkOff, d.AFormat, d.ANExtents = 20, FmtExtents, 2
			Extent{StartOff: 0, StartBlock: g.FSB(1, 99), BlockCount: 3}.Encode(b[AttrForkOffset(d):])
			Extent{StartOff: 7, StartBlock: g.FSB(2, 5), BlockCount: 1}.Encode(b[AttrForkOffset(d)+16:])
		}, nil},
		{"attr btree", "file", func(d *Dinode, b []byte) {
			d.ForkOff, d.AFormat, d.ANExtents = 20, FmtBtree, 500
			(&BmdrRoot{Level: 2, NumRecs: 3, Keys: []uint64{0, 9, 80}, Ptrs: []uint64{g.FSB(0, 9), g.FSB(1, 2), g.FSB(3, 4)}}).Encode(AttrFork(b, d, g))
		}, nil},
		{"one-record btree root", "file", func(d *Dinode, b []byte) {
			d.Format, d.NExtents = FmtBtree, 1000
			(&BmdrRoot{Level: 1, NumRecs: 1, Keys: []uint64{0}, Ptrs: []uint64{g.FSB(0, 77)}}).Encode(DataFork(b, d, g))
		}, nil},
		{"btree root with no records", "file", func(d *Dinode, b []byte) {
			d.Format = FmtBtree
			(&BmdrRoot{Level: 1}).Encode(DataFork(b, d, g))
		}, nil},
		{"btree root with too many records", "file", func(d *Dinode, b []byte) {
			d.Format = FmtBtree
			b[d.coreSize()+1], b[d.coreSize()+3] = 1, byte(BmdrMaxRecs(lit)+10)
		}, nil},
		{"extent count past the inode", "file", func(d *Dinode, b []byte) { d.NExtents = 100000 }, nil},
		{"unwritten extent", "file", func(d *Dinode, b []byte) {
			Extent{StartOff: 1 << 40, StartBlock: g.FSB(3, 1000), BlockCount: MaxExtLen, Unwritten: true}.Encode(DataFork(b, d, g))
		}, nil},
		{"null nblocks and next_unlinked", "file", func(d *Dinode, b []byte) { d.NBlocks, d.NextUnlinked = ^uint64(0), NullAGIno }, nil},
		{"next_unlinked set", "file", func(d *Dinode, b []byte) { d.NextUnlinked = 77 }, nil},
		{"null inumber", "file", func(d *Dinode, b []byte) { d.Ino = ^uint64(0) }, nil},
		{"all flags", "file", func(d *Dinode, b []byte) { d.Flags, d.Flags2 = 0x7fff, 0xff }, nil},
		{"legacy timestamps read as bigtime", "file", func(d *Dinode, b []byte) { d.Flags2 &^= DiFlags2Bigtime }, func(b []byte) {
			b[127] |= DiFlags2Bigtime
		}},
		{"bigtime off", "file", func(d *Dinode, b []byte) {
			d.Flags2 &^= DiFlags2Bigtime
			d.Atime, d.Mtime = Timestamp{-1 << 31, 0xffffffff}, Timestamp{1<<31 - 1, 5}
		}, nil},
		{"nrext64 counters", "file", func(d *Dinode, b []byte) { d.Flags2 |= DiFlags2Nrext64; d.ANExtents = 1 << 20 }, nil},
		{"negative size", "file", func(d *Dinode, b []byte) { d.Size = -5 }, nil},
		{"bad CRC", "file", nil, func(b []byte) { b[DinodeCRCOff] ^= 0xff }},
		{"zero CRC", "file", nil, func(b []byte) { copy(b[DinodeCRCOff:], []byte{0, 0, 0, 0}) }},
		{"bad magic", "file", func(d *Dinode, b []byte) { d.Magic = 0 }, nil},
		{"uuid format", "file", func(d *Dinode, b []byte) { d.Format = FmtUUID }, nil},
		{"device number on a file", "file", func(d *Dinode, b []byte) { d.Format = FmtDev }, nil},
		{"device number", "fifo", func(d *Dinode, b []byte) { copy(DataFork(b, d, g), []byte{0, 0x12, 0x34, 0x56}) }, nil},
		{"local regular file", "file", func(d *Dinode, b []byte) {
			d.Format, d.Size = FmtLocal, 12
			copy(DataFork(b, d, g), "local\x00data\n\t?")
		}, nil},
		{"symlink filling the literal area", "link", func(d *Dinode, b []byte) {
			d.Size = int64(lit)
			for i := range DataFork(b, d, g) {
				b[d.coreSize()+i] = byte(i)
			}
		}, nil},
		{"empty local symlink", "link", func(d *Dinode, b []byte) { d.Size = 0 }, nil},
		{"unknown file type", "link", func(d *Dinode, b []byte) { d.Mode = 0xe1ff }, nil},
		{"free inode", "link", func(d *Dinode, b []byte) { d.Mode = 0 }, nil},
	}
	if len(cases) > len(free) {
		t.Fatalf("%d cases, %d free slots", len(cases), len(free))
	}
	w, err := os.OpenFile(im.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := map[uint64][]byte{}
	names := map[uint64]string{}
	for i, c := range cases {
		b := bytes.Clone(bases[c.base])
		if c.mutate != nil {
			d, _ := DecodeDinode(b)
			c.mutate(d, b)
			d.Encode(b)
		}
		if c.raw != nil {
			c.raw(b)
		}
		ino := free[i]
		agno, agino := g.InoAgno(ino), g.InoAgino(ino)
		off := g.AGBDaddr(agno, g.AginoAgbno(agino))<<BBShift + int64(g.AginoOffset(agino)*g.InodeSize)
		if _, err := w.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		want[ino], names[ino] = b, c.name
	}
	db := inoBatchDB(t, im.path, free[:len(cases)], "p")
	for ino, b := range want {
		d, _ := DecodeDinode(b)
		inoCompareDB(t, names[ino], db[ino], d.Fields(g, b).String())
	}
}
