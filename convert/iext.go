package convert

import (
	"github.com/google/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The in-core extent tree's delayed-allocation records: file ranges that
// have blocks reserved but none allocated. They never reach the disk (the
// kernel keeps them in its iext tree with a "null" start block holding the
// indirect reservation); real extents stay in the on-disk fork, read
// through transactions. The two never overlap.

// dext is one delayed extent: file blocks [off, off+len) and indlen blocks
// reserved for the BMBT blocks converting it may need.
type dext struct {
	off, len, indlen uint64
}

func (d dext) end() uint64 { return d.off + d.len }

// dtree holds an inode's delayed extents, ordered by offset. The caller
// holds the inode lock.
type dtree struct {
	t      *btree.BTreeG[dext]
	blocks uint64 // sum of len: the kernel's i_delayed_blks
}

func newDtree() *dtree {
	return &dtree{t: btree.NewG(16, func(a, b dext) bool { return a.off < b.off })}
}

// find returns the delayed extent holding block off.
func (d *dtree) find(off uint64) (dext, bool) {
	var got dext
	ok := false
	d.t.DescendLessOrEqual(dext{off: off}, func(x dext) bool {
		got, ok = x, x.end() > off
		return false
	})
	return got, ok
}

// next returns the first delayed extent ending after off.
func (d *dtree) next(off uint64) (dext, bool) {
	if x, ok := d.find(off); ok {
		return x, true
	}
	var got dext
	ok := false
	d.t.AscendGreaterOrEqual(dext{off: off}, func(x dext) bool {
		got, ok = x, true
		return false
	})
	return got, ok
}

// prev returns the last delayed extent starting before off.
func (d *dtree) prev(off uint64) (dext, bool) {
	if off == 0 {
		return dext{}, false
	}
	var got dext
	ok := false
	d.t.DescendLessOrEqual(dext{off: off - 1}, func(x dext) bool {
		got, ok = x, true
		return false
	})
	return got, ok
}

// each calls fn for the delayed extents overlapping [lo, hi) in order.
func (d *dtree) each(lo, hi uint64, fn func(dext) bool) {
	if x, ok := d.find(lo); ok {
		if !fn(x) {
			return
		}
		lo = x.end()
	}
	d.t.AscendRange(dext{off: lo}, dext{off: hi}, fn)
}

func (d *dtree) put(x dext) {
	d.t.ReplaceOrInsert(x)
	d.blocks += x.len
}

func (d *dtree) del(x dext) {
	d.t.Delete(x)
	d.blocks -= x.len
}

// add inserts a new delayed extent, which must not overlap any, merging it
// with delayed neighbours that touch it as xfs_bmap_add_extent_hole_delay
// does: the merged indirect reservation is the worst case for the merged
// length, capped at what the pieces held (the rest is returned).
func (d *dtree) add(x dext, worst func(uint64) uint64) (returned uint64) {
	sum := x.indlen
	if l, ok := d.prev(x.off); ok && l.end() == x.off && l.len+x.len <= ondisk.MaxExtLen {
		d.del(l)
		x.off, x.len = l.off, l.len+x.len
		sum += l.indlen
	}
	if r, ok := d.find(x.end()); ok && r.off == x.end() && r.len+x.len <= ondisk.MaxExtLen {
		d.del(r)
		x.len += r.len
		sum += r.indlen
	}
	x.indlen = min(worst(x.len), sum)
	d.put(x)
	return sum - x.indlen
}

// remove takes file blocks [lo, hi) out of the delayed extents, splitting
// those that straddle an edge, and returns the blocks freed: data blocks
// plus the indirect reservations no longer needed. A split shares the old
// reservation between the pieces as xfs_bmap_del_extent_delay does.
func (d *dtree) remove(lo, hi uint64, worst func(uint64) uint64) (dataFreed, indFreed uint64) {
	var hit []dext
	d.each(lo, hi, func(x dext) bool {
		hit = append(hit, x)
		return true
	})
	for _, x := range hit {
		d.del(x)
		a, b := max(lo, x.off), min(hi, x.end())
		dataFreed += b - a
		var pieces []dext
		if x.off < a {
			pieces = append(pieces, dext{off: x.off, len: a - x.off})
		}
		if b < x.end() {
			pieces = append(pieces, dext{off: b, len: x.end() - b})
		}
		kept := shareIndlen(x.indlen, pieces, worst)
		for _, p := range pieces {
			d.put(p)
		}
		indFreed += x.indlen - kept
	}
	return dataFreed, indFreed
}

// shareIndlen gives each piece the worst case for its length out of
// total, shrinking them fairly when total is short (xfs_bmap_split_indlen),
// and returns what they took.
func shareIndlen(total uint64, pieces []dext, worst func(uint64) uint64) uint64 {
	var want uint64
	for i := range pieces {
		pieces[i].indlen = worst(pieces[i].len)
		want += pieces[i].indlen
	}
	// Take from the pieces in turn, one block at a time, until the sum
	// fits; a piece keeps at least one block while it can.
	for want > total {
		progress := false
		for i := range pieces {
			if want > total && pieces[i].indlen > 1 {
				pieces[i].indlen--
				want--
				progress = true
			}
		}
		if !progress {
			for i := range pieces {
				if want > total && pieces[i].indlen > 0 {
					pieces[i].indlen--
					want--
				}
			}
		}
	}
	return want
}
