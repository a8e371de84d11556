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
func (s *Session) checkInode(ino uint64, onlyAllocates bool) error {
	t, err := s.begin(ino, 0)
	if err != nil {
		return err
	}
	defer t.cancel()
	c := t.f.Core()
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
	case c.Flags2&ondisk.DiFlags2Reflink != 0:
		return ondisk.Unsupportedf("inode %d: reflinked file (shared extents need the refcount btree)", ino)
	case c.Flags2&ondisk.DiFlags2Dax != 0:
		return ondisk.Unsupportedf("inode %d: DAX file", ino)
	}
	return nil
}

// Falloc preallocates [off, off+length) as fallocate(2) with mode 0 (or
// FALLOC_FL_KEEP_SIZE when keepSize) does on XFS: every hole in the
// block-rounded range gets unwritten extents, one allocation per
// transaction (xfs_alloc_file_space), mapped extents stay as they are, the
// inode is flagged preallocated, mtime and ctime move, and without
// keepSize a size below the end grows to it (xfs_vn_setattr_size).
// Running out of space is decided before anything changes.
func (s *Session) Falloc(ino uint64, off, length int64, keepSize bool) error {
	if off < 0 || length <= 0 {
		return fmt.Errorf("falloc %d %d: %w", off, length, ErrInvalid)
	}
	if off > math.MaxInt64-length {
		return fmt.Errorf("falloc %d %d: %w", off, length, ErrTooBig)
	}
	if err := s.checkInode(ino, true); err != nil {
		return err
	}
	start, end := s.fsbDown(off), s.fsbUp(off+length)
	if end > ondisk.MaxFileOff {
		return fmt.Errorf("falloc %d %d: %w", off, length, ErrTooBig)
	}
	holes, err := s.holes(ino, start, end)
	if err != nil {
		return err
	}
	if err := s.checkSpace(ino, holes); err != nil {
		return fmt.Errorf("falloc %d %d: %w", off, length, err)
	}
	first := true
	for _, h := range holes {
		for p := h[0]; p < h[1]; {
			n := min(h[1]-p, ondisk.MaxExtLen)
			t, err := s.begin(ino, int64(n)+int64(s.maxLevels))
			if err != nil {
				return err
			}
			e, err := t.allocHole(p, n)
			if err != nil {
				t.cancel()
				return err
			}
			t.f.Core().Flags |= ondisk.DiFlagPrealloc
			if first {
				t.touch()
				first = false
			}
			if err := t.commit(); err != nil {
				return err
			}
			p += e.BlockCount
		}
	}
	if first {
		// Nothing to allocate: the kernel still flags the inode and
		// updates the times.
		t, err := s.begin(ino, 0)
		if err != nil {
			return err
		}
		t.f.Core().Flags |= ondisk.DiFlagPrealloc
		t.touch()
		if err := t.commit(); err != nil {
			return err
		}
	}
	if keepSize {
		return nil
	}
	size, err := s.size(ino)
	if err != nil {
		return err
	}
	if off+length > size {
		return s.setSize(ino, off+length, size)
	}
	return nil
}

// Punch unmaps the blocks wholly inside [off, off+length) and frees them,
// then zeroes the partial blocks at the edges where they hold written data
// (below EOF), as FALLOC_FL_PUNCH_HOLE does on XFS (xfs_free_file_space):
// at most two extents are unmapped per transaction, from the end of the
// range down. The size does not change; mtime and ctime do.
func (s *Session) Punch(ino uint64, off, length int64) error {
	if off < 0 || length <= 0 {
		return fmt.Errorf("fpunch %d %d: %w", off, length, ErrInvalid)
	}
	if off > math.MaxInt64-length {
		return fmt.Errorf("fpunch %d %d: %w", off, length, ErrTooBig)
	}
	if err := s.checkInode(ino, false); err != nil {
		return err
	}
	start, end := s.fsbUp(off), s.fsbDown(off+length)
	if err := s.unmap(ino, start, end, true); err != nil {
		return err
	}
	size, err := s.size(ino)
	if err != nil {
		return err
	}
	if off >= size {
		return nil
	}
	return s.zeroRange(ino, off, min(off+length, size), size)
}

// Truncate sets the size as ftruncate(2) does on XFS (xfs_setattr_size):
// growing zeroes written blocks between the old and new EOF; shrinking
// (or keeping the size) zeroes the rest of a written block that holds the
// new EOF and unmaps and frees every block past it, preallocation
// included. mtime and ctime always move.
func (s *Session) Truncate(ino uint64, size int64) error {
	if size < 0 {
		return fmt.Errorf("truncate %d: %w", size, ErrInvalid)
	}
	if err := s.checkInode(ino, false); err != nil {
		return err
	}
	old, err := s.size(ino)
	if err != nil {
		return err
	}
	return s.setSize(ino, size, old)
}

