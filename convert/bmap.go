package convert

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Where and how much to allocate for a file extent, as the kernel's
// xfs_bmap_btalloc does for a file without stripe alignment or extent size
// hint: the target is the inode's block moved next to the neighbouring
// extents (xfs_bmap_adjacent); the minimum length is the longest free
// extent seen scanning the AGs from the target's, capped at the request
// (xfs_bmap_btalloc_select_lengths); the allocator then looks near the
// target in its AG and by size in the others (start_ag), and as a last
// resort takes anything (the low-space fallback).

// allocGapUnits is XFS_ALLOC_GAP_UNITS: how many times the request a gap
// to a neighbour may be and still be followed on disk.
const allocGapUnits = 4

// inodeFSB is the file system block holding inode ino (XFS_INO_TO_FSB).
func (s *Session) inodeFSB(ino uint64) uint64 {
	return s.g.FSB(s.g.InoAgno(ino), s.g.AginoAgbno(s.g.InoAgino(ino)))
}

// validNear is the kernel's ISVALID(x, y) for a data device: x is a block
// of y's AG below sb_agblocks.
func (s *Session) validNear(x, y uint64) bool {
	g := s.g
	return x>>g.AGBlkLog == y>>g.AGBlkLog && g.FSBAgno(x) < g.AGCount && g.FSBAgbno(x) < g.AGBlocks
}

// adjacent is xfs_bmap_adjacent: the target for an allocation of length
// blocks at file block off, between prev (if any) and next (if !eof).
func (s *Session) adjacent(target uint64, off, length uint64, prev *ondisk.Extent, next *ondisk.Extent) uint64 {
	eof := next == nil
	if eof && prev != nil {
		blk := prev.StartBlock + prev.BlockCount
		if s.validNear(blk, prev.StartBlock) {
			if adj := off - prev.End(); adj != 0 && s.validNear(blk+adj, prev.StartBlock) {
				blk += adj
			}
			return blk
		}
	}
	if eof {
		return target
	}
	const null = ^uint64(0)
	prevbno, prevdiff := null, uint64(0)
	if prev != nil {
		if pb := prev.StartBlock + prev.BlockCount; pb != 0 && s.validNear(pb, prev.StartBlock) {
			adj := off - prev.End()
			prevdiff = adj
			if prevdiff <= allocGapUnits*length && s.validNear(pb+prevdiff, prev.StartBlock) {
				pb += adj
			} else {
				prevdiff += adj
			}
			prevbno = pb
		}
	}
	gotbno, gotdiff := next.StartBlock, next.StartOff-off
	adj := gotdiff
	switch {
	case gotdiff <= allocGapUnits*length && gotbno >= gotdiff && s.validNear(gotbno-gotdiff, gotbno):
		gotbno -= adj
	case gotbno >= length && s.validNear(gotbno-length, gotbno):
		gotbno -= length
		gotdiff += adj - length
	default:
		gotdiff += adj
	}
	switch {
	case prevbno != null:
		if prevdiff <= gotdiff {
			return prevbno
		}
		return gotbno
	}
	return gotbno
}

// agLongest is the longest extent an allocation in AG agno can count on
// (xfs_alloc_longest_free_extent with the AGFL refill it needs first and
// the AG's reservation kept), as the transaction sees the AGF.
func (t *txn) agLongest(agno uint32) (uint32, error) {
	s := t.s
	buf, err := t.tx.ReadMeta(s.g.AGFDaddr(agno), s.g.SectSize)
	if err != nil {
		return 0, err
	}
	f, err := ondisk.DecodeAGF(buf)
	if err != nil {
		return 0, fmt.Errorf("agf %d: %w", agno, err)
	}
	ml := uint32(s.allocLevel)
	need := min(f.BnoLevel+1, ml)*2 - 2 + min(f.CntLevel+1, ml)*2 - 2
	var delta uint32
	if need > f.FLCount {
		delta = need - f.FLCount
	}
	if r := s.resv[agno]; f.FreeBlks-f.Longest < r {
		delta += r - (f.FreeBlks - f.Longest)
	}
	if f.Longest > delta {
		return min(s.maxUsable, f.Longest-delta), nil
	}
	if f.FLCount > 0 || f.Longest > 0 {
		return 1, nil
	}
	return 0, nil
}

