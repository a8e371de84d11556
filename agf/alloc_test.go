package agf_test

import (
	"errors"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// A few allocations of each kind on a fresh file system, freed again,
// checked against the model and xfs_repair.
func TestAllocFreeSmoke(t *testing.T) {
	img := oracle.Mkfs(t, 300<<20)
	w := openImage(t, img)
	m := newModel(t, w)
	g := w.g
	var got []ext
	err := w.tx(1000, func(a *agf.Allocator) error {
		for _, req := range []agf.Request{
			{Target: g.FSB(0, 100), MinLen: 1, MaxLen: 10},
			{Target: g.FSB(0, 5000), MinLen: 5, MaxLen: 20, Exact: true},
			{Target: g.FSB(1, 0), MinLen: 30, MaxLen: 30},
			{Target: g.FSB(2, 700), MinLen: 8, MaxLen: 64, Align: 16},
			{Target: g.FSB(3, 800), MinLen: 1, MaxLen: 1, Metadata: true},
		} {
			fsb, n, err := a.Alloc(req)
			if err != nil {
				return err
			}
			t.Logf("%+v -> ag %d block %d len %d", req, g.FSBAgno(fsb), g.FSBAgbno(fsb), n)
			if err := m.take(fsb, n); err != nil {
				t.Fatal(err)
			}
			got = append(got, ext{fsb, n})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.check(t, w)
	if err := w.tx(0, func(a *agf.Allocator) error {
		for _, e := range got {
			if err := a.Free(e.fsb, e.n); err != nil {
				return err
			}
			m.give(e.fsb, e.n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.check(t, w)
	w.close()
	oracle.RequireRepairClean(t, img)
}

func TestAllocTooLarge(t *testing.T) {
	img := oracle.Mkfs(t, 300<<20)
	w := openImage(t, img)
	err := w.tx(1<<20, func(a *agf.Allocator) error {
		_, _, err := a.Alloc(agf.Request{Target: w.g.FSB(0, 100), MinLen: 30000, MaxLen: 30000})
		return err
	})
	if !errors.Is(err, ondisk.ErrNoSpace) {
		t.Fatalf("got %v, want ErrNoSpace", err)
	}
	w.close()
}

// One allocation never exceeds what an extent record can hold, even in an
// AG with more free space in one piece.
func TestAllocCapsAtMaxExtLen(t *testing.T) {
	img := oracle.Mkfs(t, 40<<30, "-d", "agcount=2") // 5M-block AGs, sparse
	w := openImage(t, img)
	m := newModel(t, w)
	g := w.g
	if err := w.tx(w.j.FreeBlocks()-64, func(a *agf.Allocator) error {
		for _, req := range []agf.Request{
			{Target: g.FSB(1, 100), MinLen: 1, MaxLen: ^uint32(0)},
			{Target: g.FSB(1, 0), MinLen: ondisk.MaxExtLen, MaxLen: ondisk.MaxExtLen + 5},
		} {
			fsb, n, err := a.Alloc(req)
			if err != nil {
				return err
			}
			if n != ondisk.MaxExtLen {
				t.Errorf("%+v: %d blocks, want %d", req, n, ondisk.MaxExtLen)
			}
			if err := m.take(fsb, n); err != nil {
				return err
			}
		}
		_, _, err := a.Alloc(agf.Request{Target: g.FSB(0, 0), MinLen: ondisk.MaxExtLen + 1, MaxLen: ondisk.MaxExtLen + 1})
		if !errors.Is(err, ondisk.ErrNoSpace) {
			t.Errorf("minlen above the extent limit: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.check(t, w)
	w.close()
	oracle.RequireRepairClean(t, img)
}
