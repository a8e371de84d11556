package refcount_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/internal/journaltest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/refcount"
)

// wfs is an image opened for writing: the device and the journal on it.
type wfs struct {
	t   testing.TB
	img string
	dev *ondisk.Device
	j   *log.Journal
	sb  *ondisk.Superblock
	g   *ondisk.Geometry
}

func openImage(t testing.TB, img string) *wfs {
	t.Helper()
	dev, f, j := journaltest.Open(t, img, log.Options{})
	return &wfs{t: t, img: img, dev: dev, j: j, sb: f.SB, g: f.Geo}
}

// close ends the journal cleanly so that the tools can look at the image.
func (w *wfs) close() {
	w.t.Helper()
	journaltest.Close(w.t, w.j, w.dev)
}

// txn is one transaction with its allocator and the refcount writers it
// opened, as a caller in convert would hold them.
type txn struct {
	w   *wfs
	tx  *log.Tx
	al  *agf.Allocator
	rcs map[uint32]*refcount.Writer
}

func (w *wfs) begin() *txn {
	w.t.Helper()
	tx, err := w.j.Begin(log.Reservation{Blocks: 256})
	if err != nil {
		w.t.Fatal(err)
	}
	return &txn{w: w, tx: tx, al: agf.NewAllocator(tx, w.g), rcs: map[uint32]*refcount.Writer{}}
}

func (x *txn) rc(agno uint32) *refcount.Writer {
	x.w.t.Helper()
	if r := x.rcs[agno]; r != nil {
		return r
	}
	r, err := refcount.Open(x.tx, x.w.g, x.al, agno)
	if err != nil {
		x.w.t.Fatal(err)
	}
	x.rcs[agno] = r
	return r
}

func (x *txn) commit() {
	x.w.t.Helper()
	if err := x.tx.Commit(); err != nil {
		x.w.t.Fatal(err)
	}
}

// do runs fn in one transaction and commits it; an error fails the test.
func (w *wfs) do(fn func(x *txn) error) {
	w.t.Helper()
	x := w.begin()
	if err := fn(x); err != nil {
		x.tx.Cancel()
		w.t.Fatal(err)
	}
	x.commit()
}

// unmapShared unmaps file blocks [off, off+n) of inode ino and drops the
// reference count of the blocks instead of freeing them; blocks whose
// count reaches 0 are freed. This is what punching a reflinked file does
// (xfs_bmap_del_extent_real for a reflink inode: a refcount decrease in
// place of the free).
func (x *txn) unmapShared(ino, off, n uint64) error {
	return x.unmapRanges(ino, [][2]uint64{{off, n}})
}

// unmapRanges is unmapShared for several ranges of one file in the one
// transaction.
func (x *txn) unmapRanges(ino uint64, ranges [][2]uint64) error {
	g := x.w.g
	f, err := bmbt.OpenFork(x.tx, g, x.al, ino, bmbt.DataFork)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		pieces, err := f.Remove(r[0], r[1])
		if err != nil {
			return err
		}
		for _, p := range pieces {
			agno, agbno := g.FSBAgno(p.StartBlock), g.FSBAgbno(p.StartBlock)
			freed, err := x.rc(agno).Adjust(agbno, uint32(p.BlockCount), -1)
			if err != nil {
				return err
			}
			for _, e := range freed {
				if err := x.al.Free(g.FSB(agno, e.Start), e.Len); err != nil {
					return err
				}
			}
		}
	}
	return f.Log()
}

// mapShared maps blocks [fsb, fsb+n) at file block off of inode ino (in
// a hole) and raises their reference count, as a reflink remap does.
func (x *txn) mapShared(ino, off, fsb, n uint64) error {
	g := x.w.g
	f, err := bmbt.OpenFork(x.tx, g, x.al, ino, bmbt.DataFork)
	if err != nil {
		return err
	}
	if err := f.Insert(ondisk.Extent{StartOff: off, StartBlock: fsb, BlockCount: n}); err != nil {
		return err
	}
	if _, err := x.rc(g.FSBAgno(fsb)).Adjust(g.FSBAgbno(fsb), uint32(n), +1); err != nil {
		return err
	}
	return f.Log()
}

