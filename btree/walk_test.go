package btree_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/xfsimg/xfsimg/agi"
	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/refcount"
	"github.com/xfsimg/xfsimg/xfs"
)

var (
	fixtureMu   sync.Mutex
	fixtureDir  string
	fixturePath = map[string]string{}
)

// TestMain removes the fixtures extracted once for all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// fixture extracts a fixture once per test binary; tests only read it.
func fixture(t *testing.T, name string) string {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if p, ok := fixturePath[name]; ok {
		return p
	}
	if fixtureDir == "" {
		d, err := os.MkdirTemp("", "btree-walk-")
		if err != nil {
			t.Fatal(err)
		}
		fixtureDir = d
	}
	p := filepath.Join(fixtureDir, name+".img")
	if err := images.ExtractTo(name, p); err != nil {
		t.Fatal(err)
	}
	fixturePath[name] = p
	return p
}

func openFixture(t *testing.T, name string) *xfs.FS {
	t.Helper()
	f, err := xfs.Open(fixture(t, name), ondisk.OpenOptions{Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// walkAll walks t and returns its problems and records.
func walkAll(t *btree.Tree) ([]btree.Problem, [][]byte, btree.WalkStats) {
	var probs []btree.Problem
	var recs [][]byte
	st := t.Walk(btree.Visitor{
		Record:  func(r []byte) { recs = append(recs, append([]byte(nil), r...)) },
		Problem: func(p btree.Problem) { probs = append(probs, p) },
	})
	return probs, recs, st
}

// cursorRecords lists t's records through the cursor, the reference the
// walk is held to on intact trees.
func cursorRecords(t *testing.T, tr *btree.Tree) [][]byte {
	t.Helper()
	var out [][]byte
	if err := tr.Records(func(r []byte) error { out = append(out, append([]byte(nil), r...)); return nil }); err != nil {
		t.Fatalf("%v: %v", tr, err)
	}
	return out
}

// TestWalkCleanFixtures walks every AG tree of every fixture and every
// BMBT of the fixtures' btree-format inodes: no problems, the same records
// as the cursor, every block visited once.
func TestWalkCleanFixtures(t *testing.T) {
	for _, name := range images.Names() {
		t.Run(name, func(t *testing.T) {
			f := openFixture(t, name)
			var trees []*btree.Tree
			for agno := uint32(0); agno < f.Geo.AGCount; agno++ {
				fs, err := f.FreeSpace(agno)
				if err != nil {
					t.Fatal(err)
				}
				trees = append(trees, fs.BnoTree(), fs.CntTree())
				a, err := f.AGI(agno)
				if err != nil {
					t.Fatal(err)
				}
				ia := &agi.AG{Geo: f.Geo, Agno: agno, AGI: a, Sparse: f.SB.HasSpinodes(), Store: fs.Store}
				trees = append(trees, ia.InoTree())
				if f.SB.HasFinobt() {
					trees = append(trees, ia.FinoTree())
				}
				if f.SB.HasReflink() {
					trees = append(trees, (&refcount.AG{Geo: f.Geo, Agno: agno, AGF: fs.AGF, Store: fs.Store}).Tree())
				}
			}
			m, err := images.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			bmbts := 0
			for _, file := range m.Files {
				ip, err := f.Inode(file.Inode)
				if err != nil {
					t.Fatal(err)
				}
				if ip.Core.Format != ondisk.FmtBtree {
					continue
				}
				mp := &bmbt.Mapping{Geo: f.Geo, Store: bmbt.BlockStore{Geo: f.Geo, Read: f.ReadMeta}, Ino: ip.Ino,
					Format: ip.Core.Format, Fork: ip.DataFork(), NExtents: ip.Core.NExtents}
				tr, err := mp.Tree()
				if err != nil {
					t.Fatal(err)
				}
				trees = append(trees, tr)
				bmbts++
			}
			if bmbts == 0 && name != "freesp-1k" {
				t.Errorf("no BMBT-format inode in %s: the fixture promises some", name)
			}
			for _, tr := range trees {
				probs, recs, st := walkAll(tr)
				for _, p := range probs {
					t.Errorf("%v", p)
				}
				want := cursorRecords(t, tr)
				if !slices.EqualFunc(recs, want, slices.Equal) {
					t.Errorf("%v: walk gave %d records, cursor %d", tr, len(recs), len(want))
				}
				if st.Records != len(want) || st.Blocks < st.Height-boolInt(tr.Root.InodeRoot() != nil) {
					t.Errorf("%v: stats %+v for %d records", tr, st, len(want))
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// patchStore serves a tree's blocks with some of them modified in copies;
// the CRC is stamped again unless the patch asks not to.
type patchStore struct {
	btree.Store
	long    bool
	patches map[uint64]func(b []byte) (restamp bool)
}

func (s *patchStore) ReadBlock(ptr uint64) ([]byte, int64, error) {
	buf, daddr, err := s.Store.ReadBlock(ptr)
	if err != nil {
		return buf, daddr, err
	}
	p := s.patches[ptr]
	if p == nil {
		return buf, daddr, nil
	}
	c := append([]byte(nil), buf...)
	if p(c) {
		ondisk.StampBtreeCRC(c, s.long)
	}
	return c, daddr, nil
}

// twoLevel returns AG 0's bnobt of freesp-1k (two levels) with the patch
// store in place, the root's child pointers and the leaf records.
func twoLevel(t *testing.T) (*btree.Tree, *patchStore, []uint64) {
	t.Helper()
	f := openFixture(t, "freesp-1k")
	fs, err := f.FreeSpace(0)
	if err != nil {
		t.Fatal(err)
	}
	tr := fs.BnoTree()
	if tr.Root.Height() != 2 {
		t.Fatalf("bnobt height %d, the fixture promises 2", tr.Root.Height())
	}
	ps := &patchStore{Store: tr.Store, patches: map[uint64]func([]byte) bool{}}
	tr.Store = ps
	root, _, err := ps.Store.ReadBlock(tr.Root.Ptr())
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.BigEndian.Uint16(root[6:]))
	ptr0 := ondisk.BtreePtrOff(false, len(root), ondisk.AllocKeySize, ondisk.ShortPtrSize, 0)
	var kids []uint64
	for i := 0; i < n; i++ {
		kids = append(kids, uint64(binary.BigEndian.Uint32(root[ptr0+4*i:])))
	}
	if len(kids) < 3 {
		t.Fatalf("root has %d children, want at least 3", len(kids))
	}
	return tr, ps, kids
}

func kinds(ps []btree.Problem) []string {
	var k []string
	for _, p := range ps {
		k = append(k, p.Kind)
	}
	slices.Sort(k)
	return slices.Compact(k)
}

// TestWalkFindsDamage damages one block at a time and checks that the walk
// reports it by kind, names the block, and still delivers the records of
// the undamaged leaves.
func TestWalkFindsDamage(t *testing.T) {
	rec0 := ondisk.ShortBlockHeaderSize
	cases := []struct {
		name  string
		which int // child index to patch; -1 the root
		patch func(b []byte) bool
		want  string
		lost  bool // the leaf's records are not delivered
	}{
		{"magic", 1, func(b []byte) bool { b[0] ^= 0xff; return true }, btree.KindMagic, true},
		{"crc", 1, func(b []byte) bool { b[100] ^= 1; return false }, btree.KindCRC, true},
		{"uuid", 1, func(b []byte) bool { b[33] ^= 1; return true }, btree.KindUUID, true},
		{"blkno", 1, func(b []byte) bool { b[23] ^= 8; return true }, btree.KindBlkno, true},
		{"owner", 1, func(b []byte) bool { b[51] ^= 1; return true }, btree.KindOwner, true},
		{"level", 1, func(b []byte) bool { b[5] = 1; return true }, btree.KindLevel, true},
		{"numrecs-max", 1, func(b []byte) bool { binary.BigEndian.PutUint16(b[6:], 0xfff); return true }, btree.KindNumrecs, true},
		{"numrecs-min", 1, func(b []byte) bool { binary.BigEndian.PutUint16(b[6:], 2); return true }, btree.KindNumrecs, false},
		{"key-order", 1, func(b []byte) bool {
			r := slices.Clone(b[rec0 : rec0+8])
			copy(b[rec0:], b[rec0+8:rec0+16])
			copy(b[rec0+8:], r)
			return true
		}, btree.KindKeyOrder, false},
		{"key-range", 1, func(b []byte) bool {
			binary.BigEndian.PutUint32(b[rec0:], binary.BigEndian.Uint32(b[rec0:])+1)
			return true
		}, btree.KindKeyRange, false},
		{"leftsib", 1, func(b []byte) bool { binary.BigEndian.PutUint32(b[8:], 0xffffffff); return true }, btree.KindSibling, false},
		{"rightsib", 0, func(b []byte) bool { binary.BigEndian.PutUint32(b[12:], 0xffffffff); return true }, btree.KindSibling, false},
		{"root-key-order", -1, func(b []byte) bool {
			binary.BigEndian.PutUint32(b[rec0+8:], 0)
			return true
		}, btree.KindKeyOrder, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, ps, kids := twoLevel(t)
			_, clean, _ := walkAll(tr)
			target := tr.Root.Ptr()
			if c.which >= 0 {
				target = kids[c.which]
			}
			ps.patches[target] = c.patch
			probs, recs, _ := walkAll(tr)
			if !slices.Contains(kinds(probs), c.want) {
				t.Fatalf("want a %s problem, got %v", c.want, probs)
			}
			for _, p := range probs {
				if p.Kind == c.want && p.Ptr != target && c.want != btree.KindSibling && c.want != btree.KindKeyRange {
					t.Errorf("%s problem names block %d, want %d: %v", c.want, p.Ptr, target, p)
				}
				if s := p.String(); len(s) == 0 {
					t.Error("empty problem text")
				}
			}
			if c.lost && len(recs) >= len(clean) {
				t.Errorf("damaged leaf's records delivered: %d of %d", len(recs), len(clean))
			}
			if len(recs) == 0 {
				t.Errorf("walk stopped: no records at all")
			}
			if c.lost {
				// The damaged block leaves a gap: its neighbours' sibling
				// pointers must not be reported for it.
				for _, p := range probs {
					if p.Kind == btree.KindSibling {
						t.Errorf("sibling reported across a gap: %v", p)
					}
				}
			}
		})
	}
}

// TestWalkCycleAndPointers makes the root point at one leaf twice and
// outside the AG; the walk reports both and terminates.
func TestWalkCycleAndPointers(t *testing.T) {
	tr, ps, kids := twoLevel(t)
	ps.patches[tr.Root.Ptr()] = func(b []byte) bool {
		p := ondisk.BtreePtrOff(false, len(b), ondisk.AllocKeySize, ondisk.ShortPtrSize, 0)
		binary.BigEndian.PutUint32(b[p+4:], uint32(kids[0]))
		binary.BigEndian.PutUint32(b[p+8:], 0x7fffffff)
		return true
	}
	probs, _, _ := walkAll(tr)
	got := kinds(probs)
	for _, k := range []string{btree.KindCycle, btree.KindPtr} {
		if !slices.Contains(got, k) {
			t.Errorf("want %s, got %v", k, probs)
		}
	}
}

// TestWalkDepth: a height beyond MaxLevels is reported without reading.
func TestWalkDepth(t *testing.T) {
	tr, _, _ := twoLevel(t)
	tr.Root = btree.BlockRoot{RootPtr: tr.Root.Ptr(), Levels: tr.Shape.MaxLevels + 1}
	probs, recs, st := walkAll(tr)
	if len(probs) != 1 || probs[0].Kind != btree.KindDepth || len(recs) != 0 || st.Blocks != 0 {
		t.Fatalf("got %v, %d records, %+v", probs, len(recs), st)
	}
	// One level too few: the root is a node where a leaf is expected.
	tr.Root = btree.BlockRoot{RootPtr: tr.Root.Ptr(), Levels: 1}
	probs, _, _ = walkAll(tr)
	if !slices.Contains(kinds(probs), btree.KindLevel) {
		t.Fatalf("height 1 for a 2-level tree: %v", probs)
	}
}

// TestWalkRandomDamage flips bits in random blocks of a real tree; the
// walk never panics and visits each block at most once.
func TestWalkRandomDamage(t *testing.T) {
	tr, ps, kids := twoLevel(t)
	blocks := append([]uint64{tr.Root.Ptr()}, kids...)
	for seed := 0; seed < 300; seed++ {
		r := uint64(seed)*0x9e3779b97f4a7c15 + 1
		next := func(n int) int { r ^= r << 13; r ^= r >> 7; r ^= r << 17; return int(r % uint64(n)) }
		clear(ps.patches)
		target := blocks[next(len(blocks))]
		flips := 1 + next(8)
		restamp := next(2) == 0
		offs := make([]int, flips)
		for i := range offs {
			offs[i] = next(f1k * 8)
		}
		ps.patches[target] = func(b []byte) bool {
			for _, o := range offs {
				b[o/8] ^= 1 << (o % 8)
			}
			return restamp
		}
		seen := map[uint64]int{}
		tr.Walk(btree.Visitor{Block: func(ptr uint64, _ int, _ []byte, _ *ondisk.BtreeBlock, _ bool) { seen[ptr]++ }})
		for p, n := range seen {
			if n > 1 {
				t.Fatalf("seed %d: block %d visited %d times", seed, p, n)
			}
		}
	}
}

const f1k = 1024

func Example_problem() {
	p := btree.Problem{Kind: btree.KindSibling, Tree: "ag 0 bnobt", Ptr: 12, Expected: "null", Found: "7", Msg: "right sibling is not the neighbouring block"}
	fmt.Println(p)
	// Output: ag 0 bnobt block 12: right sibling is not the neighbouring block (expected null, found 7)
}
