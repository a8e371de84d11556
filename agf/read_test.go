package agf_test

import (
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// TestCursorOnRealTrees checks the btree cursor on the two-level free-space
// trees of the freesp-1k fixture against the plain record list: every
// lookup mode for every key, the key just below and just above it, and
// stepping both ways.
func TestCursorOnRealTrees(t *testing.T) {
	f, err := xfs.Open(images.Extract(t, "freesp-1k"), ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for agno := uint32(0); agno < f.Geo.AGCount; agno++ {
		ag, err := f.FreeSpace(agno)
		if err != nil {
			t.Fatal(err)
		}
		if ag.AGF.BnoLevel < 2 || ag.AGF.CntLevel < 2 {
			t.Fatalf("ag %d: trees of %d/%d levels; the fixture promises two", agno, ag.AGF.BnoLevel, ag.AGF.CntLevel)
		}
		for _, tr := range []*btree.Tree{ag.BnoTree(), ag.CntTree()} {
			recs, err := ag.FreeExtents(tr)
			if err != nil {
				t.Fatal(err)
			}
			checkCursor(t, tr, recs)
		}
	}
}

func checkCursor(t *testing.T, tr *btree.Tree, recs []ondisk.AllocRec) {
	t.Helper()
	key := func(r ondisk.AllocRec) []byte { return agf.Key(r.StartBlock, r.BlockCount) }
	cmp := tr.Ops.CmpKey
	for i, r := range recs {
		if i > 0 && cmp(key(recs[i-1]), key(r)) >= 0 {
			t.Fatalf("%v: records out of order at %d", tr, i)
		}
	}
	// model answers for LE, EQ, GE of an arbitrary key
	model := func(k []byte) (le, ge int) {
		le, ge = -1, len(recs)
		for i, r := range recs {
			c := cmp(key(r), k)
			if c <= 0 {
				le = i
			}
			if c >= 0 && ge == len(recs) {
				ge = i
			}
		}
		return le, ge
	}
	probe := func(k []byte) {
		le, ge := model(k)
		c := tr.NewCursor()
		ok, err := c.Lookup(k, btree.LE)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (le >= 0) || (ok && ondisk.DecodeAllocRec(c.Rec()) != recs[le]) {
			t.Fatalf("%v: LE %x: got %v %v, want index %d", tr, k, ok, c.Rec(), le)
		}
		ok, err = c.Lookup(k, btree.GE)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (ge < len(recs)) || (ok && ondisk.DecodeAllocRec(c.Rec()) != recs[ge]) {
			t.Fatalf("%v: GE %x: got %v, want index %d", tr, k, ok, ge)
		}
		ok, err = c.Lookup(k, btree.EQ)
		if err != nil {
			t.Fatal(err)
		}
		if want := le >= 0 && cmp(key(recs[le]), k) == 0; ok != want {
			t.Fatalf("%v: EQ %x: got %v, want %v", tr, k, ok, want)
		}
	}
	for _, r := range recs {
		probe(key(r))
		lo := key(r)
		binary.BigEndian.PutUint32(lo[0:], r.StartBlock-1)
		probe(lo)
		hi := key(r)
		binary.BigEndian.PutUint32(hi[0:], r.StartBlock+1)
		probe(hi)
	}
	probe(agf.Key(0, 0))
	probe(agf.Key(^uint32(0), ^uint32(0)))
	// Walk backwards from the end and compare.
	c := tr.NewCursor()
	ok, err := c.Last()
	for i := len(recs) - 1; i >= 0; i-- {
		if err != nil || !ok {
			t.Fatalf("%v: Prev ended early at %d: %v", tr, i, err)
		}
		if got := ondisk.DecodeAllocRec(c.Rec()); got != recs[i] {
			t.Fatalf("%v: Prev %d: %+v, want %+v", tr, i, got, recs[i])
		}
		ok, err = c.Prev()
	}
	if ok {
		t.Fatalf("%v: Prev went past the first record", tr)
	}
}
