package refcount

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Record-level access for the write side: records in memory as the kernel's
// xfs_refcount_irec (start without the COW flag, the domain apart), and
// lookups, inserts, updates and deletes through the engine, one cursor per
// Writer as the kernel keeps one per intent.

// MaxRefcount is a count that never changes again (MAXREFCOUNT): a record
// that reached it is pinned there.
const MaxRefcount = ^uint32(0)

// maxLen bounds a merged record's length (XFS_REFC_LEN_MAX).
const maxLen = uint64(^uint32(0))

// Extent is a run of blocks of one AG.
type Extent struct {
	Start, Len uint32
}

// rext is a refcount record in memory. A synthesized one stands for blocks
// without a record (refcount 1 implied) and is never in the tree.
type rext struct {
	start, len, rc uint32
	cow            bool
	synth          bool
	valid          bool
}

func (r rext) end() uint64 { return uint64(r.start) + uint64(r.len) }

func (r rext) String() string {
	d := ""
	if r.cow {
		d = "cow "
	}
	return fmt.Sprintf("%s[%d, +%d] refcount %d", d, r.start, r.len, r.rc)
}

func (r rext) encode() []byte {
	b := make([]byte, ondisk.RefcountRecSize)
	start := r.start
	if r.cow {
		start |= ondisk.RefcountCowFlag
	}
	ondisk.RefcountRec{StartBlock: start, BlockCount: r.len, RefCount: r.rc}.Encode(b)
	return b
}

func synth(start, n uint32, cow bool) rext {
	return rext{start: start, len: n, rc: 1, cow: cow, synth: true, valid: true}
}

// lookup positions the cursor by (start, domain) and reports whether a
// record satisfying mode exists.
func (w *Writer) lookup(start uint32, cow bool, mode btree.LookupMode) (bool, error) {
	ok, err := w.cur().Lookup(Key(start, cow), mode)
	if err != nil {
		return false, w.fail(err)
	}
	return ok, nil
}

func (w *Writer) cur() *btree.Cursor {
	if w.c == nil {
		w.c = w.tree.NewCursor()
	}
	return w.c
}

// get decodes and checks the record under the cursor (xfs_refcount_get_rec
// with xfs_refcount_check_irec): inside the AG, a shared record counting
// at least 2, a staging record exactly 1.
func (w *Writer) get() (rext, error) {
	c := w.cur()
	if !c.Valid() {
		return rext{}, nil
	}
	d := ondisk.DecodeRefcountRec(c.Rec())
	r := rext{start: d.AGBlock(), len: d.BlockCount, rc: d.RefCount, cow: d.Cow(), valid: true}
	switch {
	case r.len == 0 || r.start <= ondisk.AGFLBlock(w.g) || r.end() > uint64(w.hold.AGF().Length):
		return rext{}, w.fail(ondisk.Corruptf("agf %d: refcountbt: record %v is not a run of blocks of the AG", w.agno, r))
	case r.cow && r.rc != 1, !r.cow && r.rc < 2:
		return rext{}, w.fail(ondisk.Corruptf("agf %d: refcountbt: record %v has a bad count for its domain", w.agno, r))
	}
	return r, nil
}

// step moves the cursor to the next (dir > 0) or previous record and
// returns it, or an invalid rext at either end.
func (w *Writer) step(dir int) (rext, error) {
	var ok bool
	var err error
	if dir > 0 {
		ok, err = w.cur().Next()
	} else {
		ok, err = w.cur().Prev()
	}
	if err != nil {
		return rext{}, w.fail(err)
	}
	if !ok {
		return rext{}, nil
	}
	return w.get()
}

// at returns the record a lookup found, or an invalid rext.
func (w *Writer) at(start uint32, cow bool, mode btree.LookupMode) (rext, error) {
	ok, err := w.lookup(start, cow, mode)
	if err != nil || !ok {
		return rext{}, err
	}
	return w.get()
}

// find positions the cursor on exactly r; anything else is corruption
// (an earlier step of the same operation read it).
func (w *Writer) find(r rext) error {
	got, err := w.at(r.start, r.cow, btree.EQ)
	if err != nil {
		return err
	}
	if !got.valid || got.len != r.len || got.rc != r.rc {
		return w.fail(ondisk.Corruptf("agf %d: refcountbt: no record %v (found %v)", w.agno, r, got))
	}
	return nil
}

func (w *Writer) insertRec(r rext) error {
	if err := w.cur().Insert(r.encode()); err != nil {
		if errors.Is(err, btree.ErrExists) {
			err = ondisk.Corruptf("%v", err)
		}
		return w.fail(w.errorf("insert %v: %w", r, err))
	}
	return nil
}

func (w *Writer) deleteRec(r rext) error {
	if err := w.find(r); err != nil {
		return err
	}
	if err := w.cur().Delete(); err != nil {
		return w.fail(w.errorf("delete %v: %w", r, err))
	}
	return nil
}

// updateRec replaces old by nr; nr's start may move only within old's
// place in the key order.
func (w *Writer) updateRec(old, nr rext) error {
	if err := w.find(old); err != nil {
		return err
	}
	if err := w.cur().Update(nr.encode()); err != nil {
		return w.fail(w.errorf("update %v to %v: %w", old, nr, err))
	}
	return nil
}

// checkRange refuses a range that is not inside the AG's data blocks.
func (w *Writer) checkRange(op string, agbno, n uint32) error {
	if w.err != nil {
		return w.err
	}
	if n == 0 || agbno <= ondisk.AGFLBlock(w.g) || uint64(agbno)+uint64(n) > uint64(w.hold.AGF().Length) ||
		agbno&ondisk.RefcountCowFlag != 0 {
		return w.errorf("%s [%d, +%d]: not a run of the AG's data blocks", op, agbno, n)
	}
	return nil
}
