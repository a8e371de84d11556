package convert_test

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// span is a mapped byte range and its state, for comparing mappings whose
// block positions may differ.
type span struct {
	Off, End  int64
	Unwritten bool
}

func (s span) String() string {
	st := "w"
	if s.Unwritten {
		st = "u"
	}
	return fmt.Sprintf("[%d,%d)%s", s.Off, s.End, st)
}

// normalize sorts spans and joins neighbours in the same state.
func normalize(in []span) []span {
	slices.SortFunc(in, func(a, b span) int { return int(a.Off - b.Off) })
	var out []span
	for _, s := range in {
		if n := len(out); n > 0 && out[n-1].End == s.Off && out[n-1].Unwritten == s.Unwritten {
			out[n-1].End = s.End
			continue
		}
		out = append(out, s)
	}
	return out
}

var fiemapLine = regexp.MustCompile(`^\s*\d+: \[(\d+)\.\.(\d+)\]:\s+(hole|\d+\.\.\d+)\s+(\d+)(?:\s+(0x[0-9a-f]+))?`)

// kernelMap reads a file's mapping through the kernel (xfs_io fiemap -v).
func kernelMap(t *testing.T, path string) []span {
	t.Helper()
	out := oracle.Run(t, "xfs_io", "-r", "-c", "fiemap -v", path)
	var spans []span
	for _, l := range strings.Split(out, "\n") {
		m := fiemapLine.FindStringSubmatch(l)
		if m == nil || m[3] == "hole" {
			continue
		}
		a, _ := strconv.ParseInt(m[1], 10, 64)
		b, _ := strconv.ParseInt(m[2], 10, 64)
		flags, _ := strconv.ParseUint(strings.TrimPrefix(m[5], "0x"), 16, 64)
		spans = append(spans, span{Off: a * 512, End: (b + 1) * 512, Unwritten: flags&0x800 != 0})
	}
	return normalize(spans)
}

// ourMap is a file's mapping as xfsimg's reader sees it.
func ourMap(t *testing.T, f *xfs.FS, ino uint64) []span {
	t.Helper()
	ip, err := f.Inode(ino)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := ip.Extents(bmbt.DataFork)
	if err != nil {
		t.Fatal(err)
	}
	bs := int64(f.Geo.BlockSize)
	var spans []span
	for _, e := range exts {
		spans = append(spans, span{Off: int64(e.StartOff) * bs, End: int64(e.End()) * bs, Unwritten: e.Unwritten})
	}
	return normalize(spans)
}

// geometry is one kind of image the kernel comparison runs on.
type geometry struct {
	name  string
	size  int64
	mkfs  []string
	files int
	// window: file bytes the random operations work in, per file.
	window int64
	// fragment: punch every other block of a large file through the
	// kernel first, so that free space is split into thousands of
	// one-block extents (3-level free-space btrees at 1 KiB blocks).
	fragment int64
	// stripes: one-block preallocations at every other block of file 0,
	// beyond its window, so that its BMBT grows to 3 levels.
	stripes int
}

// mountLoop mounts img and returns the mount point and a function that
// unmounts and detaches it at once, so that the image can be written
// again (xfsimg refuses an image a loop device still uses); cleanup does
// it if the test does not.
func mountLoop(t *testing.T, img string, opts ...string) (string, func()) {
	t.Helper()
	dir, _ := oracle.Mount(t, img, opts...)
	return dir, func() {
		if oracle.IsMounted(dir) {
			oracle.Unmount(t, dir)
		}
	}
}

// kernelFixture makes an image with files f0..fN written by the kernel,
// each with some data and an unaligned size.
func kernelFixture(t *testing.T, g geometry) string {
	t.Helper()
	img := oracle.Mkfs(t, g.size, g.mkfs...)
	mnt, umount := mountLoop(t, img)
	for i := 0; i < g.files; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("f%d", i))
		oracle.Run(t, "xfs_io", "-f", "-c", fmt.Sprintf("pwrite -q -S 0x%x 0 300k", 0x41+i),
			"-c", fmt.Sprintf("pwrite -q -S 0x%x 5m 65659", 0x61+i), "-c", "fsync", p)
	}
	if g.fragment > 0 {
		p := filepath.Join(mnt, "frag")
		var sc strings.Builder
		fmt.Fprintf(&sc, "open -f %s\nfalloc 0 %d\n", p, g.fragment)
		bs := int64(1024)
		for _, a := range g.mkfs {
			if strings.HasPrefix(a, "size=") && g.mkfs[0] == "-b" {
				bs, _ = strconv.ParseInt(strings.TrimPrefix(a, "size="), 10, 64)
			}
		}
		for off := int64(0); off < g.fragment; off += 2 * bs {
			fmt.Fprintf(&sc, "fpunch %d %d\n", off, bs)
		}
		runXfsIO(t, sc.String())
	}
	umount()
	return img
}

