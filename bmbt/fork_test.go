package bmbt_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/journaltest"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// fakeAlloc hands out blocks from a free-block bitmap built from the
// image's own free-space btrees. It does not touch the AG headers: the
// bitmap is the model's view of free space, and the image's free-space
// accounting is not what these tests check.
type fakeAlloc struct {
	g    *ondisk.Geometry
	free map[uint64]bool // fsb -> free
	// byAG lists each AG's blocks for first-fit searches.
	agFree [][]bool
	allocs int
	frees  int
	// failing makes every allocation fail with ENOSPC, for error paths.
	failing bool
}

func newFakeAlloc(t *testing.T, f *xfs.FS) *fakeAlloc {
	t.Helper()
	a := &fakeAlloc{g: f.Geo, free: map[uint64]bool{}}
	for agno := uint32(0); agno < f.Geo.AGCount; agno++ {
		ag, err := f.FreeSpace(agno)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := ag.FreeExtents(ag.BnoTree())
		if err != nil {
			t.Fatal(err)
		}
		m := make([]bool, f.Geo.AGSize(agno))
		for _, r := range recs {
			for b := r.StartBlock; b < r.StartBlock+r.BlockCount; b++ {
				m[b] = true
				a.free[f.Geo.FSB(agno, b)] = true
			}
		}
		a.agFree = append(a.agFree, m)
	}
	return a
}

func (a *fakeAlloc) take(fsb uint64) {
	delete(a.free, fsb)
	a.agFree[a.g.FSBAgno(fsb)][a.g.FSBAgbno(fsb)] = false
}

