package btree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// testOps is a tree of fixed-size records keyed by their first bytes, in
// either block form.
type testOps struct{ long bool }

func (o testOps) Name() string { return "testbt" }
func (o testOps) Magic() uint32 {
	if o.long {
		return ondisk.BmapMagic
	}
	return ondisk.BnoMagic
}
func (o testOps) Long() bool { return o.long }
func (o testOps) RecSize() int {
	if o.long {
		return 16
	}
	return 8
}
func (o testOps) KeySize() int {
	if o.long {
		return 8
	}
	return 4
}
func (o testOps) KeyFromRec(key, rec []byte) { copy(key, rec[:o.KeySize()]) }
func (o testOps) CmpKey(a, b []byte) int     { return bytes.Compare(a, b) }

func (o testOps) rec(k, v uint64) []byte {
	r := make([]byte, o.RecSize())
	if o.long {
		binary.BigEndian.PutUint64(r, k)
		binary.BigEndian.PutUint64(r[8:], v)
	} else {
		binary.BigEndian.PutUint32(r, uint32(k))
		binary.BigEndian.PutUint32(r[4:], uint32(v))
	}
	return r
}

func (o testOps) key(k uint64) []byte { return o.rec(k, 0)[:o.KeySize()] }

// memTree is an in-memory Writer and RootWriter.
type memTree struct {
	blockSize int
	blocks    map[uint64][]byte
	next      uint64
	root      uint64
	height    int
	iroot     []byte // in-inode root, for the long form
	logged    int
}

func (m *memTree) ReadBlock(ptr uint64) ([]byte, int64, error) {
	b, ok := m.blocks[ptr]
	if !ok {
		return nil, 0, fmt.Errorf("read of unallocated block %d", ptr)
	}
	return b, int64(ptr), nil
}
func (m *memTree) LogBlock(ptr uint64, off, n int) {
	if _, ok := m.blocks[ptr]; !ok || off < 0 || off+n > m.blockSize {
		panic(fmt.Sprintf("log of block %d [%d,+%d)", ptr, off, n))
	}
	m.logged++
}
func (m *memTree) AllocBlock(hint uint64) (uint64, []byte, int64, error) {
	m.next++
	b := make([]byte, m.blockSize)
	m.blocks[m.next] = b
	return m.next, b, int64(m.next), nil
}
func (m *memTree) FreeBlock(ptr uint64) error {
	if _, ok := m.blocks[ptr]; !ok {
		return fmt.Errorf("free of unallocated block %d", ptr)
	}
	delete(m.blocks, ptr)
	return nil
}
func (m *memTree) Height() int {
	if m.iroot != nil {
		return int(binary.BigEndian.Uint16(m.iroot[4:])) + 1
	}
	return m.height
}
func (m *memTree) Ptr() uint64       { return m.root }
func (m *memTree) InodeRoot() []byte { return m.iroot }
func (m *memTree) SetRoot(ptr uint64, h int) {
	m.root, m.height = ptr, h
}
func (m *memTree) LogInodeRoot() { m.logged++ }

// newMemTree makes a tree: a block-rooted one with an empty root leaf,
// or (long form) an in-inode root of rootSlots entries at level 1 over one
// leaf holding the record with key 0, as a BMBT starts from an extent
// list (a BMBT is never empty: its owner converts it back to a list).
func newMemTree(o testOps, blockSize, rootSlots int) (*Tree, *memTree) {
	m := &memTree{blockSize: blockSize, blocks: map[uint64][]byte{}}
	t := &Tree{Ops: o, Shape: Shape{BlockSize: blockSize, Owner: 7, MaxLevels: 12}, Store: m, Root: m}
	ptr, buf, daddr, _ := m.AllocBlock(0)
	leaf := t.newHeader(0, daddr)
	leaf.Encode(buf)
	if rootSlots == 0 {
		m.root, m.height = ptr, 1
		return t, m
	}
	copy(buf[HeaderSize(o):], o.rec(0, 0))
	leaf.NumRecs = 1
	leaf.Encode(buf)
	m.iroot = make([]byte, HeaderSize(o)+rootSlots*(o.KeySize()+PtrSize(o)))
	h := t.newHeader(1, -1)
	h.NumRecs = 1
	h.Encode(m.iroot)
	t.setPtr(&block{buf: m.iroot}, 0, ptr)
	return t, m
}