// runXfsIO feeds a script to xfs_io and fails on any complaint.
func runXfsIO(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("xfs_io")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "[") || strings.HasPrefix(l, " ") {
			continue // the file table "file N" prints
		}
		bad = append(bad, l)
	}
	if err != nil || len(bad) > 0 {
		t.Fatalf("xfs_io: %v: %s", err, strings.Join(bad, "; "))
	}
}

// genOps makes a seeded sequence of commands over the files.
func genOps(g geometry, bs int64, n int, seed uint64) []fileOp {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var ops []fileOp
	for i := 0; i < g.stripes && len(ops) < n; i++ {
		ops = append(ops, fileOp{0, fmt.Sprintf("falloc -k %d %d", g.window+int64(2*i)*bs, bs)})
	}
	length := func() int64 {
		switch x := r.IntN(100); {
		case x < 50:
			return (1 + r.Int64N(8)) * bs
		case x < 85:
			return (1 + r.Int64N(256)) * bs
		}
		return 1 + r.Int64N(g.window/4)
	}
	for len(ops) < n {
		f := r.IntN(g.files)
		off := r.Int64N(g.window)
		if r.IntN(10) < 7 {
			off &^= bs - 1
		}
		l := length()
		if r.IntN(10) < 7 {
			l = (l + bs - 1) &^ (bs - 1)
		}
		l = min(l, g.window-off)
		if l <= 0 {
			continue
		}
		var c string
		switch x := r.IntN(100); {
		case x < 25:
			c = fmt.Sprintf("falloc %d %d", off, l)
		case x < 40:
			c = fmt.Sprintf("falloc -k %d %d", off, l)
		case x < 60:
			c = fmt.Sprintf("falloc -k %d %d", off&^(bs-1), (1+r.Int64N(3))*bs)
		case x < 94:
			c = fmt.Sprintf("fpunch %d %d", off, l)
		default:
			if f == 0 {
				continue // file 0 keeps its stripes
			}
			c = fmt.Sprintf("truncate %d", r.Int64N(g.window))
		}
		ops = append(ops, fileOp{f, c})
	}
	return ops
}

type fileOp struct {
	file int
	cmd  string
}

// TestAgainstKernel runs the same seeded sequence of falloc, fpunch and
// truncate over several files through xfsimg and through the kernel (xfs_io
// on a loop mount of a copy), and holds them to each other every 1,000
// operations: the same mapped ranges and unwritten flags (block positions
// may differ), the same sizes; our image passes xfs_repair -n each time;
// at the end the contents and the preallocation flags agree, and the
// kernel reading our image sees our mapping. On a 1 KiB-block image whose
// free space the kernel fragmented (3-level free-space btrees) one file's
// BMBT reaches 3 levels and allocations spill into other AGs.
//
// Short seeded runs by default; XFSIMG_LONG=1 runs 10,000 operations per
// geometry.
func TestAgainstKernel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	long := os.Getenv("XFSIMG_LONG") == "1"
	geos := []geometry{
		{name: "1k-frag", size: 400 << 20, mkfs: []string{"-b", "size=1024", "-d", "agcount=4"},
			files: 4, window: 40 << 20, fragment: 30 << 20, stripes: 500},
		{name: "4k", size: 1 << 30, files: 4, window: 160 << 20, stripes: 3000},
	}
	for _, g := range geos {
		t.Run(g.name, func(t *testing.T) {
			n := 1500
			if long {
				n = 10000
			}
			if !long && g.name == "4k" {
				n, g.stripes = 1000, 0
			}
			runAgainstKernel(t, g, n)
		})
	}
}