// Alloc finds the first run of free blocks at or after the target's AG
// block, in the target's AG first, of up to MaxLen blocks.
func (a *fakeAlloc) Alloc(req agf.Request) (uint64, uint32, error) {
	if a.failing {
		return 0, 0, fmt.Errorf("fake: %w", ondisk.ErrNoSpace)
	}
	if req.Exact {
		agno, b := a.g.FSBAgno(req.Target), a.g.FSBAgbno(req.Target)
		n := uint32(0)
		for n < req.MaxLen && b+n < a.g.AGSize(agno) && a.agFree[agno][b+n] {
			n++
		}
		if n < max(req.MinLen, 1) {
			return 0, 0, nil
		}
		for k := uint32(0); k < n; k++ {
			a.take(req.Target + uint64(k))
		}
		a.allocs++
		return req.Target, n, nil
	}
	start := a.g.FSBAgno(req.Target)
	if start >= a.g.AGCount {
		start = 0
	}
	for i := uint32(0); i < a.g.AGCount; i++ {
		agno := (start + i) % a.g.AGCount
		from := uint32(0)
		if agno == start {
			from = a.g.FSBAgbno(req.Target)
		}
		size := a.g.AGSize(agno)
		for pass := 0; pass < 2; pass++ {
			lo, hi := from, size
			if pass == 1 {
				lo, hi = 0, from
			}
			for b := lo; b < hi; b++ {
				if !a.agFree[agno][b] {
					continue
				}
				n := uint32(1)
				for n < req.MaxLen && b+n < size && a.agFree[agno][b+n] {
					n++
				}
				if n < req.MinLen {
					b += n
					continue
				}
				fsb := a.g.FSB(agno, b)
				for k := uint32(0); k < n; k++ {
					a.take(fsb + uint64(k))
				}
				a.allocs++
				return fsb, n, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("fake: %w", ondisk.ErrNoSpace)
}

func (a *fakeAlloc) Free(fsb uint64, n uint32) error {
	for k := uint64(0); k < uint64(n); k++ {
		b := fsb + k
		if a.free[b] {
			return fmt.Errorf("fake: double free of block %d", b)
		}
		a.free[b] = true
		a.agFree[a.g.FSBAgno(b)][a.g.FSBAgbno(b)] = true
	}
	a.frees++
	return nil
}

// model is the expected mapping of one file: its records, kept by a plain
// slice implementation of the kernel's merge rules, written apart from the
// fork's own code.
type model struct {
	recs []ondisk.Extent
}

func (m *model) blocks() uint64 {
	var n uint64
	for _, e := range m.recs {
		n += e.BlockCount
	}
	return n
}

func canJoin(a, b ondisk.Extent) bool {
	return a.StartOff+a.BlockCount == b.StartOff && a.StartBlock+a.BlockCount == b.StartBlock &&
		a.Unwritten == b.Unwritten && a.BlockCount+b.BlockCount <= ondisk.MaxExtLen
}

// mergeKinds counts the inserts by which neighbours they joined.
var mergeKinds = map[[2]bool]int{}

// insert puts e into a hole: joins the left neighbour if it can, and the
// right one if the whole still fits.
func (m *model) insert(e ondisk.Extent) {
	i := sort.Search(len(m.recs), func(i int) bool { return m.recs[i].StartOff > e.StartOff })
	left := i > 0 && canJoin(m.recs[i-1], e)
	right := i < len(m.recs) && canJoin(e, m.recs[i])
	if left && right && m.recs[i-1].BlockCount+e.BlockCount+m.recs[i].BlockCount > ondisk.MaxExtLen {
		right = false
	}
	mergeKinds[[2]bool{left, right}]++
	switch {
	case left && right:
		m.recs[i-1].BlockCount += e.BlockCount + m.recs[i].BlockCount
		m.recs = slices.Delete(m.recs, i, i+1)
	case left:
		m.recs[i-1].BlockCount += e.BlockCount
	case right:
		m.recs[i].StartOff, m.recs[i].StartBlock = e.StartOff, e.StartBlock
		m.recs[i].BlockCount += e.BlockCount
	default:
		m.recs = slices.Insert(m.recs, i, e)
	}
}

// remove unmaps [off, end) and returns the pieces.
func (m *model) remove(off, end uint64) []ondisk.Extent {
	var out, keep []ondisk.Extent
	for _, e := range m.recs {
		if e.StartOff+e.BlockCount <= off || e.StartOff >= end {
			keep = append(keep, e)
			continue
		}
		a, b := max(e.StartOff, off), min(e.StartOff+e.BlockCount, end)
		if a > e.StartOff {
			keep = append(keep, ondisk.Extent{StartOff: e.StartOff, StartBlock: e.StartBlock, BlockCount: a - e.StartOff, Unwritten: e.Unwritten})
		}
		out = append(out, ondisk.Extent{StartOff: a, StartBlock: e.StartBlock + a - e.StartOff, BlockCount: b - a, Unwritten: e.Unwritten})
		if b < e.StartOff+e.BlockCount {
			keep = append(keep, ondisk.Extent{StartOff: b, StartBlock: e.StartBlock + b - e.StartOff, BlockCount: e.StartOff + e.BlockCount - b, Unwritten: e.Unwritten})
		}
	}
	m.recs = keep
	return out
}

// setState flips the mapped blocks of [off, end), one record at a time in
// file order, each flipped piece joining its neighbours as an insert does.
func (m *model) setState(off, end uint64, unwritten bool) {
	pos := off
	for pos < end {
		i := sort.Search(len(m.recs), func(i int) bool { return m.recs[i].StartOff+m.recs[i].BlockCount > pos })
		if i == len(m.recs) || m.recs[i].StartOff >= end {
			return
		}
		e := m.recs[i]
		a := max(pos, e.StartOff)
		b := min(e.StartOff+e.BlockCount, end)
		if e.Unwritten != unwritten {
			piece := m.remove(a, b)[0]
			piece.Unwritten = unwritten
			m.insert(piece)
		}
		pos = b
	}
}

// harness runs transactions on files of a fixture image.
type harness struct {
	t     *testing.T
	img   string
	dev   *ondisk.Device
	fs    *xfs.FS
	j     *log.Journal
	al    *fakeAlloc
	files map[uint64]*model
	seqs  map[uint64]uint64
}

func newHarness(t *testing.T, fixture string, ninodes int) *harness {
	t.Helper()
	img := images.Extract(t, fixture)
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, Buffered: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	fs, j := journaltest.OpenStorage(t, dev, log.Options{})
	fs.SetMetaReader(j)
	h := &harness{t: t, img: img, dev: dev, fs: fs, j: j, al: newFakeAlloc(t, fs), files: map[uint64]*model{}, seqs: map[uint64]uint64{}}
	m, err := images.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if f.Type != "file" || len(h.files) == ninodes {
			continue
		}
		ip, err := fs.Inode(f.Inode)
		if err != nil {
			t.Fatal(err)
		}
		if ip.Core.ForkOff != 24 || ip.Core.Format != ondisk.FmtExtents {
			continue
		}
		exts, err := ip.Extents(bmbt.DataFork)
		if err != nil {
			t.Fatal(err)
		}
		h.files[f.Inode] = &model{recs: exts}
	}
	if len(h.files) != ninodes {
		t.Fatalf("found %d files with forkoff 24, want %d", len(h.files), ninodes)
	}
	return h
}

// tx runs fn on inode ino's data fork in one transaction and commits it.
func (h *harness) tx(ino uint64, fn func(f *bmbt.IFork) error) error {
	h.t.Helper()
	tx, err := h.j.Begin(log.Reservation{Blocks: 64})
	if err != nil {
		h.t.Fatal(err)
	}
	f, err := bmbt.OpenFork(tx, h.fs.Geo, h.al, ino, bmbt.DataFork)
	if err != nil {
		tx.Cancel()
		h.t.Fatal(err)
	}
	f.SetSeq(h.seqs[ino])
	if err := fn(f); err != nil {
		tx.Cancel()
		return err
	}
	if err := f.Log(); err != nil {
		tx.Cancel()
		h.t.Fatal(err)
	}
	h.seqs[ino] = f.Seq()
	if err := tx.Commit(); err != nil {
		h.t.Fatal(err)
	}
	return nil
}

// bmbtBlocks walks the fork's BMBT through the committed state and checks
// every block: verifier, level, parent keys, sibling chains; it returns the
// blocks.
func (h *harness) bmbtBlocks(ino uint64) (height int, blocks []uint64) {
	t := h.t
	t.Helper()
	ip, err := h.fs.Inode(ino)
	if err != nil {
		t.Fatal(err)
	}
	if ip.Core.Format != ondisk.FmtBtree {
		return 0, nil
	}
	g := h.fs.Geo
	root, err := ondisk.DecodeBmdr(ip.DataFork())
	if err != nil {
		t.Fatal(err)
	}
	height = int(root.Level) + 1
	prev := make([]uint64, height) // last block seen at each level
	for i := range prev {
		prev[i] = ondisk.NullFSBlock
	}
	var walk func(ptr uint64, level int, key uint64)
	walk = func(ptr uint64, level int, key uint64) {
		daddr := g.FSBDaddr(ptr)
		buf, err := h.fs.ReadMeta(daddr, g.BlockSize)
		if err != nil {
			t.Fatal(err)
		}
		if err := bmbt.VerifyBlock(g, ino, daddr, buf); err != nil {
			t.Fatalf("inode %d block %d: %v", ino, ptr, err)
		}
		hd, _ := ondisk.DecodeBtreeBlock(buf, true)
		if int(hd.Level) != level || hd.NumRecs == 0 {
			t.Fatalf("inode %d block %d: level %d numrecs %d, want level %d", ino, ptr, hd.Level, hd.NumRecs, level)
		}
		if hd.LeftSib != prev[level] {
			t.Fatalf("inode %d block %d: leftsib %d, want %d", ino, ptr, hd.LeftSib, prev[level])
		}
		prev[level] = ptr
		blocks = append(blocks, ptr)
		var first uint64
		if level == 0 {
			first = ondisk.DecodeExtent(buf[ondisk.LongBlockHeaderSize:]).StartOff
		} else {
			first = binary.BigEndian.Uint64(buf[ondisk.LongBlockHeaderSize:])
		}
		if first != key {
			t.Fatalf("inode %d block %d: first key %d, parent says %d", ino, ptr, first, key)
		}
		if level == 0 {
			return
		}
		for i := 0; i < int(hd.NumRecs); i++ {
			k := binary.BigEndian.Uint64(buf[ondisk.LongBlockHeaderSize+8*i:])
			p := binary.BigEndian.Uint64(buf[ondisk.BtreePtrOff(true, g.BlockSize, 8, 8, i):])
			walk(p, level-1, k)
		}
	}
	for i := range root.Keys {
		walk(root.Ptrs[i], height-2, root.Keys[i])
	}
	return height, blocks
}

// check compares every file with its model through the read path over the
// journal, and block usage with the allocator's bitmap.
func (h *harness) check() (maxHeight int) {
	t := h.t
	t.Helper()
	// The read path checks CRCs, which are stamped at write-back: write
	// everything committed first.
	if err := h.j.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	owned := map[uint64]string{}
	claim := func(b uint64, who string) {
		if prev, ok := owned[b]; ok {
			t.Fatalf("block %d claimed by %s and %s", b, prev, who)
		}
		if h.al.free[b] {
			t.Fatalf("block %d of %s is free in the allocator", b, who)
		}
		owned[b] = who
	}
	for ino, m := range h.files {
		ip, err := h.fs.Inode(ino)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ip.Extents(bmbt.DataFork)
		if err != nil {
			t.Fatalf("inode %d: %v", ino, err)
		}
		if !slices.Equal(got, m.recs) {
			t.Fatalf("inode %d: mapping\n got %v\nwant %v", ino, got, m.recs)
		}
		height, blocks := h.bmbtBlocks(ino)
		maxHeight = max(maxHeight, height)
		if want := m.blocks() + uint64(len(blocks)); ip.Core.NBlocks != want {
			t.Fatalf("inode %d: nblocks %d, want %d data + %d bmbt", ino, ip.Core.NBlocks, m.blocks(), len(blocks))
		}
		fits := len(m.recs) <= ondisk.DataForkSize(ip.Core, h.fs.Geo)/16
		if fits != (ip.Core.Format == ondisk.FmtExtents) {
			t.Fatalf("inode %d: %d extents in format %d", ino, len(m.recs), ip.Core.Format)
		}
		for _, e := range m.recs {
			for k := uint64(0); k < e.BlockCount; k++ {
				claim(e.StartBlock+k, fmt.Sprintf("inode %d data", ino))
			}
		}
		for _, b := range blocks {
			claim(b, fmt.Sprintf("inode %d bmbt", ino))
		}
	}
	return maxHeight
}

// TestForkAgainstModel runs seeded random inserts (with and without
// merges), removes (trims, whole extents, punches that split), and state
// flips on three files of a 1 KiB-block image whose inodes have the
// 192-byte data fork the kernel gives new files, and checks the mapping,
// nblocks, the BMBT's shape and block ownership against the model. One
// file is driven to a 3-level BMBT and back to the extents format.
func TestForkAgainstModel(t *testing.T) {
	steps := 5000
	if os.Getenv("XFSIMG_LONG") == "1" {
		steps = 30000
	}
	h := newHarness(t, "freesp-1k", 3)
	inos := make([]uint64, 0, len(h.files))
	for ino := range h.files {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	r := rand.New(rand.NewPCG(7, 11))
	const span = 1 << 16 // file blocks the random ops work in
	maxHeight, maxExtents, merges := 0, 0, 0
	var sawExtentsAgain bool

	// randomOp does one operation on ino; grow biases it towards inserts
	// of short, unmergeable extents (to grow the tree).
	randomOp := func(ino uint64, grow float64) {
		m := h.files[ino]
		// pick is a random offset, or (half the time) one at the end of
		// or inside a random record, where merges and splits happen.
		pick := func(atEnd bool) uint64 {
			if len(m.recs) == 0 || r.IntN(2) == 0 {
				return r.Uint64N(span)
			}
			e := m.recs[r.IntN(len(m.recs))]
			if atEnd {
				return e.StartOff + e.BlockCount
			}
			return e.StartOff + r.Uint64N(e.BlockCount)
		}
		switch x := r.Float64(); {
		case x < grow:
			off := pick(true)
			n := 1 + r.Uint64N(8)
			// the hole at off
			var lo, hi uint64 = 0, ondisk.MaxFileOff
			for _, e := range m.recs {
				if e.StartOff+e.BlockCount <= off {
					lo = max(lo, e.StartOff+e.BlockCount)
				} else if e.StartOff <= off {
					return // mapped
				} else {
					hi = min(hi, e.StartOff)
				}
			}
			n = min(n, hi-off)
			target := h.fs.Geo.FSB(uint32(r.IntN(int(h.fs.Geo.AGCount))), uint32(r.IntN(int(h.fs.Geo.AGBlocks))))
			unwritten := r.IntN(2) == 0
			exact := false
			// Often continue a neighbour on disk, to merge: the left one
			// (the new extent follows its blocks), the right one (the new
			// extent ends where its blocks start), or both when the hole
			// is exactly the gap between their blocks.
			var left, right *ondisk.Extent
			for i := range m.recs {
				if m.recs[i].StartOff+m.recs[i].BlockCount == off {
					left = &m.recs[i]
				}
				if m.recs[i].StartOff == hi {
					right = &m.recs[i]
				}
			}
			switch k := r.IntN(4); {
			case k == 0 && left != nil:
				target, unwritten, exact = left.StartBlock+left.BlockCount, left.Unwritten, true
			case k == 1 && right != nil && hi-off <= 8 && right.StartBlock >= hi-off:
				n = hi - off
				target, unwritten, exact = right.StartBlock-n, right.Unwritten, true
			case k == 2 && right != nil && off+n == hi && right.StartBlock >= n:
				target, unwritten, exact = right.StartBlock-n, right.Unwritten, true
			}
			fsb, got, err := h.al.Alloc(agf.Request{Target: target, MinLen: 1, MaxLen: uint32(n), Exact: exact})
			if err != nil {
				t.Fatal(err)
			}
			if got == 0 {
				return
			}
			if exact && target != fsb+0 {
				t.Fatalf("exact allocation at %d gave %d", target, fsb)
			}
			if exact && uint64(got) < n && right != nil && off+n == hi {
				// Short: it no longer reaches the right neighbour.
				h.al.Free(fsb, got)
				return
			}
			e := ondisk.Extent{StartOff: off, StartBlock: fsb, BlockCount: uint64(got), Unwritten: unwritten}
			if err := h.tx(ino, func(f *bmbt.IFork) error { return f.Insert(e) }); err != nil {
				t.Fatalf("insert %v: %v", e, err)
			}
			m.insert(e)
		case x < grow+(1-grow)*0.6:
			off := pick(false)
			n := 1 + r.Uint64N(uint64(1+r.IntN(64)))
			var removed []ondisk.Extent
			if err := h.tx(ino, func(f *bmbt.IFork) error {
				var err error
				removed, err = f.Remove(off, n)
				return err
			}); err != nil {
				t.Fatalf("remove [%d,+%d): %v", off, n, err)
			}
			if want := m.remove(off, off+n); !slices.Equal(removed, want) {
				t.Fatalf("remove [%d,+%d): removed %v, want %v", off, n, removed, want)
			}
			for _, p := range removed {
				if err := h.al.Free(p.StartBlock, uint32(p.BlockCount)); err != nil {
					t.Fatal(err)
				}
			}
			// Sometimes map the same blocks back at once: a piece from
			// the middle of an extent then joins both sides again.
			if len(removed) > 0 && r.IntN(3) == 0 {
				p := removed[r.IntN(len(removed))]
				if _, _, err := h.al.Alloc(agf.Request{Target: p.StartBlock, MinLen: uint32(p.BlockCount), MaxLen: uint32(p.BlockCount), Exact: true}); err != nil {
					t.Fatal(err)
				}
				if err := h.tx(ino, func(f *bmbt.IFork) error { return f.Insert(p) }); err != nil {
					t.Fatalf("refill %v: %v", p, err)
				}
				m.insert(p)
				merges++
			}
		default:
			off := pick(false)
			n := 1 + r.Uint64N(64)
			uw := r.IntN(2) == 0
			if err := h.tx(ino, func(f *bmbt.IFork) error { return f.SetState(off, n, uw) }); err != nil {
				t.Fatalf("setstate: %v", err)
			}
			m.setState(off, off+n, uw)
		}
		maxExtents = max(maxExtents, len(m.recs))
	}

	// Phase 1: grow one file to three levels with single-block extents at
	// every other offset (nothing can merge), the others at random.
	big := inos[0]
	for i := uint64(0); h.height(big) < 3; i++ {
		if i > 20000 {
			t.Fatal("the tree did not reach 3 levels")
		}
		target := h.fs.Geo.FSB(uint32(i%4), uint32(r.IntN(int(h.fs.Geo.AGBlocks))))
		fsb, _, err := h.al.Alloc(agf.Request{Target: target, MinLen: 1, MaxLen: 1})
		if err != nil {
			t.Fatal(err)
		}
		e := ondisk.Extent{StartOff: span + 2*i, StartBlock: fsb, BlockCount: 1, Unwritten: i%3 == 0}
		if err := h.tx(big, func(f *bmbt.IFork) error { return f.Insert(e) }); err != nil {
			t.Fatal(err)
		}
		h.files[big].insert(e)
		if i%256 == 0 {
			h.check()
		}
	}
	maxHeight = max(maxHeight, h.check())
	t.Logf("3 levels with %d extents", len(h.files[big].recs))

	// Phase 2: random operations on all files.
	for i := 0; i < steps; i++ {
		randomOp(inos[r.IntN(len(inos))], 0.45)
		if i%200 == 0 {
			maxHeight = max(maxHeight, h.check())
		}
	}
	maxHeight = max(maxHeight, h.check())

	// Phase 3: flips across the big file's striped region (every flip
	// changes records in a deep tree), then punch it away in random
	// chunks until it is back in the extents format.
	for i := 0; i < 200; i++ {
		off := span + r.Uint64N(uint64(2*len(h.files[big].recs)))
		n := 1 + r.Uint64N(40)
		uw := r.IntN(2) == 0
		if err := h.tx(big, func(f *bmbt.IFork) error { return f.SetState(off, n, uw) }); err != nil {
			t.Fatal(err)
		}
		h.files[big].setState(off, off+n, uw)
	}
	h.check()
	for len(h.files[big].recs) > 0 {
		m := h.files[big]
		e := m.recs[r.IntN(len(m.recs))]
		off := e.StartOff
		n := 1 + r.Uint64N(30)
		var removed []ondisk.Extent
		if err := h.tx(big, func(f *bmbt.IFork) error {
			var err error
			removed, err = f.Remove(off, n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		m.remove(off, off+n)
		for _, p := range removed {
			if err := h.al.Free(p.StartBlock, uint32(p.BlockCount)); err != nil {
				t.Fatal(err)
			}
		}
		if h.height(big) == 0 {
			sawExtentsAgain = true
		}
		if len(m.recs)%50 == 0 {
			h.check()
		}
	}
	h.check()

	// A 3-level tree unmapped in one call: it must turn back into an
	// extent list on the way down rather than run empty.
	for i := uint64(0); h.height(big) < 3; i++ {
		fsb, _, err := h.al.Alloc(agf.Request{Target: h.fs.Geo.FSB(uint32(i%4), uint32(r.IntN(int(h.fs.Geo.AGBlocks)))), MinLen: 1, MaxLen: 1})
		if err != nil {
			t.Fatal(err)
		}
		e := ondisk.Extent{StartOff: 4*span + 2*i, StartBlock: fsb, BlockCount: 1}
		if err := h.tx(big, func(f *bmbt.IFork) error { return f.Insert(e) }); err != nil {
			t.Fatal(err)
		}
		h.files[big].insert(e)
	}
	h.check()
	var removed []ondisk.Extent
	if err := h.tx(big, func(f *bmbt.IFork) error {
		var err error
		removed, err = f.Remove(0, ondisk.MaxFileOff-1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := h.files[big].remove(0, ondisk.MaxFileOff-1); !slices.Equal(removed, want) {
		t.Fatalf("remove everything: %d pieces, want %d", len(removed), len(want))
	}
	for _, p := range removed {
		if err := h.al.Free(p.StartBlock, uint32(p.BlockCount)); err != nil {
			t.Fatal(err)
		}
	}
	if h.height(big) != 0 {
		t.Fatalf("empty file still has a %d-level BMBT", h.height(big))
	}
	h.check()
	if maxHeight < 3 || !sawExtentsAgain {
		t.Fatalf("max height %d, back to extents %v", maxHeight, sawExtentsAgain)
	}
	for _, k := range [][2]bool{{true, false}, {false, true}, {true, true}} {
		if mergeKinds[k] < 10 {
			t.Errorf("only %d inserts joined (left, right) = %v", mergeKinds[k], k)
		}
	}
	t.Logf("inserts by (left, right) join: %v", mergeKinds)

	// The log: everything reaches the disk, and a fresh reader agrees.
	if err := h.j.Close(); err != nil {
		t.Fatal(err)
	}
	h.dev.Close()
	fs2, err := xfs.Open(h.img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs2.Close()
	for ino, m := range h.files {
		ip, err := fs2.Inode(ino)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ip.Extents(bmbt.DataFork)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, m.recs) {
			t.Fatalf("inode %d after close: %v, want %v", ino, got, m.recs)
		}
	}
	st := h.j.Stats()
	t.Logf("%d refills, max height %d, max extents %d, allocs %d, frees %d, %d transactions, %d checkpoints",
		merges, maxHeight, maxExtents, h.al.allocs, h.al.frees, st.Transactions, st.Checkpoints)
}

func (h *harness) height(ino uint64) int {
	ip, err := h.fs.Inode(ino)
	if err != nil {
		h.t.Fatal(err)
	}
	if ip.Core.Format != ondisk.FmtBtree {
		return 0
	}
	r, err := ondisk.DecodeBmdr(ip.DataFork())
	if err != nil {
		h.t.Fatal(err)
	}
	return int(r.Level) + 1
}

// TestForkErrors: inserts that overlap, unwritten attr extents and bad
// lengths are refused before anything changes, and a BMBT block that
// cannot be allocated in the middle of a split fails the fork (Err) so
// that the caller cancels, leaving the committed state as it was.
func TestForkErrors(t *testing.T) {
	h := newHarness(t, "freesp-1k", 1)
	var ino uint64
	for i := range h.files {
		ino = i
	}
	m := h.files[ino]
	base := m.recs[0]
	bad := []ondisk.Extent{
		{StartOff: base.StartOff, StartBlock: 0, BlockCount: 1},                                  // overlaps
		{StartOff: 1 << 20, StartBlock: h.fs.Geo.FSB(0, 5000), BlockCount: 0},                    // empty
		{StartOff: 1 << 20, StartBlock: h.fs.Geo.FSB(0, 5000), BlockCount: ondisk.MaxExtLen + 1}, // too long
		{StartOff: ondisk.MaxFileOff - 1, StartBlock: h.fs.Geo.FSB(0, 5000), BlockCount: 2},      // past the end
		{StartOff: 1 << 20, StartBlock: h.fs.Geo.FSB(0, 1), BlockCount: 1},                       // AG header
	}
	for _, e := range bad {
		if err := h.tx(ino, func(f *bmbt.IFork) error { return f.Insert(e) }); err == nil {
			t.Errorf("insert %v succeeded", e)
		}
	}
	// The kernel gives new files an empty attr fork in the extents
	// format: it opens, but takes no unwritten extents.
	tx, err := h.j.Begin(log.Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	af, err := bmbt.OpenFork(tx, h.fs.Geo, h.al, ino, bmbt.AttrFork)
	if err != nil {
		t.Fatal(err)
	}
	if err := af.Insert(ondisk.Extent{StartOff: 0, StartBlock: h.fs.Geo.FSB(0, 5000), BlockCount: 1, Unwritten: true}); err == nil {
		t.Error("unwritten extent inserted into the attr fork")
	}
	if err := af.SetState(0, 10, true); err == nil {
		t.Error("attr fork range set unwritten")
	}
	tx.Cancel()
	// Grow to a BMBT, then fail the allocation of the next new block.
	var i uint64
	for ; h.height(ino) < 2; i++ {
		fsb, _, _ := h.al.Alloc(agf.Request{Target: h.fs.Geo.FSB(1, uint32(100+7*i)), MinLen: 1, MaxLen: 1})
		e := ondisk.Extent{StartOff: 1000 + 2*i, StartBlock: fsb, BlockCount: 1}
		if err := h.tx(ino, func(f *bmbt.IFork) error { return f.Insert(e) }); err != nil {
			t.Fatal(err)
		}
		m.insert(e)
	}
	h.check()
	before := h.j.Stats().Transactions
	for ; ; i++ {
		fsb, _, _ := h.al.Alloc(agf.Request{Target: h.fs.Geo.FSB(1, uint32(100+7*i)), MinLen: 1, MaxLen: 1})
		e := ondisk.Extent{StartOff: 1000 + 2*i, StartBlock: fsb, BlockCount: 1}
		var ferr error
		h.al.failing = true
		err := h.tx(ino, func(f *bmbt.IFork) error {
			err := f.Insert(e)
			ferr = f.Err()
			return err
		})
		h.al.failing = false
		if err == nil {
			m.insert(e)
			continue
		}
		if ferr == nil || !errors.Is(err, ondisk.ErrNoSpace) {
			t.Fatalf("failed insert: %v, fork error %v", err, ferr)
		}
		h.al.Free(fsb, 1)
		break
	}
	if i > 2000 {
		t.Fatal("no insert needed a new block")
	}
	t.Logf("%d inserts before one needed a block; %d transactions", i, h.j.Stats().Transactions-before)
	h.check()
}
