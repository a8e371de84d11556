package agf_test

import (
	"errors"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Freed space is busy for file data until the checkpoint that frees it is
// in place: not reused in the same transaction, avoided by later ones
// while anything else fits, taken after a forced checkpoint when nothing
// else does, and free for all once two checkpoints have passed. Metadata
// may reuse it at once.
func TestBusyExtents(t *testing.T) {
	img := oracle.Mkfs(t, 300<<20)
	w := openImage(t, img)
	m := newModel(t, w)
	g := w.g
	// Take all of AG 0's big free extent so that only what the test
	// frees is left there.
	views := m.check(t, w)
	longest := views[0].agf.Longest
	var all uint64
	if err := w.tx(int64(longest), func(a *agf.Allocator) error {
		fsb, n, err := a.Alloc(agf.Request{Target: g.FSB(0, 1), MinLen: longest, MaxLen: longest})
		if err != nil {
			return err
		}
		all = fsb
		return m.take(fsb, n)
	}); err != nil {
		t.Fatal(err)
	}
	e := all + 1000 // the extent the test frees: [e, e+4000)
	ckpts := func() int64 { return w.j.Stats().Checkpoints }
	if err := w.j.Checkpoint(); err != nil {
		t.Fatal(err)
	}

	// Same transaction: freed space is not reused for data, but is for
	// metadata.
	if err := w.tx(8000, func(a *agf.Allocator) error {
		if err := a.Free(e, 4000); err != nil {
			return err
		}
		m.give(e, 4000)
		fsb, _, err := a.Alloc(agf.Request{Target: e, MinLen: 1, MaxLen: 1, Exact: true})
		if err != nil || fsb != ondisk.NullFSBlock {
			t.Errorf("data reuse of this transaction's free: %d, %v", fsb, err)
		}
		fsb, n, err := a.Alloc(agf.Request{Target: e, MinLen: 1, MaxLen: 1, Exact: true, Metadata: true})
		if err != nil || fsb != e {
			t.Errorf("metadata reuse of this transaction's free: %d, %v", fsb, err)
		}
		if err := m.take(fsb, n); err != nil {
			return err
		}
		// Last, as it moves on to a higher AG.
		fsb, n, err = a.Alloc(agf.Request{Target: e, MinLen: 100, MaxLen: 100})
		if err != nil {
			return err
		}
		if g.FSBAgno(fsb) == 0 {
			t.Errorf("data allocation went into this transaction's freed space at %d", fsb)
		}
		return m.take(fsb, n)
	}); err != nil {
		t.Fatal(err)
	}
	m.check(t, w) // checkpoints
	m.exts = m.exts[:0]

	// A later transaction: the free of [f2, f2+2000) is committed but not
	// checkpointed (and the first free has not been in place for two
	// checkpoints). Exact at it misses; a request only AG 0's busy space
	// can satisfy forces a checkpoint and then gets it.
	f2 := all + 6000
	if err := w.tx(0, func(a *agf.Allocator) error {
		m.give(f2, 2000)
		return a.Free(f2, 2000)
	}); err != nil {
		t.Fatal(err)
	}
	before := ckpts()
	if err := w.tx(4000, func(a *agf.Allocator) error {
		fsb, _, err := a.Alloc(agf.Request{Target: f2, MinLen: 1, MaxLen: 1, Exact: true})
		if err != nil || fsb != ondisk.NullFSBlock {
			t.Errorf("exact data allocation on busy space: %d, %v", fsb, err)
		}
		if ckpts() != before {
			t.Errorf("exact allocation forced a checkpoint")
		}
		fsb, n, err := a.Alloc(agf.Request{Target: g.FSB(0, 500), MinLen: 1500, MaxLen: 1500})
		if err != nil {
			return err
		}
		if g.FSBAgno(fsb) != 0 || ckpts() == before {
			t.Errorf("allocation went to AG %d after %d checkpoints", g.FSBAgno(fsb), ckpts()-before)
		}
		return m.take(fsb, n)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoints %d -> %d", before, ckpts())

	// Metadata never waits: freed and reused at once, no checkpoint.
	f3 := all + 10000
	if err := w.tx(10, func(a *agf.Allocator) error {
		m.give(f3, 10)
		return a.Free(f3, 10)
	}); err != nil {
		t.Fatal(err)
	}
	before = ckpts()
	if err := w.tx(10, func(a *agf.Allocator) error {
		fsb, n, err := a.Alloc(agf.Request{Target: f3, MinLen: 10, MaxLen: 10, Exact: true, Metadata: true})
		if err != nil || fsb != f3 {
			t.Errorf("metadata on busy space: %d, %v", fsb, err)
		}
		return m.take(fsb, n)
	}); err != nil {
		t.Fatal(err)
	}
	if ckpts() != before {
		t.Errorf("metadata allocation forced a checkpoint")
	}

	// Two checkpoints settle a free: data may then take it directly.
	f4 := all + 12000
	if err := w.tx(0, func(a *agf.Allocator) error {
		m.give(f4, 5)
		return a.Free(f4, 5)
	}); err != nil {
		t.Fatal(err)
	}
	// The busy extent is dated when a later transaction first sees it.
	if err := w.tx(0, func(a *agf.Allocator) error {
		fsb, _, err := a.Alloc(agf.Request{Target: f4, MinLen: 5, MaxLen: 5, Exact: true})
		if fsb != ondisk.NullFSBlock || err != nil {
			t.Errorf("exact data allocation on a fresh free: %d, %v", fsb, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		bumpCheckpoint(t, w)
	}
	if err := w.tx(5, func(a *agf.Allocator) error {
		fsb, n, err := a.Alloc(agf.Request{Target: f4, MinLen: 5, MaxLen: 5, Exact: true})
		if err != nil || fsb != f4 {
			t.Errorf("exact data allocation after two checkpoints: %d, %v", fsb, err)
			return err
		}
		return m.take(fsb, n)
	}); err != nil {
		t.Fatal(err)
	}
	m.check(t, w)
	w.close()
	oracle.RequireRepairClean(t, img)
}

// bumpCheckpoint commits a small change and checkpoints it, so that the
// journal's checkpoint count moves.
func bumpCheckpoint(t *testing.T, w *wfs) {
	t.Helper()
	tx, err := w.j.Begin(log.Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.ReadBuf(0, w.g.SectSize, log.BufSB)
	if err != nil {
		t.Fatal(err)
	}
	tx.LogBuf(b, 0, 128)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.j.Checkpoint(); err != nil && !errors.Is(err, ondisk.ErrNoSpace) {
		t.Fatal(err)
	}
}