func runAgainstKernel(t *testing.T, g geometry, n int) {
	img := kernelFixture(t, g)
	kimg := filepath.Join(t.TempDir(), "kernel.img")
	oracle.Run(t, "cp", "--sparse=always", img, kimg)

	dbOut := oracle.DB(t, img, "sb 0", "p blocksize")
	bs, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(dbOut, "blocksize =")), 10, 64)
	if g.fragment > 0 {
		levels := 0
		for ag := 0; ag < 4; ag++ {
			out := oracle.DB(t, img, fmt.Sprintf("agf %d", ag), "p bnolevel")
			l, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out, "bnolevel =")))
			levels = max(levels, l)
		}
		if levels < 3 {
			t.Fatalf("free-space btrees only %d levels deep after fragmenting", levels)
		}
	}
	ops := genOps(g, bs, n, uint64(len(g.name))*7919)
	names := make([]string, g.files)
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
	}
	var ourTime, kernelTime time.Duration
	var inos []uint64
	for batch := 0; batch*1000 < len(ops); batch++ {
		part := ops[batch*1000 : min(len(ops), (batch+1)*1000)]

		// Ours.
		start := time.Now()
		dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := convert.Open(dev, convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		inos = inos[:0]
		for _, name := range names {
			ino, err := s.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			inos = append(inos, ino)
		}
		for i, op := range part {
			c, err := convert.ParseCommand(op.cmd, 0, bs, 512)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Run(inos[op.file], c); err != nil {
				t.Fatalf("op %d on %s: %v", batch*1000+i, names[op.file], err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		dev.Close()
		ourTime += time.Since(start)
		oracle.RequireRepairClean(t, img)
		checktest.RequireClean(t, img)

		// The kernel's.
		start = time.Now()
		mnt, umount := mountLoop(t, kimg)
		var sc strings.Builder
		for _, name := range names {
			fmt.Fprintf(&sc, "open %s\n", filepath.Join(mnt, name))
		}
		cur := -1
		for _, op := range part {
			if op.file != cur {
				fmt.Fprintf(&sc, "file %d\n", op.file)
				cur = op.file
			}
			sc.WriteString(op.cmd + "\n")
		}
		runXfsIO(t, sc.String())
		kernelTime += time.Since(start)
		f, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range names {
			km := kernelMap(t, filepath.Join(mnt, name))
			om := ourMap(t, f, inos[i])
			if !slices.Equal(km, om) {
				t.Fatalf("after %d ops, %s: mapping differs\n kernel %v\n ours   %v", batch*1000+len(part), name, km, om)
			}
			fi, err := os.Stat(filepath.Join(mnt, name))
			if err != nil {
				t.Fatal(err)
			}
			ip, _ := f.Inode(inos[i])
			if fi.Size() != ip.Core.Size {
				t.Fatalf("after %d ops, %s: size %d, kernel %d", batch*1000+len(part), name, ip.Core.Size, fi.Size())
			}
		}
		f.Close()
		start = time.Now()
		umount()
		kernelTime += time.Since(start)
		t.Logf("ops %d..%d: same mappings and sizes; %d transactions (%d follow-ups), %d checkpoints, %d KiB of log",
			batch*1000, batch*1000+len(part), st.Transactions, st.FollowUps, st.Checkpoints, st.LogBytes>>10)
	}
	t.Logf("%d ops: xfsimg %v (repair checks excluded), kernel %v (mounts included)", len(ops), ourTime, kernelTime)

	// Contents, flags, BMBT height and AG spill, through both readers.
	ours, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	theirs, err := xfs.Open(kimg, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	maxHeight, spilled := 0, 0
	for i, name := range names {
		a, err := ours.Lookup(name, true)
		if err != nil {
			t.Fatal(err)
		}
		b, err := theirs.Lookup(name, true)
		if err != nil {
			t.Fatal(err)
		}
		if ha, hb := contentHash(t, a), contentHash(t, b); ha != hb {
			t.Errorf("%s: contents differ from the kernel's", name)
		}
		if pa, pb := a.Core.Flags&ondisk.DiFlagPrealloc, b.Core.Flags&ondisk.DiFlagPrealloc; pa != pb {
			t.Errorf("%s: prealloc flag %v, kernel %v", name, pa != 0, pb != 0)
		}
		if a.Core.Format == ondisk.FmtBtree {
			r, _ := ondisk.DecodeBmdr(a.DataFork())
			maxHeight = max(maxHeight, int(r.Level)+1)
		}
		exts, _ := a.Extents(bmbt.DataFork)
		for _, e := range exts {
			if ours.Geo.FSBAgno(e.StartBlock) != ours.Geo.InoAgno(inos[i]) {
				spilled++
			}
		}
		t.Logf("%s: %d extents (kernel %d), size %d", name, a.Core.NExtents, b.Core.NExtents, a.Core.Size)
	}
	if g.stripes >= 500 && maxHeight < 3 {
		t.Errorf("largest BMBT is %d levels, want 3", maxHeight)
	}
	if len(ops) >= 1500 && spilled == 0 {
		t.Error("no extent left its inode's AG")
	}
	t.Logf("max BMBT height %d, %d extents outside their inode's AG", maxHeight, spilled)

	// The kernel reading our image sees what our reader sees.
	mnt, umount := mountLoop(t, img, "ro")
	for i, name := range names {
		if km, om := kernelMap(t, filepath.Join(mnt, name)), ourMap(t, ours, inos[i]); !slices.Equal(km, om) {
			t.Errorf("%s: the kernel maps our image as %v, our reader %v", name, km, om)
		}
	}
	umount()
	ours.Close()

	// Truncating everything to nothing takes each BMBT down to the
	// extents format and gives every block back.
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := convert.Open(dev, convert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ino := range inos {
		if err := s.Truncate(ino, 0); err != nil {
			t.Fatal(err)
		}
		d, err := s.Inode(ino)
		if err != nil {
			t.Fatal(err)
		}
		if d.Format != ondisk.FmtExtents || d.NExtents != 0 || d.NBlocks != 0 {
			t.Errorf("inode %d after truncate 0: format %d, %d extents, %d blocks", ino, d.Format, d.NExtents, d.NBlocks)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	oracle.RequireRepairClean(t, img)
	checktest.RequireClean(t, img)
}

func contentHash(t *testing.T, ip *xfs.Inode) [32]byte {
	t.Helper()
	r, err := ip.OpenFile()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := r.WriteTo(h); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
