package refcount

import (
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The edge work every change of a range does first, as xfs_refcount.c:
// split the records that cross either end of the range, then merge the
// range's edge pieces with the records just outside it when their counts
// will be equal afterwards. Both work within one domain (shared or COW).

// split cuts the record of the domain that contains block at, if it
// starts before at (xfs_refcount_split_extent): the record keeps [at,
// end) under a key moved forward and the piece before at is inserted.
func (w *Writer) split(at uint32, cow bool) error {
	r, err := w.at(at, cow, btree.LE)
	if err != nil || !r.valid || r.cow != cow || r.start == at || r.end() <= uint64(at) {
		return err
	}
	right := r
	right.start, right.len = at, uint32(r.end()-uint64(at))
	if err := w.updateRec(r, right); err != nil {
		return err
	}
	left := r
	left.len = at - r.start
	return w.insertRec(left)
}

// findLeft returns the record ending at bno (left) and the first piece of
// the range (cleft): the record starting at bno, or the implied refcount-1
// blocks up to the next record (xfs_refcount_find_left_extents). Both are
// invalid when no record of the domain ends at bno.
func (w *Writer) findLeft(bno, n uint32, cow bool) (left, cleft rext, err error) {
	if bno == 0 {
		return
	}
	t, err := w.at(bno-1, cow, btree.LE)
	if err != nil || !t.valid || t.cow != cow || t.end() != uint64(bno) {
		return rext{}, rext{}, err
	}
	left = t
	if t, err = w.step(+1); err != nil {
		return rext{}, rext{}, err
	}
	switch {
	case !t.valid || t.cow != cow:
		cleft = synth(bno, n, cow)
	case t.start == bno:
		cleft = t
	default:
		cleft = synth(bno, min(n, t.start-bno), cow)
	}
	return left, cleft, nil
}

// findRight is findLeft's mirror at the range's end: the record starting
// at bno+n (right) and the last piece of the range (cright)
// (xfs_refcount_find_right_extents).
func (w *Writer) findRight(bno, n uint32, cow bool) (right, cright rext, err error) {
	end := bno + n
	t, err := w.at(end, cow, btree.GE)
	if err != nil || !t.valid || t.cow != cow || t.start != end {
		return rext{}, rext{}, err
	}
	right = t
	if t, err = w.step(-1); err != nil {
		return rext{}, rext{}, err
	}
	switch {
	case !t.valid || t.cow != cow:
		cright = synth(bno, n, cow)
	case t.end() == uint64(end):
		cright = t
	default:
		s := max(bno, uint32(t.end()))
		cright = synth(s, end-s, cow)
	}
	return right, cright, nil
}

// newCount is what a piece's count becomes (xfs_refc_merge_refcount): a
// pinned count stays.
func newCount(r rext, adj int) uint32 {
	if r.rc == MaxRefcount {
		return MaxRefcount
	}
	return uint32(int64(r.rc) + int64(adj))
}

// merge joins the range's edge pieces with the neighbours whose count
// they will have (xfs_refcount_merge_extents): all of the range into both
// neighbours when it is one piece (center), else its first piece into
// the left neighbour and its last into the right one. The range shrinks
// by what was merged; what is left is for the caller to adjust.
func (w *Writer) merge(bno, n *uint32, adj int, cow bool) error {
	left, cleft, err := w.findLeft(*bno, *n, cow)
	if err != nil {
		return err
	}
	right, cright, err := w.findRight(*bno, *n, cow)
	if err != nil {
		return err
	}
	if !left.valid && !right.valid {
		return nil
	}
	cequal := cleft.valid && cright.valid && cleft.start == cright.start && cleft.len == cright.len
	if left.valid && right.valid && cequal {
		nc := newCount(cleft, adj)
		if ulen := uint64(left.len) + uint64(cleft.len) + uint64(right.len); left.rc == nc && right.rc == nc && ulen < maxLen {
			// One record for left, the range and right.
			if !cleft.synth {
				if err := w.deleteRec(cleft); err != nil {
					return err
				}
			}
			if err := w.deleteRec(right); err != nil {
				return err
			}
			nl := left
			nl.len = uint32(ulen)
			if err := w.updateRec(left, nl); err != nil {
				return err
			}
			*n = 0
			return nil
		}
	}
	if left.valid && cleft.valid && left.rc == newCount(cleft, adj) && uint64(left.len)+uint64(cleft.len) < maxLen {
		if !cleft.synth {
			if err := w.deleteRec(cleft); err != nil {
				return err
			}
		}
		nl := left
		nl.len += cleft.len
		if err := w.updateRec(left, nl); err != nil {
			return err
		}
		*bno += cleft.len
		*n -= cleft.len
		if cequal {
			// cright was cleft: nothing is left to merge on the right.
			return nil
		}
	}
	if right.valid && cright.valid && right.rc == newCount(cright, adj) && uint64(right.len)+uint64(cright.len) < maxLen {
		if !cright.synth {
			if err := w.deleteRec(cright); err != nil {
				return err
			}
		}
		nr := right
		nr.start -= cright.len
		nr.len += cright.len
		if err := w.updateRec(right, nr); err != nil {
			return err
		}
		*n -= cright.len
	}
	return nil
}

// corrupt reports a tree that contradicts what the operation found a step
// earlier.
func (w *Writer) corrupt(format string, args ...any) error {
	return w.fail(ondisk.Corruptf("agf %d: refcountbt: "+format, append([]any{w.agno}, args...)...))
}
