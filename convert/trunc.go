package convert

import (
	"fmt"
	"math"

	"github.com/xfsimg/xfsimg/ondisk"
)

// The space operations on the engine: each first brings the page cache and
// the delayed extents in line with what it is about to change on disk, as
// the kernel's do, then changes the extents in journaled transactions.

func (s *Session) checkRange(op string, off, length int64) error {
	if off < 0 || length <= 0 {
		return fmt.Errorf("%s %d %d: %w", op, off, length, ErrInvalid)
	}
	if off > math.MaxInt64-length || s.fsbUp(off+length) > ondisk.MaxFileOff {
		return fmt.Errorf("%s %d %d: %w", op, off, length, ErrTooBig)
	}
	return nil
}

// withFile runs op on inode ino's in-core inode with its iolock held, if
// the file may be changed at all.
func (s *Session) withFile(ino uint64, op func(ip *inode) error) error {
	ip, err := s.inode(ino)
	if err != nil {
		return err
	}
	ip.iolock.Lock()
	defer ip.iolock.Unlock()
	if err := s.writable(ip); err != nil {
		return err
	}
	return op(ip)
}

// dropDelalloc removes the delayed extents of file blocks [lo, hi) and
// gives their reservation back. The caller holds ilock exclusively.
func (s *Session) dropDelalloc(ip *inode, lo, hi uint64) {
	if lo >= hi {
		return
	}
	if data, ind := ip.del.remove(lo, hi, s.worstIndlen); data+ind > 0 {
		s.j.Unreserve(int64(data + ind))
		ip.seq.Add(1)
	}
}

// Truncate is ftruncate(2) on XFS (xfs_setattr_size): the tail of the new
// EOF block is zeroed through the page cache, pages past it are dropped
// once no I/O is in flight on them, data between the on-disk and the new
// size is written first (so that the new size exposes no stale blocks),
// and then the size is logged and every block past EOF unmapped, delayed
// or real. Growing converts delayed extents now inside EOF to unwritten,
// as zeroing past the old EOF does.
func (s *Session) Truncate(ino uint64, size int64) error {
	if size < 0 {
		return fmt.Errorf("truncate %d: %w", size, ErrInvalid)
	}
	if s.fsbUp(size) > ondisk.MaxFileOff {
		return fmt.Errorf("truncate %d: %w", size, ErrTooBig)
	}
	return s.withFile(ino, func(ip *inode) error { return s.truncate(ip, size) })
}

func (s *Session) truncate(ip *inode, size int64) error {
	ino := ip.ino
	ip.ilock.RLock()
	old, disk := ip.size, ip.diskSize
	ip.ilock.RUnlock()
	bs := int64(s.g.BlockSize)
	didZero := false
	var err error
	if size < old && size%bs != 0 {
		if didZero, err = s.zeroRange(ip, size, min(old, (size/bs+1)*bs)); err != nil {
			return err
		}
	}
	if size > old {
		if err := s.growZero(ip, old, size); err != nil {
			return err
		}
	}
	// truncate_setsize: the new size, then the pages past it go.
	ip.ilock.Lock()
	ip.size = size
	ip.ilock.Unlock()
	s.dropPages(ip, s.fsbUp(size), ondisk.MaxFileOff)
	s.hook(HookTruncInvalidated, ino, s.fsbUp(size))
	if didZero || (size > disk && old != disk) {
		if err := s.writeback(ip, s.fsbDown(disk), s.fsbUp(size), syncAll); err != nil {
			return err
		}
	}
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	s.dropDelalloc(ip, s.fsbUp(size), ondisk.MaxFileOff)
	// xfs_itruncate_extents: the COW reservations past EOF go too.
	if err := s.cancelCow(ip, s.fsbUp(size), ondisk.MaxFileOff); err != nil {
		return err
	}
	ip.seq.Add(1)
	ip.timesDirty = false
	err = s.truncateDisk(ino, size)
	ip.seq.Add(1)
	if err == nil {
		ip.diskSize = size
	}
	return err
}

// Punch is fallocate(FALLOC_FL_PUNCH_HOLE) on XFS (xfs_free_file_space):
// the range is written back and its pages dropped (xfs_flush_unmap_range),
// its whole blocks unmapped, delayed or real, and its partial blocks below
// EOF zeroed through the page cache. The size stays.
func (s *Session) Punch(ino uint64, off, length int64) error {
	if err := s.checkRange("fpunch", off, length); err != nil {
		return err
	}
	return s.withFile(ino, func(ip *inode) error { return s.punch(ip, off, length) })
}

func (s *Session) punch(ip *inode, off, length int64) error {
	ino := ip.ino
	if err := s.flushUnmap(ip, off, off+length); err != nil {
		return err
	}
	ip.ilock.Lock()
	s.dropDelalloc(ip, s.fsbUp(off), s.fsbDown(off+length))
	ip.seq.Add(1)
	ip.timesDirty = false
	err := s.punchDisk(ino, off, length)
	ip.seq.Add(1)
	size := ip.size
	ip.ilock.Unlock()
	if err != nil || off >= size {
		return err
	}
	_, err = s.zeroRange(ip, off, min(off+length, size))
	return err
}

// Falloc is fallocate(2) mode 0 (or FALLOC_FL_KEEP_SIZE): the range's
// dirty data is written back first and delayed extents left in it (past
// EOF, with no data) are given up for the real ones the preallocation
// allocates; a size that grows zeroes past the old EOF first.
func (s *Session) Falloc(ino uint64, off, length int64, keepSize bool) error {
	if err := s.checkRange("falloc", off, length); err != nil {
		return err
	}
	return s.withFile(ino, func(ip *inode) error { return s.falloc(ip, off, length, keepSize) })
}

