package check_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
)

// TestCleanFixtures: every fixture is clean, as xfs_repair -n says too.
func TestCleanFixtures(t *testing.T) {
	for _, name := range images.Names() {
		t.Run(name, func(t *testing.T) {
			img := fixture(t, name)
			r := checktest.Run(t, img)
			requireClean(t, name, r)
			if r.Stats.Inodes == 0 || r.Stats.Directories == 0 || !r.Log.Clean {
				t.Errorf("%s: stats %+v, log %+v: nothing checked?", name, r.Stats, r.Log)
			}
			m, err := images.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			inodes := map[uint64]bool{}
			for _, f := range m.Files {
				inodes[f.Inode] = true
			}
			// Every inode the kernel showed, plus the two realtime inodes
			// mkfs always makes.
			if want := int64(len(inodes) + 2); r.Stats.Inodes != want {
				t.Errorf("%s: %d inodes in use, the manifest has %d (+2 realtime)", name, r.Stats.Inodes, want-2)
			}
			if flagged, out := repairFlags(t, img); flagged {
				t.Errorf("xfs_repair -n flags the fixture:\n%s", repairLines(out))
			}
		})
	}
}

// populate fills a mounted file system through the kernel with every shape
// the checker must accept: directories of every format, files of every
// mapping (inline in nothing, extents, BMBT, sparse, unwritten, past EOF),
// symlinks inline and remote, device nodes, hard links, xattrs, deletions
// that fragment free space, and, when reflink is on, shared extents.
func populate(t *testing.T, mnt string, reflink bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, size int) {
		t.Helper()
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*7 + len(p))
		}
		must(os.WriteFile(filepath.Join(mnt, p), b, 0o644))
	}
	for _, d := range []struct {
		name string
		n    int
	}{{"sf", 3}, {"block", 30}, {"leaf", 300}, {"node", 1500}} {
		must(os.Mkdir(filepath.Join(mnt, d.name), 0o755))
		for i := 0; i < d.n; i++ {
			write(fmt.Sprintf("%s/entry-%04d-%s", d.name, i, strings.Repeat("x", i%40)), i%3*100)
		}
		for i := 0; i < d.n; i += 7 {
			must(os.Remove(filepath.Join(mnt, fmt.Sprintf("%s/entry-%04d-%s", d.name, i, strings.Repeat("x", i%40)))))
		}
	}
	must(os.MkdirAll(filepath.Join(mnt, "deep/a/b/c/d"), 0o755))
	write("deep/a/b/c/d/file", 5000)
	write("large", 3<<20)
	// A file of one-block extents with holes between: its map needs a BMBT.
	f, err := os.OpenFile(filepath.Join(mnt, "frag"), os.O_CREATE|os.O_WRONLY, 0o644)
	must(err)
	blk := make([]byte, 4096)
	for i := 0; i < 600; i++ {
		_, err := f.WriteAt(blk, int64(i)*8192)
		must(err)
	}
	must(f.Sync())
	f.Close()
	// Sparse, unwritten, preallocated past EOF.
	f, err = os.OpenFile(filepath.Join(mnt, "sparse"), os.O_CREATE|os.O_WRONLY, 0o644)
	must(err)
	_, err = f.WriteAt([]byte("start"), 0)
	must(err)
	_, err = f.WriteAt([]byte("far"), 200<<20)
	must(err)
	must(unix.Fallocate(int(f.Fd()), 0, 1<<20, 4<<20))
	must(unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 300<<20, 1<<20))
	f.Close()
	must(os.Symlink("short", filepath.Join(mnt, "link-inline")))
	must(os.Symlink(strings.Repeat("long/", 180), filepath.Join(mnt, "link-remote")))
	// 1020 bytes: two blocks of 1 KiB, one buffer with one header.
	must(os.Symlink(strings.Repeat("x", 1020), filepath.Join(mnt, "link-remote-max")))
	must(os.Link(filepath.Join(mnt, "large"), filepath.Join(mnt, "block/hardlink")))
	must(unix.Mknod(filepath.Join(mnt, "fifo"), unix.S_IFIFO|0o644, 0))
	must(unix.Mknod(filepath.Join(mnt, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	write("xattrs", 10)
	for i := 0; i < 40; i++ {
		must(unix.Setxattr(filepath.Join(mnt, "xattrs"), fmt.Sprintf("user.attr%02d", i), []byte(strings.Repeat("v", 60)), 0))
	}
	must(unix.Setxattr(filepath.Join(mnt, "xattrs"), "user.remote", make([]byte, 9000), 0))
	// Free space fragmentation across AGs.
	must(os.Mkdir(filepath.Join(mnt, "churn"), 0o755))
	for i := 0; i < 400; i++ {
		write(fmt.Sprintf("churn/%d", i), 1+i%5*3000)
	}
	for i := 0; i < 400; i += 2 {
		must(os.Remove(filepath.Join(mnt, fmt.Sprintf("churn/%d", i))))
	}
	if reflink {
		for _, c := range [][2]string{{"large", "large-clone"}, {"frag", "frag-clone"}, {"large", "block/large-clone2"}} {
			out, err := exec.Command("cp", "--reflink=always", filepath.Join(mnt, c[0]), filepath.Join(mnt, c[1])).CombinedOutput()
			if err != nil {
				t.Fatalf("cp --reflink=always %s: %v: %s", c[0], err, out)
			}
		}
		// Overwrite part of a clone: copy-on-write leaves both sharing
		// the rest.
		f, err := os.OpenFile(filepath.Join(mnt, "large-clone"), os.O_WRONLY, 0)
		must(err)
		_, err = f.WriteAt(make([]byte, 64<<10), 1<<20)
		must(err)
		must(f.Sync())
		f.Close()
	}
}

// geometries are the mkfs.xfs options the fresh-image tests use.
var geometries = []struct {
	name    string
	size    int64
	args    []string
	reflink bool
}{
	{"default", 512 << 20, nil, true},
	{"1k-blocks", 512 << 20, []string{"-b", "size=1024"}, true},
	{"agcount-2", 400 << 20, []string{"-d", "agcount=2"}, true},
	{"agcount-7", 700 << 20, []string{"-d", "agcount=7"}, true},
	{"agcount-16", 1200 << 20, []string{"-d", "agcount=16"}, true},
	{"rmapbt", 512 << 20, []string{"-m", "rmapbt=1"}, true},
	{"no-reflink", 512 << 20, []string{"-m", "reflink=0"}, false},
	{"inode-1k-sector-4k", 512 << 20, []string{"-i", "size=1024", "-s", "size=4096"}, true},
	{"dir-8k", 512 << 20, []string{"-n", "size=8192"}, true},
	{"v5-minimal", 512 << 20, []string{"-m", "finobt=0,inobtcount=0,bigtime=0,reflink=0", "-i", "sparse=0"}, false},
}

// TestCleanFresh makes file systems of several geometries, fills them
// through the kernel and checks them: clean, as xfs_repair -n says too,
// both fresh from mkfs and after the kernel's work.
func TestCleanFresh(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, geo := range geometries {
		t.Run(geo.name, func(t *testing.T) {
			img := oracle.Mkfs(t, geo.size, geo.args...)
			requireClean(t, "fresh from mkfs", checktest.Run(t, img))
			mnt, _ := oracle.Mount(t, img)
			populate(t, mnt, geo.reflink)
			oracle.Unmount(t, mnt)
			r := checktest.Run(t, img)
			requireClean(t, "populated", r)
			flagged, out := repairFlags(t, img)
			if flagged {
				t.Errorf("xfs_repair -n flags the populated image:\n%s", repairLines(out))
			}
			if r.Stats.Entries < 1500 || r.Stats.Extents < 600 {
				t.Errorf("stats %+v: the population is missing", r.Stats)
			}
		})
	}
}

// TestReflinkShared: shared extents made by the kernel are clean, and
// dropping the refcount record that makes them shared is found (as
// xfs_repair finds it).
func TestReflinkShared(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img := oracle.Mkfs(t, 512<<20, "-m", "reflink=1", "-d", "agcount=2")
	mnt, _ := oracle.Mount(t, img)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(mnt, "a"), make([]byte, 1<<20), 0o644))
	if out, err := exec.Command("cp", "--reflink=always", filepath.Join(mnt, "a"), filepath.Join(mnt, "b")).CombinedOutput(); err != nil {
		t.Fatalf("cp --reflink: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", "--reflink=always", filepath.Join(mnt, "a"), filepath.Join(mnt, "c")).CombinedOutput(); err != nil {
		t.Fatalf("cp --reflink: %v: %s", err, out)
	}
	oracle.Unmount(t, mnt)
	requireClean(t, "three files sharing one extent", checktest.Run(t, img))
	if flagged, out := repairFlags(t, img); flagged {
		t.Fatalf("xfs_repair -n flags the reflinked image:\n%s", repairLines(out))
	}
	// The extent's refcount record: set its count to 2 (three files share).
	var ag string
	for a := 0; a < 2; a++ {
		if n := dbInt(t, img, "numrecs", fmt.Sprintf("agf %d", a), "addr refcntroot", "p numrecs"); n > 0 {
			ag = fmt.Sprint(a)
		}
	}
	if ag == "" {
		t.Fatal("no refcount record after cp --reflink")
	}
	dbWrite(t, img, "agf "+ag, "addr refcntroot", "write -d recs[1].refcount 2")
	r := checktest.Run(t, img)
	if !r.Has(check.KindRefcMismatch) {
		t.Errorf("refcount 2 for three owners: %s", checktest.Text(r))
	}
	if flagged, _ := repairFlags(t, img); !flagged {
		t.Errorf("xfs_repair -n does not flag the wrong refcount")
	}
	dbWrite(t, img, "agf "+ag, "addr refcntroot", "write -d numrecs 0")
	r = checktest.Run(t, img)
	if !r.Has(check.KindMultiClaimed) {
		t.Errorf("shared blocks without a refcount record: %s", checktest.Text(r))
	}
}

// TestDirtyLog: a file system shut down with changes in the log is found
// dirty (with advice), its counters are only notes; after the kernel
// replays the log it is clean.
func TestDirtyLog(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img := oracle.Mkfs(t, 512<<20)
	mnt, _ := oracle.Mount(t, img)
	for i := 0; i < 50; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprint("f", i)), make([]byte, 10000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Run(t, "xfs_io", "-x", "-c", "fsync", "-c", "shutdown -f", mnt)
	oracle.Unmount(t, mnt)
	r := checktest.Run(t, img)
	if !r.Has(check.KindLogDirty) || r.Log.Clean {
		t.Fatalf("shut-down file system: %s", checktest.Text(r))
	}
	for _, f := range r.Findings {
		switch f.Kind {
		case check.KindLogDirty:
			if !strings.Contains(f.Message, "xfsimg recover") {
				t.Errorf("no advice: %s", f)
			}
		case check.KindSBIcount, check.KindSBIfree, check.KindSBFdblocks:
			if f.Severity != check.Info {
				t.Errorf("counter with a dirty log is a problem: %s", f)
			}
		}
	}
	t.Logf("dirty: %s", checktest.Text(r))
	mnt, _ = oracle.Mount(t, img)
	oracle.Unmount(t, mnt)
	requireClean(t, "after log recovery", checktest.Run(t, img))
}