// selectMinLen is xfs_bmap_btalloc_select_lengths: the best length seen
// in the AGs from the target's on, stopping at the first that holds
// maxlen.
func (t *txn) selectMinLen(target uint64, maxlen uint32) (uint32, error) {
	g := t.s.g
	start := g.FSBAgno(target)
	if start >= g.AGCount {
		start = 0
	}
	var blen uint32
	for i := uint32(0); i < g.AGCount; i++ {
		l, err := t.agLongest((start + i) % g.AGCount)
		if err != nil {
			return 0, err
		}
		blen = max(blen, l)
		if blen >= maxlen {
			break
		}
	}
	// xfs_bmap_select_minlen: the best length less the start alignment
	// (1 here), at least 1, at most maxlen.
	if blen > 1 {
		blen--
	}
	switch {
	case blen < 1:
		return 1, nil
	case blen < maxlen:
		return blen, nil
	}
	return maxlen, nil
}

// allocHole allocates up to length blocks for file block off, which must
// start a hole at least that long, and maps them unwritten (a
// preallocation). It returns the new mapping as allocated (before any
// merge with its neighbours).
func (t *txn) allocHole(off, length uint64) (ondisk.Extent, error) {
	f := t.f
	prev, hasPrev, next, hasNext, err := f.Around(off)
	if err != nil {
		return ondisk.Extent{}, err
	}
	if hasPrev && prev.End() > off {
		return ondisk.Extent{}, fmt.Errorf("inode %d: block %d is mapped", t.ino, off)
	}
	var pnext, pprev *ondisk.Extent
	if hasNext {
		pnext = &next
		length = min(length, next.StartOff-off)
	}
	if hasPrev {
		pprev = &prev
	}
	length = min(length, ondisk.MaxExtLen)
	target := t.s.adjacent(t.s.inodeFSB(t.ino), off, length, pprev, pnext)
	fsb, n, err := t.allocData(target, length, f.MinLeft())
	if err != nil {
		return ondisk.Extent{}, fmt.Errorf("inode %d: allocate %d blocks at file block %d: %w", t.ino, length, off, err)
	}
	e := ondisk.Extent{StartOff: off, StartBlock: fsb, BlockCount: uint64(n), Unwritten: true}
	if err := f.Insert(e); err != nil {
		return ondisk.Extent{}, err
	}
	t.s.addStats(func(st *Stats) {
		st.ExtentsCreated++
		st.BlocksAlloc += int64(n)
	})
	return e, nil
}

// allocData is xfs_bmap_btalloc for file data: up to length blocks near
// target, the minimum length chosen from the longest free extents, then,
// short of space, any length near the target, then anything from the
// first AG on (xfs_bmap_btalloc_low_space).
func (t *txn) allocData(target, length uint64, minLeft uint32) (uint64, uint32, error) {
	maxlen := uint32(min(length, uint64(t.s.maxUsable)))
	minlen, err := t.selectMinLen(target, maxlen)
	if err != nil {
		return 0, 0, err
	}
	req := agf.Request{Target: target, MinLen: minlen, MaxLen: maxlen, Align: 1, MinLeft: minLeft}
	fsb, n, err := t.al.Alloc(req)
	if errors.Is(err, ondisk.ErrNoSpace) && req.MinLen > 1 {
		req.MinLen = 1
		fsb, n, err = t.al.Alloc(req)
	}
	if errors.Is(err, ondisk.ErrNoSpace) {
		req.Target = 0
		fsb, n, err = t.al.Alloc(req)
	}
	return fsb, n, err
}

// unmapBatch is how many extents one transaction unmaps. The kernel's
// bunmapi calls take two (a log reservation limit); the journal here has
// room for many more, and fewer transactions are cheaper.
const unmapBatch = 32

// unmapTail unmaps the last (at most unmapBatch) extents mapped in file
// blocks [start, end), working down from the end as xfs_bunmapi does,
// frees their blocks, and returns where the range now ends; done when
// nothing in the range is mapped any more.
func (t *txn) unmapTail(start, end uint64) (uint64, bool, error) {
	f := t.f
	from := end
	for k := 0; k < unmapBatch && from > start; k++ {
		e, ok, err := f.Prev(from)
		if err != nil {
			return 0, false, err
		}
		if !ok || e.End() <= start {
			break
		}
		from = max(e.StartOff, start)
	}
	if from == end {
		return end, true, nil
	}
	pieces, err := f.Remove(from, end-from)
	if err != nil {
		return 0, false, err
	}
	if err := t.free(pieces); err != nil {
		return 0, false, err
	}
	if from == start {
		return start, true, nil
	}
	// Anything left below from?
	e, ok, err := f.Prev(from)
	if err != nil {
		return 0, false, err
	}
	return from, !ok || e.End() <= start, nil
}
