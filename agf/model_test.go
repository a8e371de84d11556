package agf_test

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/internal/journaltest"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// A writable file system for the tests: the device, the journal on it and
// a reader that sees what the journal committed.
type wfs struct {
	t   testing.TB
	img string // "" for an in-memory image
	dev ondisk.Storage
	j   *log.Journal
	sb  *ondisk.Superblock
	g   *ondisk.Geometry
}

func openStorage(t testing.TB, dev ondisk.Storage) *wfs {
	t.Helper()
	return openStorageOpts(t, dev, log.Options{})
}

func openStorageOpts(t testing.TB, dev ondisk.Storage, opt log.Options) *wfs {
	t.Helper()
	f, j := journaltest.OpenStorage(t, dev, opt)
	return &wfs{t: t, dev: dev, j: j, sb: f.SB, g: f.Geo}
}

func openImage(t testing.TB, img string) *wfs {
	t.Helper()
	return openImageOpts(t, img, log.Options{})
}

func openImageOpts(t testing.TB, img string, opt log.Options) *wfs {
	t.Helper()
	dev, f, j := journaltest.Open(t, img, opt)
	return &wfs{t: t, img: img, dev: dev, j: j, sb: f.SB, g: f.Geo}
}

// close ends the journal cleanly (and closes an image file) so that the
// tools can look at the image.
func (w *wfs) close() {
	w.t.Helper()
	journaltest.Close(w.t, w.j, w.dev)
}

// reopen opens the image again after close.
func (w *wfs) reopen() *wfs {
	w.t.Helper()
	if w.img == "" {
		return openStorage(w.t, w.dev)
	}
	return openImage(w.t, w.img)
}

// reader returns a read-only view of what the journal has committed; it
// checkpoints first so that every block carries its CRC.
func (w *wfs) reader() *xfs.FS {
	w.t.Helper()
	if err := w.j.Checkpoint(); err != nil {
		w.t.Fatal(err)
	}
	f, err := xfs.New(w.dev)
	if err != nil {
		w.t.Fatal(err)
	}
	f.SetMetaReader(w.j)
	return f
}

// agView is one AG's free space as the read side sees it.
type agView struct {
	agf        *ondisk.AGF
	bno, cnt   []ondisk.AllocRec
	treeBlocks []uint32 // every block of both trees
	agfl       []uint32
}

func readAG(t testing.TB, f *xfs.FS, agno uint32) agView {
	t.Helper()
	ag, err := f.FreeSpace(agno)
	if err != nil {
		t.Fatal(err)
	}
	v := agView{agf: ag.AGF}
	if v.bno, err = ag.FreeExtents(ag.BnoTree()); err != nil {
		t.Fatal(err)
	}
	if v.cnt, err = ag.FreeExtents(ag.CntTree()); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*btree.Tree{ag.BnoTree(), ag.CntTree()} {
		v.treeBlocks = append(v.treeBlocks, treeBlocks(t, tr)...)
	}
	fl, err := f.AGFL(agno)
	if err != nil {
		t.Fatal(err)
	}
	if v.agfl, err = fl.Active(ag.AGF); err != nil {
		t.Fatal(err)
	}
	return v
}

// treeBlocks lists every block of a short-form tree, level by level,
// checking levels and sibling links on the way.
func treeBlocks(t testing.TB, tr *btree.Tree) []uint32 {
	t.Helper()
	var out []uint32
	level := []uint64{tr.Root.Ptr()}
	for lvl := tr.Root.Height() - 1; lvl >= 0; lvl-- {
		var next []uint64
		prev := ondisk.NullFSBlock
		for i, p := range level {
			buf, _, err := tr.Store.ReadBlock(p)
			if err != nil {
				t.Fatal(err)
			}
			h, err := ondisk.DecodeBtreeBlock(buf, false)
			if err != nil {
				t.Fatal(err)
			}
			if int(h.Level) != lvl || h.LeftSib != prev {
				t.Fatalf("%v: block %d: level %d leftsib %d, want level %d leftsib %d", tr, p, h.Level, h.LeftSib, lvl, prev)
			}
			if i == len(level)-1 && h.RightSib != ondisk.NullFSBlock {
				t.Fatalf("%v: last block %d at level %d has rightsib %d", tr, p, lvl, h.RightSib)
			}
			prev = p
			out = append(out, uint32(p))
			if lvl > 0 {
				for k := 0; k < int(h.NumRecs); k++ {
					off := ondisk.BtreePtrOff(false, len(buf), ondisk.AllocKeySize, ondisk.ShortPtrSize, k)
					next = append(next, uint64(binary.BigEndian.Uint32(buf[off:])))
				}
			}
		}
		level = next
	}
	return out
}

// model is what the free space must be: per AG, the blocks the test
// allocated and the blocks that were in use by something else when the
// test started. Everything else that is not a free-space tree block or on
// the AGFL must be free.
type model struct {
	g     *ondisk.Geometry
	fixed [][]bool
	user  [][]bool
	exts  []ext // what the test holds, to free later
}

type ext struct {
	fsb uint64
	n   uint32
}