// checkTree walks the whole tree and checks its shape: levels, fill,
// parent keys, sibling links, record order, and that every allocated
// block is in the tree exactly once.
func checkTree(t *testing.T, tr *Tree, m *memTree, want [][]byte) {
	t.Helper()
	h := tr.Root.Height()
	root, err := tr.rootBlock(h)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	var recs [][]byte
	lastAt := make([]uint64, h) // previous block at each level, for siblings
	for i := range lastAt {
		lastAt[i] = ondisk.NullFSBlock
	}
	var walk func(b *block, lvl int, lo []byte, isRoot, onlyChild bool)
	walk = func(b *block, lvl int, lo []byte, isRoot, onlyChild bool) {
		if b.ptr != ondisk.NullFSBlock {
			if seen[b.ptr] {
				t.Fatalf("block %d reached twice", b.ptr)
			}
			seen[b.ptr] = true
			if b.hdr.LeftSib != lastAt[lvl] {
				t.Fatalf("block %d level %d: left sibling %d, want %d", b.ptr, lvl, b.hdr.LeftSib, lastAt[lvl])
			}
			if lastAt[lvl] != ondisk.NullFSBlock {
				prev, _, _ := m.ReadBlock(lastAt[lvl])
				ph, _ := ondisk.DecodeBtreeBlock(prev, tr.Ops.Long())
				if ph.RightSib != b.ptr {
					t.Fatalf("block %d: right sibling %d, want %d", lastAt[lvl], ph.RightSib, b.ptr)
				}
			}
			lastAt[lvl] = b.ptr
		}
		n := b.numRecs()
		if !isRoot && !onlyChild && n < tr.minRecs(lvl) {
			t.Fatalf("block %d level %d: %d entries, minimum %d", b.ptr, lvl, n, tr.minRecs(lvl))
		}
		if !isRoot && n == 0 {
			t.Fatalf("block %d: empty non-root block", b.ptr)
		}
		scratch := make([]byte, tr.Ops.KeySize())
		if n > 0 && lo != nil && !bytes.Equal(tr.keyAt(b, 0, scratch), lo) {
			t.Fatalf("block %d: first key %x, parent says %x", b.ptr, tr.keyAt(b, 0, scratch), lo)
		}
		for i := 0; i < n; i++ {
			if lvl == 0 {
				recs = append(recs, append([]byte(nil), tr.rec(b, i)...))
				continue
			}
			child, err := tr.readBlock(tr.ptr(b, i), lvl-1, false)
			if err != nil {
				t.Fatal(err)
			}
			walk(child, lvl-1, append([]byte(nil), tr.key(b, i)...), false, n == 1)
		}
	}
	walk(root, h-1, nil, true, false)
	for p := range m.blocks {
		if !seen[p] {
			t.Fatalf("block %d allocated but not in the tree (leaked)", p)
		}
	}
	for i := 1; i < len(recs); i++ {
		if bytes.Compare(recs[i-1][:tr.Ops.KeySize()], recs[i][:tr.Ops.KeySize()]) >= 0 {
			t.Fatalf("records out of order at %d", i)
		}
	}
	if len(recs) != len(want) {
		t.Fatalf("tree holds %d records, model %d", len(recs), len(want))
	}
	for i := range recs {
		if !bytes.Equal(recs[i], want[i]) {
			t.Fatalf("record %d: %x, model %x", i, recs[i], want[i])
		}
	}
}

