package refcount_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// COW staging extents written by us are what the kernel expects to find
// after a crash: on mount it frees them (xfs_reflink_recover_cow), and the
// space comes back. Adjacent staging extents merge; freeing the middle of
// one splits it.
func TestCowStagingKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img, _, _ := kernelSetup(t, "true")
	const agno = 1 // an AG without files: the only change is ours
	free0 := dbAGF(t, img, agno)["freeblks"]

	w := openImage(t, img)
	g := w.g
	var x0, y0 uint32
	w.do(func(x *txn) error {
		alloc := func(target uint32, n uint32) (uint32, error) {
			fsb, got, err := x.al.Alloc(agf.Request{Target: g.FSB(agno, target), MinLen: n, MaxLen: n, Align: 1})
			if err != nil {
				return 0, err
			}
			if got != n || g.FSBAgno(fsb) != agno {
				t.Fatalf("alloc of %d blocks in ag %d gave %d at %d", n, agno, got, fsb)
			}
			return g.FSBAgbno(fsb), nil
		}
		var err error
		if x0, err = alloc(1000, 16); err != nil {
			return err
		}
		if y0, err = alloc(5000, 8); err != nil {
			return err
		}
		rc := x.rc(agno)
		// Two touching staging extents become one record.
		if err := rc.AllocCow(x0, 8); err != nil {
			return err
		}
		if err := rc.AllocCow(x0+8, 8); err != nil {
			return err
		}
		if err := rc.AllocCow(y0, 8); err != nil {
			return err
		}
		// Staged blocks are not shared.
		if _, _, ok, err := rc.Shared(x0, 16); err != nil || ok {
			t.Errorf("Shared over staging extents: ok %v, err %v", ok, err)
		}
		// Staging the same blocks twice is refused.
		if err := rc.AllocCow(x0+15, 2); err == nil {
			t.Errorf("AllocCow over a staging extent succeeded")
		}
		return nil
	})
	// The refused AllocCow left its transaction alone: a new one frees
	// the middle of the first extent (trim into two) and its blocks.
	w.do(func(x *txn) error {
		if err := x.rc(agno).FreeCow(x0+4, 4); err != nil {
			return err
		}
		return x.al.Free(g.FSB(agno, x0+4), 4)
	})
	w.close()

	cow := func(s, n uint32) ondisk.RefcountRec {
		return ondisk.RefcountRec{StartBlock: s | ondisk.RefcountCowFlag, BlockCount: n, RefCount: 1}
	}
	want := []ondisk.RefcountRec{cow(x0, 4), cow(x0+8, 8), cow(y0, 8)}
	slices.SortFunc(want, func(a, b ondisk.RefcountRec) int { return int(a.StartBlock>>1) - int(b.StartBlock>>1) })
	if got := dbRefcounts(t, img, agno); !slices.Equal(got, want) {
		t.Fatalf("xfs_db refcount records\n got %s\nwant %s", recsString(got), recsString(want))
	}
	if got := dbAGF(t, img, agno)["freeblks"]; got != free0-20 {
		t.Errorf("agf freeblks %d with 20 blocks staged, want %d", got, free0-20)
	}
	// xfs_repair -n reports staging extents as leftovers (that is what
	// they are once nothing runs); anything else would be a problem.
	if out, ok := oracle.Repair(t, img); !ok {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "leftover CoW extent") {
				continue
			}
			if strings.Contains(strings.ToLower(l), "would") || strings.Contains(l, "bad") || strings.Contains(l, "error") {
				t.Errorf("xfs_repair -n: %s", l)
			}
		}
		if n := strings.Count(out, "leftover CoW extent"); n != len(want) {
			t.Errorf("xfs_repair -n reports %d leftover CoW extents, want %d:\n%s", n, len(want), out)
		}
	}
	checktest.RequireClean(t, img)

	// The kernel frees leftover staging extents when it recovers a
	// dirty log (the crash they exist for; a clean mount of 6.x leaves
	// them). Stage one more block in a transaction that only reaches
	// the log, and crash.
	w = openImage(t, img)
	w.do(func(x *txn) error {
		fsb, n, err := x.al.Alloc(agf.Request{Target: g.FSB(agno, 9000), MinLen: 1, MaxLen: 1, Align: 1})
		if err != nil || n != 1 {
			return fmt.Errorf("alloc: %d blocks, %v", n, err)
		}
		return x.rc(agno).AllocCow(g.FSBAgbno(fsb), 1)
	})
	w.crash()
	if got := dbAGF(t, img, agno)["freeblks"]; got != free0-21 {
		t.Errorf("agf freeblks %d with 21 blocks staged, want %d", got, free0-21)
	}
	dir, _ := oracle.Mount(t, img)
	oracle.Unmount(t, dir)
	if got := dbRefcounts(t, img, agno); len(got) != 0 {
		t.Errorf("after the kernel's mount: records %s, want none", recsString(got))
	}
	if got := dbAGF(t, img, agno)["freeblks"]; got != free0 {
		t.Errorf("agf freeblks %d after the kernel's COW recovery, want %d", got, free0)
	}
	oracle.RequireRepairClean(t, img)
	checktest.RequireClean(t, img)
}

// Shared finds the first shared run of a range, across touching records,
// on the kernel-made layout of the Adjust tests.
func TestSharedKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img, inos, _ := kernelSetup(t, adjustSetup, "a", "e")
	w := openImage(t, img)
	g := w.g
	a, e := w.extents(inos["a"])[0].StartBlock, w.extents(inos["e"])[0].StartBlock
	agno, s, tt := g.FSBAgno(a), g.FSBAgbno(a), g.FSBAgbno(e)
	x := w.begin()
	defer x.tx.Cancel()
	rc := x.rc(agno)
	for _, c := range []struct {
		name       string
		bno, n     uint32
		fbno, flen uint32
		shared     bool
	}{
		{"before", s - 10, 5, 0, 0, false},
		{"into the first record", s - 2, 4, s, 2, true},
		{"across touching records", s + 2, 100, s + 2, 62, true},
		{"inside one record", s + 5, 2, s + 5, 2, true},
		{"last block", s + 63, 1, s + 63, 1, true},
		{"after", s + 64, 10, 0, 0, false},
		{"unshared file", tt, 64, 0, 0, false},
	} {
		fbno, flen, ok, err := rc.Shared(c.bno, c.n)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ok != c.shared || ok && (fbno != c.fbno || flen != c.flen) {
			t.Errorf("%s: Shared(%d, %d) = %d, %d, %v; want %d, %d, %v", c.name, c.bno, c.n, fbno, flen, ok, c.fbno, c.flen, c.shared)
		}
	}
	// Refusals (the transaction is cancelled).
	if _, err := rc.Adjust(s, 4, 2); err == nil {
		t.Errorf("Adjust by 2 succeeded")
	}
	if _, err := rc.Adjust(0, 4, 1); err == nil {
		t.Errorf("Adjust of the AG headers succeeded")
	}
	if err := rc.FreeCow(s, 4); !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("FreeCow of blocks that are not staged: %v, want ErrCorrupt", err)
	}
}
