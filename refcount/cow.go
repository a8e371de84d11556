package refcount

import (
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
)

// Copy-on-write staging: blocks allocated for a file's COW fork are
// recorded in the COW domain (start block with bit 31 set, count 1) from
// allocation until the remap that moves them into the data fork, so that
// a crash leaves a record the next mount finds and frees
// (xfs_refcount_recover_cow_leftovers) instead of leaked space.

// AllocCow records AG blocks [agbno, agbno+length), just allocated, as a
// COW staging extent (__xfs_refcount_cow_alloc): it merges with staging
// extents that touch it. The blocks must not be staged already.
func (w *Writer) AllocCow(agbno, length uint32) error {
	if err := w.checkRange("alloc cow", agbno, length); err != nil {
		return err
	}
	wrap := func(err error) error { return fmt.Errorf("alloc cow [%d, +%d]: %w", agbno, length, err) }
	// The kernel finds an overlap only after the merges (and could merge
	// over it); look first, so that a bad caller cannot hide one.
	prev, err := w.at(agbno, true, btree.LE)
	if err != nil {
		return wrap(err)
	}
	if prev.valid && prev.cow && prev.end() > uint64(agbno) {
		return wrap(w.corrupt("staging extent %v is already there", prev))
	}
	next, err := w.at(agbno, true, btree.GE)
	if err != nil {
		return wrap(err)
	}
	if next.valid && uint64(next.start) < uint64(agbno)+uint64(length) {
		return wrap(w.corrupt("staging extent %v is already there", next))
	}
	bno, n := agbno, length
	// No record crosses the edges (none overlaps), so no split; a count
	// change of 0 merges with touching staging extents (count 1).
	if err := w.merge(&bno, &n, 0, true); err != nil {
		return wrap(err)
	}
	if n == 0 {
		return nil
	}
	if err := w.insertRec(rext{start: bno, len: n, rc: 1, cow: true, valid: true}); err != nil {
		return wrap(err)
	}
	return nil
}

// FreeCow removes AG blocks [agbno, agbno+length) from the COW staging
// records (__xfs_refcount_cow_free): a staging extent only partly inside
// is trimmed, or split in two around the range. Every block of the range
// must be staged. The blocks themselves are not freed: the caller either
// remapped them into a data fork or frees them through the Allocator.
func (w *Writer) FreeCow(agbno, length uint32) error {
	if err := w.checkRange("free cow", agbno, length); err != nil {
		return err
	}
	wrap := func(err error) error { return fmt.Errorf("free cow [%d, +%d]: %w", agbno, length, err) }
	end := uint64(agbno) + uint64(length)
	if err := w.split(agbno, true); err != nil {
		return wrap(err)
	}
	if err := w.split(uint32(end), true); err != nil {
		return wrap(err)
	}
	// No merge: a count of 0 matches no neighbour's 1. The kernel wants
	// exactly one record here; touching staging extents longer than a
	// record can hold are the only way to have more, and freeing them
	// all is what the caller asked.
	for bno := agbno; uint64(bno) < end; {
		r, err := w.at(bno, true, btree.EQ)
		if err != nil {
			return wrap(err)
		}
		if !r.valid || r.end() > end {
			return wrap(w.corrupt("block %d of the range is not staged (found %v)", bno, r))
		}
		if err := w.deleteRec(r); err != nil {
			return wrap(err)
		}
		bno += r.len
	}
	return nil
}