func (s *Session) falloc(ip *inode, off, length int64, keepSize bool) error {
	lo, hi := s.fsbDown(off), s.fsbUp(off+length)
	if err := s.writeback(ip, lo, hi, syncAll); err != nil {
		return err
	}
	ip.ilock.RLock()
	old := ip.size
	ip.ilock.RUnlock()
	grow := !keepSize && off+length > old
	if grow {
		if err := s.growZero(ip, old, off+length); err != nil {
			return err
		}
	}
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	s.dropDelalloc(ip, lo, hi)
	ip.seq.Add(1)
	ip.timesDirty = false
	// The on-disk size may lag the in-core one (data in flight): the
	// preallocation grows it only to the in-core size or the range's end.
	err := s.fallocDisk(ip.ino, off, length, keepSize || off+length <= ip.size)
	ip.seq.Add(1)
	if err != nil {
		return err
	}
	if grow {
		ip.size, ip.diskSize = off+length, off+length
	}
	ip.flags |= ondisk.DiFlagPrealloc
	return nil
}

// Fzero is fallocate(FALLOC_FL_ZERO_RANGE) on XFS: punch the range, then
// preallocate its whole blocks unwritten; without keepSize the size grows
// to the end of the range, as a truncate up would. One iolock hold covers
// all three.
func (s *Session) Fzero(ino uint64, off, length int64, keepSize bool) error {
	if err := s.checkRange("fzero", off, length); err != nil {
		return err
	}
	return s.withFile(ino, func(ip *inode) error {
		if err := s.punch(ip, off, length); err != nil {
			return err
		}
		bs := int64(s.g.BlockSize)
		lo := off / bs * bs
		hi := (off + length + bs - 1) / bs * bs
		if err := s.falloc(ip, lo, hi-lo, true); err != nil {
			return err
		}
		ip.ilock.RLock()
		size := ip.size
		ip.ilock.RUnlock()
		if keepSize || off+length <= size {
			return nil
		}
		return s.truncate(ip, off+length)
	})
}

// flushUnmap is xfs_flush_unmap_range: write back and wait for the blocks
// of [from, to), then drop their pages.
func (s *Session) flushUnmap(ip *inode, from, to int64) error {
	lo, hi := s.fsbDown(from), s.fsbUp(to)
	if err := s.writeback(ip, lo, hi, syncAll); err != nil {
		return err
	}
	s.dropPages(ip, lo, hi)
	return nil
}

// dropPages takes the pages of [lo, hi) out of the cache once none is in
// flight (truncate_pagecache_range).
func (s *Session) dropPages(ip *inode, lo, hi uint64) {
	pc := &ip.pc
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.waitIdle(lo, hi)
	for _, p := range pc.pages(lo, hi) {
		pc.t.Delete(p)
		s.cache.add(-int64(len(p.data)))
		s.bufs.put(p.data)
		p.data = nil
	}
}

// zeroRange is iomap_zero_range: zeros over bytes [from, to) where the
// file holds data, written blocks or data in the page cache, through the
// page cache; holes, unwritten extents and delayed extents with no data
// read as zeros already. It reports whether it dirtied anything.
func (s *Session) zeroRange(ip *inode, from, to int64) (bool, error) {
	if from >= to {
		return false, nil
	}
	bs := int64(s.g.BlockSize)
	dirtied := false
	for b := s.fsbDown(from); b < s.fsbUp(to); {
		ip.ilock.RLock()
		m, err := s.lookup(ip, b)
		ip.ilock.RUnlock()
		if err != nil {
			return dirtied, err
		}
		end := min(m.end(), s.fsbUp(to))
		if ip.reflink && m.kind == mapWritten {
			// Zeroing shared blocks is a write to them: COW, as
			// the kernel's IOMAP_ZERO reserves.
			ip.ilock.Lock()
			var got []dext
			_, err := s.reserveShared(ip, m, b, end, &got)
			ip.ilock.Unlock()
			if err != nil {
				return dirtied, err
			}
		}
		for ; b < end; b++ {
			lo, hi := max(from, int64(b)*bs), min(to, int64(b+1)*bs)
			pc := &ip.pc
			pc.mu.Lock()
			p := pc.get(b)
			if p != nil {
				clear(s.owned(p)[lo-int64(b)*bs : hi-int64(b)*bs])
				p.dirty = true
				dirtied = true
			}
			pc.mu.Unlock()
			if p != nil || m.kind != mapWritten {
				continue
			}
			np := &page{blk: b, data: s.bufs.get(int(bs))}
			if hi-lo < bs {
				if err := s.readBlock(np.data, m, b); err != nil {
					return dirtied, err
				}
			}
			clear(np.data[lo-int64(b)*bs : hi-int64(b)*bs])
			np.dirty = true
			pc.mu.Lock()
			pc.t.ReplaceOrInsert(np)
			pc.mu.Unlock()
			s.cache.add(bs)
			dirtied = true
		}
	}
	return dirtied, nil
}

// growZero is the zeroing of a size change from old up to size: data past
// the old EOF is zeroed, and delayed extents there with no data become
// unwritten extents now, so that none is left inside EOF without data to
// write.
func (s *Session) growZero(ip *inode, old, size int64) error {
	if _, err := s.zeroRange(ip, old, size); err != nil {
		return err
	}
	for b := s.fsbUp(old); b < s.fsbUp(size); {
		ip.ilock.RLock()
		d, ok := ip.del.next(b)
		ip.ilock.RUnlock()
		if !ok || d.off >= s.fsbUp(size) {
			return nil
		}
		blk := max(b, d.off)
		m, _, err := s.convertDelalloc(ip, blk)
		if err != nil {
			return err
		}
		b = max(blk+1, m.end())
	}
	return nil
}
