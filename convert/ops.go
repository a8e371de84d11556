package convert

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Errors with the kernel's meaning for the same calls.
var (
	ErrInvalid = errors.New("invalid argument")
	ErrTooBig  = errors.New("file too large")
	ErrPerm    = errors.New("operation not permitted")
)

// blocks converts a byte offset to file blocks, rounding down or up.
func (s *Session) fsbDown(b int64) uint64 { return uint64(b) >> s.g.BlockLog }
func (s *Session) fsbUp(b int64) uint64 {
	return (uint64(b) + uint64(s.g.BlockSize) - 1) >> s.g.BlockLog
}

// checkInode refuses inodes whose allocation or unmapping follows rules
// this package does not implement, and those the kernel refuses the call
// on (immutable; append-only unless the call only allocates).
func (t *txn) checkInode(onlyAllocates bool) error {
	c, ino := t.f.Core(), t.ino
	switch {
	case c.Mode&ondisk.SIFMT != ondisk.SIFREG:
		return fmt.Errorf("inode %d: not a regular file", ino)
	case c.Flags&ondisk.DiFlagImmutable != 0:
		return fmt.Errorf("inode %d is immutable: %w", ino, ErrPerm)
	case c.Flags&ondisk.DiFlagAppend != 0 && !onlyAllocates:
		return fmt.Errorf("inode %d is append-only: %w", ino, ErrPerm)
	case c.Flags&ondisk.DiFlagRealtime != 0:
		return ondisk.Unsupportedf("inode %d: realtime file", ino)
	case c.Flags&(ondisk.DiFlagExtsize|ondisk.DiFlagExtszinherit) != 0 && c.ExtSize != 0:
		return ondisk.Unsupportedf("inode %d: extent size hint %d (aligned allocation)", ino, c.ExtSize)
	case c.Flags&ondisk.DiFlagFilestream != 0:
		return ondisk.Unsupportedf("inode %d: filestreams allocation", ino)
	case c.Flags2&ondisk.DiFlags2Reflink != 0 && t.tx.Journal().Superblock().HasRmapbt():
		return ondisk.Unsupportedf("inode %d: reflinked file on a file system with rmapbt (refcount changes would need rmap records)", ino)
	case c.Flags2&ondisk.DiFlags2Dax != 0:
		return ondisk.Unsupportedf("inode %d: DAX file", ino)
	}
	return nil
}

// beginUnmap starts a transaction that unmaps blocks of ino, refusing an
// inode whose unmapping follows rules not implemented.
func (s *Session) beginUnmap(ino uint64) (*txn, error) {
	t, err := s.begin(ino, int64(s.maxLevels))
	if err != nil {
		return nil, err
	}
	if err := t.checkInode(false); err != nil {
		t.cancel()
		return nil, err
	}
	return t, nil
}

// fallocDisk is Falloc's on-disk part: it preallocates [off, off+length) as fallocate(2) with mode 0 (or
// FALLOC_FL_KEEP_SIZE when keepSize) does on XFS: every hole in the
// block-rounded range gets unwritten extents, one allocation per
// transaction (xfs_alloc_file_space), mapped extents stay as they are, the
// inode is flagged preallocated, mtime and ctime move, and without
// keepSize a size below the end grows to it (xfs_vn_setattr_size, here in
// the last allocation's transaction). Running out of space is decided in
// the first transaction, before anything changes.
func (s *Session) fallocDisk(ino uint64, off, length int64, keepSize bool) error {
	if off < 0 || length <= 0 {
		return fmt.Errorf("falloc %d %d: %w", off, length, ErrInvalid)
	}
	if off > math.MaxInt64-length {
		return fmt.Errorf("falloc %d %d: %w", off, length, ErrTooBig)
	}
	start, end := s.fsbDown(off), s.fsbUp(off+length)
	if end > ondisk.MaxFileOff {
		return fmt.Errorf("falloc %d %d: %w", off, length, ErrTooBig)
	}
	// The first transaction reserves for the largest first allocation the
	// range allows; when even that does not fit, work out the holes
	// first and reserve exactly.
	res := int64(min(end-start, ondisk.MaxExtLen)) + int64(s.maxLevels)
	t, err := s.begin(ino, res)
	if errors.Is(err, ondisk.ErrNoSpace) {
		var holes [][2]uint64
		err = s.view(ino, func(t *txn) error {
			var err error
			holes, err = t.holes(start, end)
			return err
		})
		if err != nil {
			return err
		}
		res = int64(s.maxLevels)
		if len(holes) > 0 {
			res += int64(min(holes[0][1]-holes[0][0], ondisk.MaxExtLen))
		}
		t, err = s.begin(ino, res)
		if errors.Is(err, ondisk.ErrNoSpace) {
			return fmt.Errorf("falloc %d %d: %w", off, length, err)
		}
	}
	if err != nil {
		return err
	}
	if err := t.checkInode(true); err != nil {
		t.cancel()
		return err
	}
	holes, err := t.holes(start, end)
	if err != nil {
		t.cancel()
		return err
	}
	if err := t.checkSpace(holes); err != nil {
		t.cancel()
		return fmt.Errorf("falloc %d %d: %w", off, length, err)
	}
	t.touch()
	newSize := int64(-1)
	if old := t.f.Core().Size; !keepSize && off+length > old {
		newSize = off + length
	}
	// finish flags the inode and, in the last transaction, grows the size.
	finish := func(t *txn, last bool) error {
		t.f.Core().Flags |= ondisk.DiFlagPrealloc
		if last && newSize >= 0 {
			return t.setSize(newSize)
		}
		return nil
	}
	if len(holes) == 0 {
		if err := finish(t, true); err != nil {
			t.cancel()
			return err
		}
		return t.commit()
	}
	for i, h := range holes {
		for p := h[0]; p < h[1]; {
			n := min(h[1]-p, ondisk.MaxExtLen)
			if t == nil {
				if t, err = s.begin(ino, int64(n)+int64(s.maxLevels)); err != nil {
					return err
				}
			}
			e, err := t.allocHole(p, n)
			if err == nil {
				p += e.BlockCount
				err = finish(t, i == len(holes)-1 && p >= h[1])
			}
			if err != nil {
				t.cancel()
				return err
			}
			if err := t.commit(); err != nil {
				return err
			}
			t = nil
		}
	}
	return nil
}