func newModel(t testing.TB, w *wfs) *model {
	t.Helper()
	f := w.reader()
	m := &model{g: w.g}
	for agno := uint32(0); agno < w.g.AGCount; agno++ {
		size := w.g.AGSize(agno)
		fixed := make([]bool, size)
		for i := range fixed {
			fixed[i] = true
		}
		v := readAG(t, f, agno)
		for _, r := range v.bno {
			for b := r.StartBlock; b < r.StartBlock+r.BlockCount; b++ {
				fixed[b] = false
			}
		}
		for _, b := range append(v.treeBlocks, v.agfl...) {
			fixed[b] = false
		}
		m.fixed = append(m.fixed, fixed)
		m.user = append(m.user, make([]bool, size))
	}
	return m
}

// take records an allocation; it fails if any block was not free.
func (m *model) take(fsb uint64, n uint32) error {
	agno, agbno := m.g.FSBAgno(fsb), m.g.FSBAgbno(fsb)
	for b := agbno; b < agbno+n; b++ {
		if m.fixed[agno][b] || m.user[agno][b] {
			return fmt.Errorf("allocation [%d/%d, %d] takes block %d which is in use", agno, agbno, n, b)
		}
		m.user[agno][b] = true
	}
	m.exts = append(m.exts, ext{fsb, n})
	return nil
}

func (m *model) give(fsb uint64, n uint32) {
	agno, agbno := m.g.FSBAgno(fsb), m.g.FSBAgbno(fsb)
	for b := agbno; b < agbno+n; b++ {
		m.user[agno][b] = false
	}
}

// isFree reports whether [agbno, agbno+n) is free in the model, given the
// tree and AGFL blocks of the view.
func (m *model) freeRuns(agno uint32, meta map[uint32]bool) []ondisk.AllocRec {
	var out []ondisk.AllocRec
	size := uint32(len(m.user[agno]))
	for b := uint32(0); b < size; {
		if m.fixed[agno][b] || m.user[agno][b] || meta[b] {
			b++
			continue
		}
		s := b
		for b < size && !m.fixed[agno][b] && !m.user[agno][b] && !meta[b] {
			b++
		}
		out = append(out, ondisk.AllocRec{StartBlock: s, BlockCount: b - s})
	}
	return out
}

// check compares every AG with the model and returns the views.
func (m *model) check(t testing.TB, w *wfs) []agView {
	t.Helper()
	f := w.reader()
	var views []agView
	var sum int64
	for agno := uint32(0); agno < w.g.AGCount; agno++ {
		v := readAG(t, f, agno)
		views = append(views, v)
		meta := map[uint32]bool{}
		for _, b := range append(slices.Clone(v.treeBlocks), v.agfl...) {
			if meta[b] {
				t.Fatalf("ag %d: block %d is twice in the trees and AGFL", agno, b)
			}
			if m.fixed[agno][b] || m.user[agno][b] {
				t.Fatalf("ag %d: tree/AGFL block %d is in use elsewhere (fixed %v, user %v)", agno, b, m.fixed[agno][b], m.user[agno][b])
			}
			meta[b] = true
		}
		want := m.freeRuns(agno, meta)
		if !slices.Equal(v.bno, want) {
			t.Fatalf("ag %d: bnobt has %d extents, model %d; first difference %s", agno, len(v.bno), len(want), firstDiff(v.bno, want))
		}
		byCnt := slices.Clone(want)
		slices.SortFunc(byCnt, func(a, b ondisk.AllocRec) int {
			if a.BlockCount != b.BlockCount {
				return int(a.BlockCount) - int(b.BlockCount)
			}
			return int(a.StartBlock) - int(b.StartBlock)
		})
		if !slices.Equal(v.cnt, byCnt) {
			t.Fatalf("ag %d: cntbt differs from the model: %s", agno, firstDiff(v.cnt, byCnt))
		}
		var free, longest uint32
		for _, r := range want {
			free += r.BlockCount
			longest = max(longest, r.BlockCount)
		}
		a := v.agf
		if a.FreeBlks != free || a.Longest != longest || a.FLCount != uint32(len(v.agfl)) ||
			a.BtreeBlks != uint32(len(v.treeBlocks)-2) {
			t.Fatalf("ag %d: agf freeblks %d longest %d flcount %d btreeblks %d; counted %d %d %d %d",
				agno, a.FreeBlks, a.Longest, a.FLCount, a.BtreeBlks, free, longest, len(v.agfl), len(v.treeBlocks)-2)
		}
		sum += int64(a.FreeBlks) + int64(a.FLCount) + int64(a.BtreeBlks)
	}
	if fd, _, _ := w.j.Counters(); fd != sum {
		t.Fatalf("in-core fdblocks %d, AGs hold %d", fd, sum)
	}
	return views
}

func firstDiff(got, want []ondisk.AllocRec) string {
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d, %d", len(got), len(want))
}

// tx runs fn in one transaction that may allocate up to res blocks.
func (w *wfs) tx(res int64, fn func(a *agf.Allocator) error) error {
	w.t.Helper()
	tx, err := w.j.Begin(log.Reservation{Blocks: res})
	if err != nil {
		return err
	}
	if err := fn(agf.NewAllocator(tx, w.g)); err != nil {
		tx.Cancel()
		return err
	}
	return tx.Commit()
}
