package convert_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/crashcheck"
	"github.com/xfsimg/xfsimg/internal/crashdev"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// staleMarker fills the free space before the engine runs: a file
// showing it after a crash exposes a block's old contents.
var staleMarker = []byte("STALE<xfsimg>!!\n")

// markerImage makes a fresh image with empty files f0..f(files-1) whose
// free blocks all hold staleMarker: through the kernel a file of the
// marker fills the free space, is synced and deleted.
func markerImage(t *testing.T, size int64, files int, mkfs ...string) string {
	t.Helper()
	img := oracle.Mkfs(t, size, mkfs...)
	mnt, umount := mountLoop(t, img)
	for i := 0; i < files; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(mnt, "marker")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat(staleMarker, (1<<20)/len(staleMarker))
	written := int64(0)
	for chunk := buf; len(chunk) >= 4096; {
		n, err := f.Write(chunk)
		written += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			chunk = chunk[:len(chunk)/2]
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	oracle.Run(t, "sync")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	umount()
	// The free blocks hold it now.
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	marked := int64(0)
	for off := 0; off+len(staleMarker) <= len(raw); off += 4096 {
		if bytes.Equal(raw[off:off+len(staleMarker)], staleMarker) {
			marked += 4096
		}
	}
	if marked < written*9/10 {
		t.Fatalf("only %d of the %d bytes written with the marker hold it after the delete", marked, written)
	}
	t.Logf("marker: %d MiB of free space filled, %d MiB hold it after the delete", written>>20, marked>>20)
	return img
}

// engineOp is one step of the engine workload.
type engineOp struct {
	kind string // write truncate punch fsync syncrange sync close
	file int
	off  int64
	n    int64
	data []byte
	// start: flushes recorded before the step; end: after it.
	start, end int
}

// engineWorkload is a seeded mix over three files: sequential 64 KiB
// writes, random unaligned overwrites, small extending appends, a sparse
// extension, truncates down and up, punches, sync_file_range, fsyncs
// and syncs.
func engineWorkload(seed uint64) []engineOp {
	r := rand.New(rand.NewPCG(seed, 0xe7))
	var ops []engineOp
	size := [3]int64{}
	data := func(n int64) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	w := func(f int, off, n int64) {
		ops = append(ops, engineOp{kind: "write", file: f, off: off, n: n, data: data(n)})
		size[f] = max(size[f], off+n)
	}
	do := func(kind string, f int, off, n int64) {
		ops = append(ops, engineOp{kind: kind, file: f, off: off, n: n})
		if kind == "truncate" {
			size[f] = off
		}
	}
	// Sequential.
	for i := int64(0); i < 32; i++ {
		w(0, i<<16, 1<<16)
		if i%8 == 7 {
			do("fsync", 0, 0, 0)
		}
	}
	// Random unaligned overwrites and extensions.
	for i := 0; i < 40; i++ {
		w(1, r.Int64N(2<<20), 1+r.Int64N(50000))
		switch {
		case i%10 == 9:
			do("fsync", 1, 0, 0)
		case i%7 == 3:
			do("syncrange", 1, r.Int64N(1<<20), r.Int64N(1<<20))
		}
	}
	// Small appends, partial blocks.
	for i := 0; i < 60; i++ {
		w(2, size[2], 1000+r.Int64N(6000))
		switch {
		case i%30 == 29:
			do("fsync", 2, 0, 0)
		case i%15 == 14:
			do("syncrange", 2, 0, 0)
		}
	}
	// Truncates and punches over dirty and written data.
	do("truncate", 1, 1300<<10+123, 0)
	w(1, 1400<<10, 30000)
	do("punch", 0, 100<<10, 200<<10+5)
	w(0, 150<<10+7, 10000)
	do("truncate", 2, size[2]+1<<20, 0)
	w(2, size[2]-100<<10, 5000)
	do("fsync", 0, 0, 0)
	do("fsync", 1, 0, 0)
	do("sync", 0, 0, 0)
	// More mixed work: a sparse extension, overwrites, a shrink into
	// written data, a partial punch.
	w(0, size[0]+1<<20, 70000)
	for i := 0; i < 30; i++ {
		f := r.IntN(3)
		w(f, r.Int64N(size[f]+1), 1+r.Int64N(20000))
		if i%6 == 5 {
			do("fsync", f, 0, 0)
		}
	}
	do("truncate", 0, 1<<20+3000, 0)
	do("punch", 2, 3000, 9000)
	do("fsync", 2, 0, 0)
	w(1, size[1]+3, 100000)
	do("syncrange", 1, 0, 0)
	do("close", 0, 0, 0)
	return ops
}

// engineModel is what each file holds after each step, and which bytes a
// crash may not lose.
type engineModel struct {
	ops []engineOp
	// init: the files before the first step, durable (made by the
	// kernel and unmounted).
	init [3][]byte
	// content[i][f]: file f after step i.
	content [][3][]byte
}

// before is the files before step i.
func (m *engineModel) before(i int) [3][]byte {
	if i == 0 {
		return m.init
	}
	return m.content[i-1]
}

func (m *engineModel) apply(ops []engineOp) {
	m.ops = ops
	var cur [3][]byte
	for i := range cur {
		cur[i] = slices.Clone(m.init[i])
	}
	for _, o := range ops {
		f := o.file
		switch o.kind {
		case "write":
			if end := o.off + o.n; end > int64(len(cur[f])) {
				cur[f] = append(cur[f], make([]byte, end-int64(len(cur[f])))...)
			}
			copy(cur[f][o.off:], o.data)
		case "truncate":
			if o.off < int64(len(cur[f])) {
				cur[f] = cur[f][:o.off]
			} else {
				cur[f] = append(cur[f], make([]byte, o.off-int64(len(cur[f])))...)
			}
		case "punch":
			for b := o.off; b < min(o.off+o.n, int64(len(cur[f]))); b++ {
				cur[f][b] = 0
			}
		}
		var snap [3][]byte
		for i := range cur {
			snap[i] = slices.Clone(cur[i])
		}
		m.content = append(m.content, snap)
	}
}

// durable is whether step i makes file f durable.
func (o engineOp) durable(f int) bool {
	return o.kind == "sync" || o.kind == "close" || (o.kind == "fsync" && o.file == f)
}

// verify checks file f as read after a crash after flush k: the bytes
// the last fsync (or sync) complete by flush k made durable, but for
// those a later step started by then may have changed, must be there.
// It returns how many bytes it checked.
func (m *engineModel) verify(f, k int, got []byte) (int64, error) {
	last := -1
	for i, o := range m.ops {
		if o.durable(f) && o.end <= k {
			last = i
		}
	}
	want := m.init[f]
	if last >= 0 {
		want = m.content[last][f]
	}
	known := make([]bool, len(want))
	for i := range known {
		known[i] = true
	}
	taint := func(lo, hi int64) {
		for b := max(lo, 0); b < min(hi, int64(len(known))); b++ {
			known[b] = false
		}
	}
	for i := last + 1; i < len(m.ops); i++ {
		o := m.ops[i]
		if o.start > k || o.file != f {
			continue
		}
		switch o.kind {
		case "write", "punch":
			taint(o.off, o.off+o.n)
		case "truncate":
			taint(min(o.off, int64(len(m.before(i)[f]))), int64(len(known)))
		}
	}
	n := int64(0)
	for b, ok := range known {
		if !ok {
			continue
		}
		n++
		if b >= len(got) {
			return n, fmt.Errorf("f%d: %d bytes, but byte %d was made durable by step %d (%s)", f, len(got), b, last, m.what(last))
		}
		if got[b] != want[b] {
			return n, fmt.Errorf("f%d: byte %d is %#x, want %#x made durable by step %d (%s)", f, b, got[b], want[b], last, m.what(last))
		}
	}
	return n, nil
}

// what names step i for a message; -1 is the image before the session.
func (m *engineModel) what(i int) string {
	if i < 0 {
		return "the image before the session"
	}
	return fmt.Sprintf("%s after flush %d", m.ops[i].kind, m.ops[i].end)
}

// readFiles reads f0..f2 with xfsimg's reader.
func readFiles(t *testing.T, img string) [3][]byte {
	t.Helper()
	fs, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var out [3][]byte
	for i := range out {
		ip, err := fs.Lookup(fmt.Sprintf("/f%d", i), true)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ip.OpenFile()
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, r.Size())
		if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// TestEngineCrashSweep records a writeback session of the write engine
// (buffered writes with delayed allocation, background writeback under a
// small dirty limit, fsync, sync_file_range, truncate and punch) on an
// image whose free blocks all hold a marker, and builds the image a
// power loss would leave after flushes, with subsets of the writes that
// followed and torn log writes. Each must recover through the kernel (a
// mount) and through log.Recover, pass xfs_repair -n and xfsimg check,
// hold every byte an fsync or sync made durable before the crash (unless
// a step started since may have changed it), and show the marker in no
// file: allocated blocks are unwritten until their data is on disk, and
// the size moves only over written data, so a crash exposes no stale
// block.
//
// A seeded sample of flush points by default; XFSIMG_LONG=1 sweeps every
// flush point with more subsets.
func TestEngineCrashSweep(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	t0 := time.Now()
	img := markerImage(t, 300<<20, 3)
	engineCrashSweep(t, img, engineWorkload(0x5eed), [3][]byte{}, time.Since(t0))
}

// engineCrashSweep runs ops on img (whose files hold init), recording
// every device write, and sweeps the crash points as TestEngineCrashSweep
// says.
func engineCrashSweep(t *testing.T, img string, ops []engineOp, init [3][]byte, tPrep time.Duration) {
	long := os.Getenv("XFSIMG_LONG") == "1"
	base, dev, rec := crashcheck.Record(t, img)
	s, err := convert.Open(rec, convert.Options{
		Log:        log.Options{CheckpointBytes: 16 << 10},
		DirtyLimit: 256 << 10,
		Workers:    2,
	})
	if err != nil {
		t.Fatal(err)
	}
	var inos [3]uint64
	for i := range inos {
		if inos[i], err = s.Lookup(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range ops {
		o := &ops[i]
		o.start = rec.Flushes()
		ino := inos[o.file]
		var err error
		switch o.kind {
		case "write":
			err = s.Write(ino, o.off, o.data)
		case "truncate":
			err = s.Truncate(ino, o.off)
		case "punch":
			err = s.Punch(ino, o.off, o.n)
		case "fsync":
			err = s.Fsync(ino)
		case "syncrange":
			err = s.SyncRange(ino, o.off, o.n)
		case "sync":
			err = s.Sync()
		case "close":
			err = s.Close()
		}
		if err != nil {
			t.Fatalf("step %d %s f%d %d %d: %v", i, o.kind, o.file, o.off, o.n, err)
		}
		o.end = rec.Flushes()
	}
	dev.Close()
	st := s.Stats()
	m := engineModel{init: init}
	m.apply(ops)
	nflush := rec.Flushes()
	fsyncs := 0
	for _, o := range ops {
		if o.kind == "fsync" || o.kind == "sync" {
			fsyncs++
		}
	}
	t.Logf("session: %d steps (%d fsyncs/syncs), %d transactions, %d checkpoints, %d flushes, %d writes recorded; marker image in %v",
		len(ops), fsyncs, st.Transactions, st.Checkpoints, nflush, len(rec.Ops())-nflush, tPrep.Round(time.Millisecond))
	// The image the session left, read both ways, is the model's.
	final := m.content[len(m.content)-1]
	for i, b := range readFiles(t, img) {
		if !bytes.Equal(b, final[i]) {
			t.Fatalf("f%d after close: %d bytes, not the model's %d", i, len(b), len(final[i]))
		}
	}

	g := s.Geometry()
	logStart, logEnd := g.LogDaddr()<<9, (g.LogDaddr()+g.LogBBs())<<9
	isLog := func(o crashdev.Op) bool { return o.Off >= logStart && o.Off < logEnd }
	work := filepath.Join(t.TempDir(), "crash.img")
	build := func(k int, keep func(int) bool, tear *crashdev.Tear) {
		t.Helper()
		crashcheck.Build(t, rec, base, work, k, keep, tear)
	}

	rng := rand.New(rand.NewPCG(0xfee1, 9))
	points := sweepPoints(nflush, long, 12, rng)
	t1 := time.Now()
	images, checked := 0, int64(0)
	for _, k := range points {
		win := rec.Window(k)
		variants := crashdev.Variants(win, isLog, variantOptions(long), rng)
		for _, v := range variants {
			for _, by := range []string{crashcheck.Kernel, crashcheck.Xfsimg} {
				what := fmt.Sprintf("crash after flush %d/%d (%d writes pending), %s, recovered by %s", k, nflush, len(win), v.Name, by)
				build(k, v.Keep, v.Tear)
				if v.Tear == nil && by == crashcheck.Kernel {
					// The log as the crash left it, parsed by
					// xfsprogs' own reader.
					oracle.RequireLogprintClean(t, work)
				}
				// The kernel's files are read while it has them
				// mounted, xfsimg's through our reader.
				var files [3][]byte
				crashcheck.Recover(t, work, by, what, func(mnt string) {
					for i := range files {
						b, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)))
						if err != nil {
							t.Fatalf("%s: %v", what, err)
						}
						files[i] = b
					}
				})
				if by != crashcheck.Kernel {
					files = readFiles(t, work)
				}
				for i, b := range files {
					if j := bytes.Index(b, staleMarker); j >= 0 {
						t.Fatalf("%s: f%d (%d bytes) shows stale data (the free-space marker) at byte %d", what, i, len(b), j)
					}
					n, err := m.verify(i, k, b)
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					checked += n
				}
				images++
			}
		}
	}
	t.Logf("swept %d of %d flush points, %d recovered crash images (xfs_logprint parsed every untorn log), each clean, no marker, %d durable bytes checked, in %v",
		len(points), nflush+1, images, checked, time.Since(t1).Round(time.Millisecond))
}

// TestEngineCrashSweepCow is the crash sweep over copy-on-write: f1 shares
// all of f0's first MiB and f2 its middle half (made by the kernel over
// the marker), and a seeded mix of overwrites of all three, a truncate,
// fsyncs and syncs goes through COW reservations, staging extents and
// remaps. Every crash image recovers (the kernel's recovery and xfsimg's
// free the staging extents the crash left) clean, with the durable bytes
// of all three files and no marker.
func TestEngineCrashSweepCow(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	t0 := time.Now()
	img := markerImage(t, 300<<20, 3)
	mnt, umount := mountLoop(t, img)
	p := func(i int) string { return filepath.Join(mnt, fmt.Sprintf("f%d", i)) }
	oracle.Run(t, "xfs_io", "-c", "pwrite -q -S 0x3c -b 1m 0 1m", "-c", "fsync", p(0))
	oracle.Run(t, "xfs_io", "-c", "reflink -q "+p(0), p(1))
	oracle.Run(t, "xfs_io", "-c", fmt.Sprintf("reflink -q %s 256k 0 512k", p(0)), p(2))
	umount()
	init := readFiles(t, img)
	r := rand.New(rand.NewPCG(0xc0, 0x3))
	var ops []engineOp
	for i := 0; i < 90; i++ {
		f := r.IntN(3)
		n := 1 + r.Int64N(40000)
		if i%9 == 0 {
			n = 64<<10 + r.Int64N(200<<10)
		}
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		ops = append(ops, engineOp{kind: "write", file: f, off: r.Int64N(1100 << 10), n: n, data: data})
		switch {
		case i%11 == 10:
			ops = append(ops, engineOp{kind: "fsync", file: f})
		case i%17 == 16:
			ops = append(ops, engineOp{kind: "sync"})
		case i == 45:
			ops = append(ops, engineOp{kind: "truncate", file: 2, off: 300<<10 + 77})
		}
	}
	ops = append(ops, engineOp{kind: "close"})
	engineCrashSweep(t, img, ops, init, time.Since(t0))
}
