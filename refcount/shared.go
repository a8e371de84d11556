package refcount

import "github.com/xfsimg/xfsimg/btree"

// Shared returns the first shared run of AG blocks inside [agbno,
// agbno+length): its start and length, clipped to the range, and ok; or
// ok false when no block of the range is shared. The run goes on across
// touching records whatever their counts (xfs_refcount_find_shared with
// find_end_of_shared), so that a writer learns at once how many blocks
// from fbno need copy-on-write, and that the blocks before fbno do not.
func (w *Writer) Shared(agbno, length uint32) (fbno, flen uint32, ok bool, err error) {
	if err := w.checkRange("find shared", agbno, length); err != nil {
		return 0, 0, false, err
	}
	end := uint64(agbno) + uint64(length)
	r, err := w.at(agbno, false, btree.LE)
	if err != nil {
		return 0, 0, false, err
	}
	if !r.valid {
		// Nothing starts at or before agbno: the first record may.
		if r, err = w.at(agbno, false, btree.GE); err != nil {
			return 0, 0, false, err
		}
	} else if r.end() <= uint64(agbno) {
		if r, err = w.step(+1); err != nil {
			return 0, 0, false, err
		}
	}
	// Staging extents sort after every shared one.
	if !r.valid || r.cow || uint64(r.start) >= end {
		return 0, 0, false, nil
	}
	fbno = max(r.start, agbno)
	last := min(r.end(), end)
	for last < end {
		if r, err = w.step(+1); err != nil {
			return 0, 0, false, err
		}
		if !r.valid || r.cow || uint64(r.start) != last {
			break
		}
		last = min(r.end(), end)
	}
	return fbno, uint32(last - uint64(fbno)), true, nil
}