// TestModifyAgainstModel runs seeded random inserts, updates and deletes
// against a sorted-map model, for both block forms and an in-inode root,
// growing trees several levels deep and shrinking them back to nothing.
func TestModifyAgainstModel(t *testing.T) {
	cases := []struct {
		name      string
		ops       testOps
		blockSize int
		rootSlots int
		keys      uint64
	}{
		{"short", testOps{false}, 512, 0, 4000},
		{"long", testOps{true}, 512, 0, 4000},
		{"inode-root", testOps{true}, 512, 3, 4000},
		{"inode-root-wide", testOps{true}, 1024, 9, 3000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, m := newMemTree(c.ops, c.blockSize, c.rootSlots)
			model := map[uint64]uint64{}
			if c.rootSlots > 0 {
				model[0] = 0 // the record the tree starts with; keys drawn below are >= 1
			}
			r := rand.New(rand.NewPCG(42, uint64(c.blockSize+c.rootSlots)))
			sorted := func() [][]byte {
				ks := make([]uint64, 0, len(model))
				for k := range model {
					ks = append(ks, k)
				}
				slices.Sort(ks)
				out := make([][]byte, len(ks))
				for i, k := range ks {
					out[i] = c.ops.rec(k, model[k])
				}
				return out
			}
			maxHeight := 0
			phase := func(steps int, insertBias float64) {
				for i := 0; i < steps; i++ {
					k := r.Uint64N(c.keys) + 1
					cur := tr.NewCursor()
					_, exists := model[k]
					switch x := r.Float64(); {
					case x < insertBias && !exists:
						v := r.Uint64N(1 << 30)
						if err := cur.Insert(c.ops.rec(k, v)); err != nil {
							t.Fatalf("insert %d: %v", k, err)
						}
						model[k] = v
					case exists && x < insertBias+0.1:
						v := r.Uint64N(1 << 30)
						if ok, err := cur.Lookup(c.ops.key(k), EQ); !ok || err != nil {
							t.Fatalf("lookup %d: %v %v", k, ok, err)
						}
						if err := cur.Update(c.ops.rec(k, v)); err != nil {
							t.Fatal(err)
						}
						model[k] = v
					case exists:
						if ok, err := cur.Lookup(c.ops.key(k), EQ); !ok || err != nil {
							t.Fatalf("lookup %d: %v %v", k, ok, err)
						}
						if err := cur.Delete(); err != nil {
							t.Fatalf("delete %d: %v", k, err)
						}
						delete(model, k)
					case !exists:
						if ok, _ := cur.Lookup(c.ops.key(k), EQ); ok {
							t.Fatalf("found deleted key %d", k)
						}
						if err := cur.Insert(c.ops.rec(k, 1)); err != nil {
							t.Fatal(err)
						}
						model[k] = 1
						if err := cur.Insert(c.ops.rec(k, 2)); err == nil {
							t.Fatalf("duplicate insert of %d succeeded", k)
						}
					}
					maxHeight = max(maxHeight, tr.Root.Height())
					if i%97 == 0 {
						checkTree(t, tr, m, sorted())
					}
				}
				checkTree(t, tr, m, sorted())
			}
			phase(12000, 0.8) // grow
			phase(6000, 0.5)  // churn
			// Shrink to empty: delete every key in random order.
			keys := make([]uint64, 0, len(model))
			for k := range model {
				if k != 0 {
					keys = append(keys, k)
				}
			}
			r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			for i, k := range keys {
				cur := tr.NewCursor()
				if ok, err := cur.Lookup(c.ops.key(k), EQ); !ok || err != nil {
					t.Fatalf("lookup %d: %v %v", k, ok, err)
				}
				if err := cur.Delete(); err != nil {
					t.Fatal(err)
				}
				delete(model, k)
				if i%131 == 0 {
					checkTree(t, tr, m, sorted())
				}
			}
			checkTree(t, tr, m, sorted())
			if maxHeight < 3 {
				t.Errorf("tree only reached height %d; the test means to exercise deeper trees", maxHeight)
			}
			wantFinal := 1
			if c.rootSlots > 0 {
				wantFinal = 2 // an in-inode root stays a node over one leaf
			}
			if h := tr.Root.Height(); h != wantFinal || len(m.blocks) != 1 {
				t.Errorf("empty tree: height %d with %d blocks, want height %d and one block", h, len(m.blocks), wantFinal)
			}
			t.Logf("max height %d, %d log calls", maxHeight, m.logged)
		})
	}
}
