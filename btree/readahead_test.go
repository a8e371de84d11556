package btree

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// raStore serves a memTree's blocks read-only (so they are verified, CRC
// included) and records what is prefetched and read, in order.
type raStore struct {
	m       *memTree
	calls   [][]uint64      // each PrefetchBlocks call
	fetched map[uint64]bool // handed to PrefetchBlocks so far
	late    []uint64        // leaves read before they were prefetched
	reads   int
	leaves  int // leaf reads
	ahead   int // most leaves prefetched and not yet read
	early   int // prefetch requests made before the first leaf read
}

func (s *raStore) ReadBlock(ptr uint64) ([]byte, int64, error) {
	buf, daddr, err := s.m.ReadBlock(ptr)
	if err == nil && binary.BigEndian.Uint16(buf[4:]) == 0 {
		if s.leaves++; s.leaves == 1 {
			s.early = len(s.calls)
		}
		if !s.fetched[ptr] {
			s.late = append(s.late, ptr)
		}
	}
	s.reads++
	return buf, daddr, err
}

func (s *raStore) PrefetchBlocks(ptrs []uint64) {
	s.calls = append(s.calls, slices.Clone(ptrs))
	for _, p := range ptrs {
		s.fetched[p] = true
	}
	if len(s.calls) > 1 { // the first is the root's children, the nodes
		s.ahead = max(s.ahead, len(s.fetched)-len(s.calls[0])-s.leaves)
	}
}

// raTree builds a three-level short-form tree of n records over 512-byte
// blocks and returns it over a raStore, with its records.
func raTree(t *testing.T, n int) (*Tree, *raStore, [][]byte) {
	t.Helper()
	o := testOps{false}
	tr, m := newMemTree(o, 512, 0)
	var want [][]byte
	for k := range uint64(n) {
		rec := o.rec(k+1, k)
		if err := tr.NewCursor().Insert(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec)
	}
	if m.Height() != 3 {
		t.Fatalf("tree of %d records has height %d, want 3", n, m.Height())
	}
	for _, b := range m.blocks {
		ondisk.StampBtreeCRC(b, false)
	}
	s := &raStore{m: m, fetched: map[uint64]bool{}}
	ro := *tr
	ro.Store = s
	return &ro, s, want
}

// A whole-tree walk hands the store every leaf before it reads it, the
// leaves under one parent all before it reads the first (the window holds
// them all), and reads every block once.
func TestRecordsReadAhead(t *testing.T) {
	tr, s, want := raTree(t, 20000)
	var got [][]byte
	err := tr.Records(func(r []byte) error { got = append(got, slices.Clone(r)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("records differ: %d, want %d", len(got), len(want))
	}
	if len(s.late) > 0 {
		t.Fatalf("leaves read before they were prefetched: %v", s.late)
	}
	// The root's children (the level-1 nodes), the first one's leaves,
	// then all the others'.
	nodes := len(s.calls[0])
	if len(s.calls) != 3 || s.early != len(s.calls) {
		t.Fatalf("%d prefetch requests, %d before the first leaf was read; want 3, all of them",
			len(s.calls), s.early)
	}
	leaves := 0
	for _, c := range s.calls[1:] {
		leaves += len(c)
	}
	if leaves+nodes+1 != len(s.m.blocks) {
		t.Fatalf("%d leaves and %d nodes prefetched, the tree has %d blocks", leaves, nodes, len(s.m.blocks))
	}
	// The level-1 nodes are read twice: by the readahead, then by the
	// cursor; every other block once.
	if want := len(s.m.blocks) + nodes - 1; s.reads != want {
		t.Fatalf("%d block reads, want %d", s.reads, want)
	}
}

// With a window smaller than the tree, the walk hands out leaves as it
// goes: each before it is read, and never much more than a window ahead.
func TestRecordsReadAheadWindow(t *testing.T) {
	defer func(b int) { readaheadBytes = b }(readaheadBytes)
	readaheadBytes = 100 * 512
	tr, s, want := raTree(t, 20000)
	n := 0
	err := tr.Records(func(r []byte) error {
		if !slices.Equal(r, want[n]) {
			t.Fatalf("record %d differs", n)
		}
		n++
		return nil
	})
	if err != nil || n != len(want) {
		t.Fatalf("%d records, %v", n, err)
	}
	if len(s.late) > 0 {
		t.Fatalf("leaves read before they were prefetched: %v", s.late)
	}
	if len(s.calls) < 5 {
		t.Fatalf("%d prefetch requests: the window did not move with the walk", len(s.calls))
	}
	if len(s.fetched) != len(s.m.blocks)-1 {
		t.Fatalf("%d blocks prefetched of %d below the root", len(s.fetched), len(s.m.blocks)-1)
	}
	// The window counts from the end of the node the cursor is in, and
	// the last node handed out may end past it.
	if limit := 100 + 2*NodeMaxRecs(tr.Ops, 512); s.ahead > limit {
		t.Fatalf("%d leaves prefetched ahead of the walk, want at most %d", s.ahead, limit)
	}
}

// A level-1 node that fails verification stops the readahead there, and
// the walk still fails at that node with the same error as without
// readahead, after delivering the records before it.
func TestRecordsReadAheadStopsAtDamage(t *testing.T) {
	tr, s, want := raTree(t, 20000)
	root, _, err := s.m.ReadBlock(tr.Root.Ptr())
	if err != nil {
		t.Fatal(err)
	}
	bad := tr.ptr(&block{buf: root}, 3)
	binary.BigEndian.PutUint32(s.m.blocks[bad], 0xdeadbeef) // magic
	ondisk.StampBtreeCRC(s.m.blocks[bad], false)

	var got [][]byte
	err = tr.Records(func(r []byte) error { got = append(got, slices.Clone(r)); return nil })
	plain := *tr
	plain.Store = s.m
	var ref [][]byte
	refErr := plain.Records(func(r []byte) error { ref = append(ref, slices.Clone(r)); return nil })
	if err == nil || refErr == nil || err.Error() != refErr.Error() {
		t.Fatalf("error %v, without readahead %v", err, refErr)
	}
	if !slices.EqualFunc(got, ref, slices.Equal) || len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("%d records before the damage, %d without readahead, of %d", len(got), len(ref), len(want))
	}
	// Nothing under the nodes past the bad one was asked for.
	rb := &block{buf: root, hdr: &ondisk.BtreeBlock{NumRecs: binary.BigEndian.Uint16(root[6:])}}
	if rb.numRecs() < 6 {
		t.Fatalf("root has %d children, want at least 6", rb.numRecs())
	}
	for j := 4; j < rb.numRecs(); j++ {
		node := &block{buf: s.m.blocks[tr.ptr(rb, j)]}
		for i := range int(binary.BigEndian.Uint16(node.buf[6:])) {
			if leaf := tr.ptr(node, i); s.fetched[leaf] {
				t.Fatalf("leaf %d of node %d, past the damaged node, was prefetched", leaf, j)
			}
		}
	}
	if len(s.late) > 0 {
		t.Fatalf("leaves read before they were prefetched: %v", s.late)
	}
}