// punchDisk is Punch's on-disk part: it unmaps the blocks wholly inside
// [off, off+length) and frees them, as FALLOC_FL_PUNCH_HOLE does on XFS
// (xfs_free_file_space), several extents per transaction from the end of
// the range down. The size does not change; mtime and ctime do. The
// partial blocks at the edges are Punch's, through the page cache.
func (s *Session) punchDisk(ino uint64, off, length int64) error {
	if off < 0 || length <= 0 {
		return fmt.Errorf("fpunch %d %d: %w", off, length, ErrInvalid)
	}
	if off > math.MaxInt64-length {
		return fmt.Errorf("fpunch %d %d: %w", off, length, ErrTooBig)
	}
	t, err := s.beginUnmap(ino)
	if err != nil {
		return err
	}
	start, end := s.fsbUp(off), s.fsbDown(off+length)
	t.touch()
	return s.unmap(t, start, end)
}

// truncateDisk is Truncate's on-disk part: it logs the new size and
// unmaps and frees every block past it, preallocation included, as
// xfs_setattr_size does after the page cache work. mtime and ctime always
// move.
func (s *Session) truncateDisk(ino uint64, size int64) error {
	if size < 0 {
		return fmt.Errorf("truncate %d: %w", size, ErrInvalid)
	}
	t, err := s.beginUnmap(ino)
	if err != nil {
		return err
	}
	t.touch()
	old := t.f.Core().Size
	if err := t.setSize(size); err != nil {
		t.cancel()
		return err
	}
	if size > old {
		return t.commit()
	}
	return s.unmap(t, s.fsbUp(size), ondisk.MaxFileOff)
}

// setSize sets the on-disk size in an open transaction. The zeroing that
// goes with a size change (iomap_zero_range, iomap_truncate_page) went
// through the page cache before.
func (t *txn) setSize(size int64) error {
	t.f.Core().Size = size
	return nil
}

// unmap unmaps file blocks [start, end), two extents per transaction from
// the end down, starting in t, which it commits (with whatever else t
// changed) as it does the others.
func (s *Session) unmap(t *txn, start, end uint64) error {
	ino := t.ino
	for {
		done := true
		if start < end {
			var err error
			if end, done, err = t.unmapTail(start, end); err != nil {
				t.cancel()
				return err
			}
		}
		if err := t.commit(); err != nil {
			return err
		}
		if done {
			return nil
		}
		var err error
		if t, err = s.begin(ino, int64(s.maxLevels)); err != nil {
			return err
		}
	}
}

// view runs fn in a transaction that changes nothing.
func (s *Session) view(ino uint64, fn func(t *txn) error) error {
	t, err := s.begin(ino, 0)
	if err != nil {
		return err
	}
	defer t.cancel()
	return fn(t)
}

