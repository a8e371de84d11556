package refcount

import (
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
)

// Adjust changes the reference count of AG blocks [agbno, agbno+length)
// by delta, +1 when one more file maps them (reflink) or -1 when one
// fewer does (unmap, punch, truncate of a shared extent), as
// xfs_refcount_adjust: records crossing the edges are split, the edges
// merge with neighbours of equal count, records reaching 1 go (a count of
// 1 is implied by no record), blocks without a record become a record of
// count 2 on +1.
//
// On -1, blocks without a record (count 1: the caller was their only
// owner) reach 0. Adjust returns them, in block order and coalesced, and
// does not free them: the caller frees them through the transaction's
// agf.Allocator (Free(g.FSB(agno, e.Start), e.Len)) after Adjust, as the
// kernel queues them as deferred frees. Freeing here would take the
// decision of where and when (busy extents, AG lock order with the
// caller's other frees) away from the caller.
//
// The whole range is done in the caller's transaction (the kernel may
// continue a long adjustment in a follow-up transaction); the caller's
// reservation must cover the tree's splits.
func (w *Writer) Adjust(agbno, length uint32, delta int) ([]Extent, error) {
	if delta != 1 && delta != -1 {
		return nil, w.errorf("adjust [%d, +%d] by %d: only +1 and -1", agbno, length, delta)
	}
	if err := w.checkRange("adjust", agbno, length); err != nil {
		return nil, err
	}
	wrap := func(err error) error {
		return fmt.Errorf("adjust [%d, +%d] by %+d: %w", agbno, length, delta, err)
	}
	if err := w.split(agbno, false); err != nil {
		return nil, wrap(err)
	}
	if err := w.split(agbno+length, false); err != nil {
		return nil, wrap(err)
	}
	bno, n := agbno, length
	if err := w.merge(&bno, &n, delta, false); err != nil {
		return nil, wrap(err)
	}
	freed, err := w.adjustMiddle(bno, n, delta)
	if err != nil {
		return nil, wrap(err)
	}
	return freed, nil
}

// adjustMiddle adjusts the records inside the range and fills its gaps
// (xfs_refcount_adjust_extents): once the edges are split no record
// crosses the range's end.
func (w *Writer) adjustMiddle(bno, n uint32, adj int) ([]Extent, error) {
	var freed []Extent
	free := func(s, l uint32) {
		if k := len(freed) - 1; k >= 0 && freed[k].Start+freed[k].Len == s {
			freed[k].Len += l
			return
		}
		freed = append(freed, Extent{s, l})
	}
	for n > 0 {
		ext, err := w.at(bno, false, btree.GE)
		if err != nil {
			return nil, err
		}
		if !ext.valid || ext.cow {
			// Nothing shared after bno: the rest is one gap.
			ext = rext{start: bno + n}
		}
		if ext.start != bno {
			// Blocks without a record count 1.
			gap := synth(bno, min(n, ext.start-bno), false)
			gap.rc = uint32(1 + adj)
			if gap.rc > 0 {
				gap.synth = false
				if err := w.insertRec(gap); err != nil {
					return nil, err
				}
			} else {
				free(gap.start, gap.len)
			}
			bno += gap.len
			n -= gap.len
			continue
		}
		if ext.len > n {
			return nil, w.corrupt("record %v crosses the end %d of the adjusted range", ext, bno+n)
		}
		if ext.rc != MaxRefcount {
			nr := ext
			nr.rc = newCount(ext, adj)
			switch {
			case nr.rc > 1:
				err = w.updateRec(ext, nr)
			case nr.rc == 1:
				err = w.deleteRec(ext)
			default:
				// Only a record counting 1 gets here, and get
				// refuses those; kept for the kernel's shape.
				err = w.deleteRec(ext)
				free(ext.start, ext.len)
			}
			if err != nil {
				return nil, err
			}
		}
		bno += ext.len
		n -= ext.len
	}
	return freed, nil
}
