package refcount_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// A refcount btree of thousands of records, made by the kernel, shrinks
// back to one leaf under our merges and joins; then our splits grow it to
// two levels again, and our deletes empty it. Each step is checked by
// xfs_db (records, level, block count), xfs_repair -n and xfsimg check,
// and at the end the kernel reads the files.
func TestLevelsKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	const n = 4096 // blocks of a
	var sb strings.Builder
	sb.WriteString("xfs_io -f -c 'pwrite -S 0x61 -b 1m 0 16m' -c fsync $M/a >/dev/null\n")
	sb.WriteString("cp --reflink=always $M/a $M/b\n")
	sb.WriteString("xfs_io -f -c 'truncate 16m'")
	for i := 0; i < n; i += 2 {
		fmt.Fprintf(&sb, " -c \"reflink $M/a %d %d 4096\"", i*4096, i*4096)
	}
	sb.WriteString(" $M/c >/dev/null\n")
	files := []string{"a", "b", "c"}
	img, inos, data := kernelSetup(t, sb.String(), files...)

	w := openImage(t, img)
	g := w.g
	ext := w.extents(inos["a"])
	if len(ext) != 1 || ext[0].BlockCount != n {
		t.Fatalf("a: want one extent of %d blocks, have %v", n, ext)
	}
	agno, s := g.FSBAgno(ext[0].StartBlock), g.FSBAgbno(ext[0].StartBlock)
	w.close()

	// expect checks the tree after a step against xfs_db and the checkers.
	expect := func(step string, want []ondisk.RefcountRec, minLevel, maxLevel uint64) {
		t.Helper()
		got := dbRefcounts(t, img, agno)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: xfs_db has %d records, want %d; first got %s", step, len(got), len(want), recsString(got[:min(len(got), 4)]))
		}
		f := dbAGF(t, img, agno)
		if lv := f["refcntlevel"]; lv < minLevel || lv > maxLevel {
			t.Errorf("%s: refcntlevel %d, want %d..%d", step, lv, minLevel, maxLevel)
		}
		t.Logf("%s: %d records, refcntlevel %d, refcntblocks %d", step, len(got), f["refcntlevel"], f["refcntblocks"])
		oracle.RequireRepairClean(t, img)
		checktest.RequireClean(t, img)
	}
	var kernelMade []ondisk.RefcountRec
	for i := uint32(0); i < n; i++ {
		kernelMade = append(kernelMade, ondisk.RefcountRec{StartBlock: s + i, BlockCount: 1, RefCount: 3 - i%2})
	}
	expect("kernel-made", kernelMade, 2, 2)

	// unmap runs step's ranges of file f, 256 to a transaction.
	unmap := func(f string, ranges [][2]uint64) {
		w := openImage(t, img)
		for len(ranges) > 0 {
			k := min(len(ranges), 256)
			w.do(func(x *txn) error { return x.unmapRanges(inos[f], ranges[:k]) })
			ranges = ranges[k:]
		}
		w.close()
	}
	every := func(first uint64) (r [][2]uint64) {
		for i := first; i < n; i += 2 {
			r = append(r, [2]uint64{i, 1})
		}
		return r
	}
	unmap("c", every(0))
	expect("c unmapped: merged into one record", []ondisk.RefcountRec{{StartBlock: s, BlockCount: n, RefCount: 2}}, 1, 1)
	if b := dbAGF(t, img, agno)["refcntblocks"]; b != 1 {
		t.Errorf("refcntblocks %d after the shrink, want 1", b)
	}

	unmap("b", every(1))
	var split []ondisk.RefcountRec
	for i := uint32(0); i < n; i += 2 {
		split = append(split, ondisk.RefcountRec{StartBlock: s + i, BlockCount: 1, RefCount: 2})
	}
	expect("odd blocks of b unmapped: split into leaves", split, 2, 2)

	unmap("b", every(0))
	expect("b unmapped: empty tree", nil, 1, 1)
	if b := dbAGF(t, img, agno)["refcntblocks"]; b != 1 {
		t.Errorf("refcntblocks %d at the end, want 1", b)
	}

	got := kernelRead(t, img, files...)
	sameBytes(t, "kernel read of a", got["a"], data["a"])
	sameBytes(t, "kernel read of b", got["b"], make([]byte, len(data["b"])))
	sameBytes(t, "kernel read of c", got["c"], make([]byte, len(data["c"])))
}