// extents is inode ino's data fork as the committed image has it.
func (w *wfs) extents(ino uint64) []ondisk.Extent {
	w.t.Helper()
	x := w.begin()
	defer x.tx.Cancel()
	f, err := bmbt.OpenFork(x.tx, w.g, x.al, ino, bmbt.DataFork)
	if err != nil {
		w.t.Fatal(err)
	}
	e, err := f.Extents()
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

var dbRec = regexp.MustCompile(`\d+:\[(\d+),(\d+),(\d+),(\d+)\]`)

// dbRefcounts is every record of AG agno's refcount btree as xfs_db's
// btdump prints it.
func dbRefcounts(t testing.TB, img string, agno uint32) []ondisk.RefcountRec {
	t.Helper()
	out := oracle.DB(t, img, fmt.Sprintf("agf %d", agno), "addr refcntroot", "btdump")
	var recs []ondisk.RefcountRec
	for _, m := range dbRec.FindAllStringSubmatch(out, -1) {
		var v [4]uint32
		for i := range v {
			n, err := strconv.ParseUint(m[i+1], 10, 32)
			if err != nil {
				t.Fatalf("btdump record %q", m[0])
			}
			v[i] = uint32(n)
		}
		if v[3] != 0 {
			v[0] |= ondisk.RefcountCowFlag
		}
		recs = append(recs, ondisk.RefcountRec{StartBlock: v[0], BlockCount: v[1], RefCount: v[2]})
	}
	return recs
}

// dbAGF is AG agno's AGF fields as xfs_db prints them.
func dbAGF(t testing.TB, img string, agno uint32) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, kv := range oracle.ParseFields(oracle.DB(t, img, fmt.Sprintf("agf %d", agno), "p")) {
		if n, err := strconv.ParseUint(kv.Value, 10, 64); err == nil {
			m[kv.Name] = n
		}
	}
	return m
}

// kernelSetup makes a 300 MiB image with mkfs's defaults (reflink=1),
// mounts it, runs script (shell commands, $M is the mount point),
// records the inode numbers and contents of the named files, and
// unmounts.
func kernelSetup(t testing.TB, script string, files ...string) (img string, inos map[string]uint64, data map[string][]byte) {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img = oracle.Mkfs(t, 300<<20)
	dir, _ := oracle.Mount(t, img)
	cmd := exec.Command("sh", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "M="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("setup script: %v\n%s", err, out)
	}
	inos, data = map[string]uint64{}, map[string][]byte{}
	for _, f := range files {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		inos[f] = st.Sys().(*syscall.Stat_t).Ino
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[f] = b
	}
	oracle.Unmount(t, dir)
	return img, inos, data
}

// copyImage copies a (sparse) image so that each case starts from the
// same state.
func copyImage(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "case.img")
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// kernelRead mounts img and returns the contents of the named files.
func kernelRead(t testing.TB, img string, files ...string) map[string][]byte {
	t.Helper()
	dir, _ := oracle.Mount(t, img)
	out := map[string][]byte{}
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("kernel read %s: %v\n%s", f, err, oracle.DmesgTail(20))
		}
		out[f] = b
	}
	oracle.Unmount(t, dir)
	return out
}

func sameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: %d bytes differ from the expected %d bytes first at offset %d", what, len(got), len(want), i)
	}
}

func recsString(recs []ondisk.RefcountRec) string {
	var b strings.Builder
	for _, r := range recs {
		c := ""
		if r.Cow() {
			c = "cow:"
		}
		fmt.Fprintf(&b, "[%s%d,+%d]=%d ", c, r.AGBlock(), r.BlockCount, r.RefCount)
	}
	return b.String()
}

// crash ends the session as a crash would (see journaltest.Crash).
func (w *wfs) crash() {
	w.t.Helper()
	journaltest.Crash(w.t, w.j, w.dev)
}