// setSize is xfs_setattr_size: zeroing, then the new size and times in one
// transaction with the first unmapping past the new EOF, then the rest of
// the unmapping.
func (s *Session) setSize(ino uint64, size, old int64) error {
	if size > old {
		if err := s.zeroRange(ino, old, size, size); err != nil {
			return err
		}
	} else if rem := size & int64(s.g.BlockSize-1); rem != 0 {
		if err := s.zeroRange(ino, size, size-rem+int64(s.g.BlockSize), size); err != nil {
			return err
		}
	}
	t, err := s.begin(ino, int64(s.maxLevels))
	if err != nil {
		return err
	}
	c := t.f.Core()
	c.Size = size
	t.touch()
	done := true
	from, to := s.fsbUp(size), uint64(ondisk.MaxFileOff)
	if size <= old {
		if to, done, err = t.unmapTail(from, to); err != nil {
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
	return s.unmap(ino, from, to, false)
}

// unmap unmaps file blocks [start, end) two extents per transaction from
// the end down; touch puts the new times in the first transaction (or one
// of its own when nothing is mapped).
func (s *Session) unmap(ino uint64, start, end uint64, touch bool) error {
	for first := true; ; first = false {
		t, err := s.begin(ino, int64(s.maxLevels))
		if err != nil {
			return err
		}
		done := true
		seq := t.f.Seq()
		if start < end {
			if end, done, err = t.unmapTail(start, end); err != nil {
				t.cancel()
				return err
			}
		}
		if first && touch {
			t.touch()
		} else if t.f.Seq() == seq {
			t.cancel()
			return nil
		}
		if err := t.commit(); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// size reads the inode's size.
func (s *Session) size(ino uint64) (int64, error) {
	t, err := s.begin(ino, 0)
	if err != nil {
		return 0, err
	}
	defer t.cancel()
	return t.f.Core().Size, nil
}

// holes lists the unmapped runs of file blocks in [start, end).
func (s *Session) holes(ino uint64, start, end uint64) ([][2]uint64, error) {
	t, err := s.begin(ino, 0)
	if err != nil {
		return nil, err
	}
	defer t.cancel()
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
func (s *Session) checkSpace(ino uint64, holes [][2]uint64) error {
	var need uint64
	for _, h := range holes {
		need += h[1] - h[0]
	}
	if need == 0 {
		return nil
	}
	t, err := s.begin(ino, 0)
	if err != nil {
		return err
	}
	defer t.cancel()
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
		keep := min(f.BnoLevel+1, ml)*2 - 2 + min(f.CntLevel+1, ml)*2 - 2 + 1
		if got := uint64(f.FreeBlks) + uint64(f.FLCount); got > uint64(keep) {
			avail += got - uint64(keep)
		}
	}
	jfree := s.j.FreeBlocks() - int64(s.g.AGCount)*8
	if jfree < 0 {
		jfree = 0
	}
	avail = min(avail, uint64(jfree))
	if need > avail {
		return fmt.Errorf("%w: %d blocks needed, %d free", ondisk.ErrNoSpace, need, avail)
	}
	leafMin := uint64(ondisk.BmbtMaxRecs(s.g.BlockSize, true) / 2)
	meta := func(extents uint64) uint64 {
		return 2*(extents/leafMin+1) + uint64(s.maxLevels)*uint64(len(holes)+1)
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

// zeroRange writes zeros over the written blocks of bytes [from, to), as
// iomap_zero_range does (holes and unwritten extents read as zeros
// already). A block holding EOF that gets zeroed is zeroed past EOF too,
// as writeback of the EOF page leaves it.
func (s *Session) zeroRange(ino uint64, from, to, eof int64) error {
	if from >= to {
		return nil
	}
	var exts []ondisk.Extent
	t, err := s.begin(ino, 0)
	if err != nil {
		return err
	}
	for p := s.fsbDown(from); p < s.fsbUp(to); {
		e, mapped, err := t.f.Lookup(p)
		if err != nil {
			t.cancel()
			return err
		}
		if !mapped {
			if e.BlockCount == 0 {
				break
			}
			p = e.StartOff
			continue
		}
		if !e.Unwritten {
			exts = append(exts, e)
		}
		p = e.End()
	}
	t.cancel()
	bs := int64(s.g.BlockSize)
	eofLo, eofHi := eof, (eof/bs+1)*bs // post-EOF bytes of the EOF block
	if eof%bs == 0 {
		eofLo = eofHi
	}
	for _, e := range exts {
		lo := max(from, int64(e.StartOff)*bs)
		hi := min(to, int64(e.End())*bs)
		if lo >= hi {
			continue
		}
		// Writeback of a dirtied EOF block zeroes it past EOF.
		if lo < eofHi && hi > eofHi-bs && eofLo < eofHi && int64(e.End())*bs >= eofHi {
			if hi >= eofLo {
				hi = max(hi, eofHi)
			} else if err := s.zeroBytes(e, eofLo, eofHi); err != nil {
				return err
			}
		}
		if err := s.zeroBytes(e, lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// zeroBytes zeroes file bytes [lo, hi) inside extent e on the device,
// reading and rewriting partial blocks.
func (s *Session) zeroBytes(e ondisk.Extent, lo, hi int64) error {
	bs := int64(s.g.BlockSize)
	dev := func(fileByte int64) int64 {
		return s.g.FSBOffset(e.StartBlock) + fileByte - int64(e.StartOff)*bs
	}
	buf := ondisk.AlignedBuffer(int(bs), 4096)
	// Partial head and tail blocks.
	for _, blk := range []int64{lo / bs, (hi - 1) / bs} {
		bl, bh := max(lo, blk*bs), min(hi, (blk+1)*bs)
		if bl == blk*bs && bh == (blk+1)*bs {
			continue
		}
		if _, err := s.dev.ReadAt(buf, dev(blk*bs)); err != nil {
			return err
		}
		clear(buf[bl-blk*bs : bh-blk*bs])
		if _, err := s.dev.WriteAt(buf, dev(blk*bs)); err != nil {
			return err
		}
		s.stats.DataBytes += bh - bl
		if lo/bs == (hi-1)/bs {
			return nil
		}
	}
	// Whole blocks in between.
	first, last := (lo+bs-1)/bs, hi/bs
	if first >= last {
		return nil
	}
	zero := ondisk.AlignedBuffer(int(min((last-first)*bs, 1<<20)), 4096)
	for b := first; b < last; {
		n := min(last-b, int64(len(zero))/bs)
		if _, err := s.dev.WriteAt(zero[:n*bs], dev(b*bs)); err != nil {
			return err
		}
		s.stats.DataBytes += n * bs
		b += n
	}
	return nil
}