// holes lists the unmapped runs of file blocks in [start, end).
func (t *txn) holes(start, end uint64) ([][2]uint64, error) {
	var out [][2]uint64
	for p := start; p < end; {
		e, mapped, err := t.f.Lookup(p)
		if err != nil {
			return nil, err
		}
		if mapped {
			p = e.End()
			continue
		}
		h := end
		if e.BlockCount != 0 {
			h = min(end, e.StartOff)
		}
		out = append(out, [2]uint64{p, h})
		p = h
	}
	return out, nil
}

// checkSpace decides ENOSPC before a preallocation changes anything: the
// holes, plus BMBT blocks for as many new extents as the free space could
// split them into, must fit in what the AGs can give out (their free
// blocks and AGFL, less the AGFL each keeps and the block a BMBT split may
// need) and in the journal's free count less the set-aside.
func (t *txn) checkSpace(holes [][2]uint64) error {
	s := t.s
	var need uint64
	for _, h := range holes {
		need += h[1] - h[0]
	}
	if need == 0 {
		return nil
	}
	// Far from full: no need to look closer. (A sixteenth of the free
	// space covers the free-space btrees' own blocks by a wide margin.)
	leafMin := uint64(ondisk.BmbtMaxRecs(s.g.BlockSize, true) / 2)
	meta := func(extents uint64) uint64 {
		return 2*(extents/leafMin+1) + uint64(s.maxLevels)*uint64(len(holes)+1)
	}
	// The kernel's free count leaves out the set-aside, the per-AG
	// reservations and the reserve pool.
	jfree := s.j.FreeBlocks() + t.res - int64(s.g.AGCount)*8 - s.defaultResBlks()
	for _, r := range s.resv {
		jfree -= int64(r)
	}
	if jfree < 0 {
		jfree = 0
	}
	keep := uint64(s.g.AGCount) * uint64(4*s.allocLevel+2)
	if need+meta(need)+keep+uint64(jfree)/16 <= uint64(jfree) {
		return nil
	}
	var avail uint64
	ml := uint32(s.allocLevel)
	for agno := uint32(0); agno < s.g.AGCount; agno++ {
		buf, err := t.tx.ReadMeta(s.g.AGFDaddr(agno), s.g.SectSize)
		if err != nil {
			return err
		}
		f, err := ondisk.DecodeAGF(buf)
		if err != nil {
			return err
		}
		keep := min(f.BnoLevel+1, ml)*2 - 2 + min(f.CntLevel+1, ml)*2 - 2 + 1 + s.resv[agno]
		if got := uint64(f.FreeBlks) + uint64(f.FLCount); got > uint64(keep) {
			avail += got - uint64(keep)
		}
	}
	// The journal's count leaves out what open transactions reserved,
	// this one's included.
	avail = min(avail, uint64(jfree))
	if need > avail {
		return fmt.Errorf("%w: %d blocks needed, %d free", ondisk.ErrNoSpace, need, avail)
	}
	if need+meta(need) <= avail {
		return nil
	}
	// Close to full: count the extents the free space would make of it,
	// longest first, as the allocator takes them.
	var lens []uint32
	for agno := uint32(0); agno < s.g.AGCount; agno++ {
		recs, err := s.freeExtents(t, agno)
		if err != nil {
			return err
		}
		for _, r := range recs {
			lens = append(lens, r.BlockCount)
		}
	}
	sort.Slice(lens, func(a, b int) bool { return lens[a] > lens[b] })
	var got, k uint64
	for _, l := range lens {
		if got >= need {
			break
		}
		got += uint64(l)
		k++
	}
	if need+meta(k+uint64(len(holes))) > avail {
		return fmt.Errorf("%w: %d blocks needed in up to %d extents, %d free", ondisk.ErrNoSpace, need, k+uint64(len(holes)), avail)
	}
	return nil
}

// freeExtents lists AG agno's free extents as committed. Btree blocks
// changed since the last checkpoint carry CRCs stamped only at write-back,
// so they are read through a copy with the CRC stamped.
func (s *Session) freeExtents(t *txn, agno uint32) ([]ondisk.AllocRec, error) {
	buf, err := t.tx.ReadMeta(s.g.AGFDaddr(agno), s.g.SectSize)
	if err != nil {
		return nil, err
	}
	f, err := ondisk.DecodeAGF(buf)
	if err != nil {
		return nil, err
	}
	read := func(daddr int64, n int) ([]byte, error) {
		b, err := t.tx.ReadMeta(daddr, n)
		if err != nil {
			return nil, err
		}
		ondisk.StampBtreeCRC(b, false)
		return b, nil
	}
	ag := &agf.AG{Geo: s.g, Agno: agno, AGF: f, Store: agf.AGStore{Geo: s.g, Agno: agno, Read: read}}
	return ag.FreeExtents(ag.CntTree())
}
