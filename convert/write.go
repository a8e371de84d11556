package convert

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Write is one buffered write(2) of data at byte off into inode ino, as
// the kernel's iomap buffered write does on XFS: the holes under the range
// get delayed extents (data blocks plus the worst-case BMBT blocks,
// reserved from the free count now, so that ENOSPC is decided here and
// nothing changes when it is), an extending write reserves speculative
// preallocation past EOF, and the data goes to the page cache, to reach
// the disk at writeback. The in-core size grows at once; the on-disk size
// when the data is written. A write that finds no space fails whole,
// writing nothing, even where write(2) would come back short: WriteAt has
// the short count.
func (s *Session) Write(ino uint64, off int64, data []byte) error {
	_, err := s.write(ino, off, data, false)
	return err
}

// WriteAt is Write with write(2)'s short count. The kernel's buffered write
// goes mapping by mapping (an extent, or a hole it reserves as a whole); when
// a hole after the first finds no space, the write stops there and returns
// what it copied, without the flush and retry a write that copied nothing
// gets. WriteAt then returns that count and an error wrapping
// ondisk.ErrNoSpace, as io.WriterAt must for a short count.
func (s *Session) WriteAt(ino uint64, off int64, data []byte) (int, error) {
	return s.write(ino, off, data, true)
}

// write is Write, and with canShort WriteAt.
func (s *Session) write(ino uint64, off int64, data []byte, canShort bool) (int, error) {
	if len(data) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("pwrite %d %d: %w", off, len(data), ErrInvalid)
	}
	if off > math.MaxInt64-int64(len(data)) || s.fsbUp(off+int64(len(data))) > ondisk.MaxFileOff {
		return 0, fmt.Errorf("pwrite %d %d: %w", off, len(data), ErrTooBig)
	}
	ip, err := s.inode(ino)
	if err != nil {
		return 0, err
	}
	ip.iolock.Lock()
	defer ip.iolock.Unlock()
	if err := s.writable(ip); err != nil {
		return 0, err
	}
	end := off + int64(len(data))
	short, err := s.reserveWrite(ip, off, end, canShort)
	if errors.Is(err, ondisk.ErrNoSpace) {
		// xfs_file_buffered_write: before giving ENOSPC, write every
		// file back (the delayed extents become real and give back the
		// unused part of their worst-case BMBT reservation), free the
		// preallocation past EOF of every file (blockgc, without the
		// iolock, as the kernel drops it) and try once more.
		if err = s.writebackAll(syncAll); err == nil {
			ip.iolock.Unlock()
			err = s.freeAllEOFBlocks()
			ip.iolock.Lock()
		}
		if err == nil {
			short, err = s.reserveWrite(ip, off, end, canShort)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("pwrite %d %d: %w", off, len(data), err)
	}
	full := len(data)
	if short > 0 {
		data = data[:short-off]
		end = short
	}
	// The size grows before the pages fill, as the kernel's does before
	// it unlocks each folio: writeback, which may run meanwhile, writes
	// nothing of a page past the size it reads, and marks it clean, so a
	// page filled past the old size would lose its data. Bytes of the
	// cache past EOF are zeros, so writeback reading the new size first
	// writes zeros the fill then dirties again.
	ip.ilock.Lock()
	old := ip.size
	ip.size = max(ip.size, end)
	ip.timesDirty = true
	ip.ilock.Unlock()
	s.hook(HookWriteMapped, ip.ino, s.fsbDown(off))
	if err := s.fillPages(ip, off, data); err != nil {
		ip.ilock.Lock()
		ip.size = old
		ip.ilock.Unlock()
		return 0, err
	}
	s.addStats(func(st *Stats) { st.BytesWritten += int64(len(data)) })
	if err := s.balanceDirty(ip); err != nil {
		return len(data), err
	}
	if len(data) < full {
		return len(data), fmt.Errorf("pwrite %d %d: short write of %d bytes: %w", off, full, len(data), ondisk.ErrNoSpace)
	}
	return len(data), nil
}

// writable refuses what a write(2) without O_APPEND gets EPERM for, and
// files whose writes would need what is not implemented.
// The flags it looks at are ones the session never changes, so the
// answer read with the inode holds.
func (s *Session) writable(ip *inode) error {
	return ip.writeErr
}

// reserveWrite reserves delayed extents over the holes of the blocks the
// write [off, end) touches. It goes mapping by mapping as the kernel's
// write does:
// with canShort, when a hole after the first mapping finds no space, it
// keeps what it reserved before and returns the byte where that hole
// starts as short (0: the whole write is reserved); any other failure
// undoes it all.
func (s *Session) reserveWrite(ip *inode, off, end int64, canShort bool) (int64, error) {
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	bs := int64(s.g.BlockSize)
	first, last := s.fsbDown(off), s.fsbUp(end)
	var got []dext
	var short int64
	// The extents reserved may have merged with delayed neighbours
	// (their indirect reservations pooled, the excess given back), so
	// what taking them out frees is what remove says, not d's own.
	var cows []dext
	undo := func() {
		for _, d := range got {
			s.dropDelalloc(ip, d.off, d.end())
		}
		for _, d := range cows {
			s.dropCowDelalloc(ip, d.off, d.end())
		}
	}
	for p := first; p < last; {
		m, err := s.lookup(ip, p)
		if err != nil {
			undo()
			return 0, err
		}
		if m.kind != mapHole {
			if ip.reflink && m.kind == mapWritten {
				// Shared blocks are written elsewhere: COW
				// reservations over them (a partial block is
				// still read from the data fork).
				q, err := s.reserveShared(ip, m, p, min(last, m.end()), &cows)
				if err != nil && canShort && q > first && errors.Is(err, ondisk.ErrNoSpace) {
					short, last = int64(q)*bs, q
					break
				}
				if err != nil {
					undo()
					return 0, err
				}
			}
			p = m.end()
			continue
		}
		eof := m.end() == ondisk.MaxFileOff
		cowNext := uint64(ondisk.MaxFileOff)
		if ip.reflink {
			// A COW extent over the hole takes the write (the COW
			// reservation of a shared neighbour was widened over
			// it): no data fork reservation under it.
			c, ok, next := ip.cow.lookup(p)
			if ok {
				p = min(last, c.end(), m.end())
				continue
			}
			cowNext = next
			m.len = min(m.end(), next) - m.off
		}
		hend := min(last, m.end())
		prealloc := uint64(0)
		if eof && end > ip.size {
			if prealloc, err = s.preallocSize(ip, p, off); err != nil {
				undo()
				return 0, err
			}
			if prealloc > 0 {
				alignEnd := (end - 1) / (bs * int64(s.allocsizeBlocks())) * (bs * int64(s.allocsizeBlocks()))
				pend := s.fsbDown(alignEnd) + prealloc
				prealloc = 0
				if pend > hend {
					prealloc = min(pend, cowNext) - min(hend, cowNext)
				}
			}
		}
		d, err := s.reserveDelalloc(ip, p, hend-p, prealloc)
		if err != nil && canShort && p > first && errors.Is(err, ondisk.ErrNoSpace) {
			short = int64(p) * bs
			last = p
			break
		}
		if err != nil {
			undo()
			return 0, err
		}
		got = append(got, d)
		// A hole longer than one extent can hold takes several.
		p = min(hend, p+d.len)
	}
	return short, nil
}

// reserveDelalloc is xfs_bmapi_reserve_delalloc: reserve length blocks at
// off plus prealloc blocks past them, capped at the largest extent,
// retrying without the preallocation when space is short.
func (s *Session) reserveDelalloc(ip *inode, off, length, prealloc uint64) (dext, error) {
	for {
		alen := min(length+prealloc, ondisk.MaxExtLen)
		ind := s.worstIndlen(alen)
		err := s.j.Reserve(int64(alen+ind), s.keepBlocks())
		if errors.Is(err, ondisk.ErrNoSpace) && prealloc > 0 {
			prealloc = 0
			continue
		}
		if err != nil {
			return dext{}, err
		}
		d := dext{off: off, len: alen, indlen: ind}
		if back := ip.del.add(d, s.worstIndlen); back > 0 {
			s.j.Unreserve(int64(back))
		}
		ip.seq.Add(1)
		return d, nil
	}
}

// keepBlocks is what the kernel takes out of the free count at mount and
// delayed allocation can never have: the per-AG reservations and the
// reserve pool.
func (s *Session) keepBlocks() int64 {
	keep := s.defaultResBlks()
	for _, r := range s.resv {
		keep += int64(r)
	}
	return keep
}

// allocsizeBlocks is m_allocsize_blocks: 64 KiB of blocks, the default
// speculative preallocation and its alignment.
func (s *Session) allocsizeBlocks() uint64 {
	return max(1, uint64(64<<10)/uint64(s.g.BlockSize))
}

// preallocSize is xfs_iomap_prealloc_size for an extending write at off
// whose first hole block is blk: nothing for small files; the default
// after a hole; else twice the contiguous extents before it, rounded down
// to a power of two and throttled as free space runs low.
func (s *Session) preallocSize(ip *inode, blk uint64, off int64) (uint64, error) {
	bs := int64(s.g.BlockSize)
	def := s.allocsizeBlocks()
	if ip.size < int64(def)*bs {
		return 0, nil
	}
	prev, ok, err := s.prevExtent(ip, blk)
	if err != nil {
		return 0, err
	}
	if !ok || prev.end() < blk {
		return def, nil
	}
	plen := prev.len
	for prev.kind != mapDelalloc {
		got, ok, err := s.prevExtent(ip, prev.off)
		if err != nil {
			return 0, err
		}
		if !ok || plen > ondisk.MaxExtLen/2 || got.kind == mapDelalloc || got.end() != prev.off || got.startBlock+got.len != prev.startBlock {
			break
		}
		plen += got.len
		prev = got
	}
	alloc := plen * 2
	if alloc > ondisk.MaxExtLen {
		alloc = uint64(off / bs)
	}
	qblocks := alloc
	alloc = min(alloc, uint64(1)<<bits.Len64(ondisk.MaxExtLen))
	free := max(s.j.FreeBlocks(), 0)
	shift := 0
	low := int64(s.g.DBlocks) / 100
	if free < low*5 {
		shift = 2
		for pct := int64(4); pct >= 1; pct-- {
			if free < low*pct {
				shift++
			}
		}
	}
	alloc = min(alloc, qblocks)
	alloc >>= shift
	if alloc > 0 {
		alloc = uint64(1) << (bits.Len64(alloc) - 1)
	}
	alloc = min(alloc, ondisk.MaxExtLen)
	for alloc > 0 && int64(alloc) >= free {
		alloc >>= 4
	}
	return max(alloc, def), nil
}

// prevExtent returns the extent, real or delayed, that ends last at or
// before file block blk (xfs_iext_prev_extent from a hole at blk or from
// an extent starting at blk).
func (s *Session) prevExtent(ip *inode, blk uint64) (mapping, bool, error) {
	if blk == 0 {
		return mapping{}, false, nil
	}
	var best mapping
	found := false
	if d, ok := ip.del.prev(blk); ok {
		best, found = mapping{off: d.off, len: d.len, kind: mapDelalloc}, true
	}
	err := s.view(ip.ino, func(t *txn) error {
		e, ok, err := t.f.Prev(blk)
		if err != nil || !ok {
			return err
		}
		if !found || e.StartOff > best.off {
			best, found = realMapping(e), true
		}
		return nil
	})
	return best, found, err
}

// fillPages copies data into the page cache, reading first a partial
// block that holds written data and has no page. Its mapping is looked
// up here, not at reservation: meanwhile a writeback may have completed
// the block's page (its unwritten extent now written, the page gone), and
// a mapping read before would fill the rest of the block with zeros. With
// the iolock held nobody else adds the page, and with no page no write to
// the block is in flight, so what the device holds and the fork says now
// is final (the kernel revalidates its cached iomap for the same reason).
func (s *Session) fillPages(ip *inode, off int64, data []byte) error {
	bs := int64(s.g.BlockSize)
	end := off + int64(len(data))
	pc := &ip.pc
	for b := s.fsbDown(off); b < s.fsbUp(end); b++ {
		lo, hi := max(off, int64(b)*bs), min(end, int64(b+1)*bs)
		// The page is found and filled under one hold of the lock: a
		// page in flight can complete and leave the cache as soon as
		// the lock is dropped.
		pc.mu.Lock()
		if p := pc.get(b); p != nil {
			copy(s.owned(p)[lo-int64(b)*bs:hi-int64(b)*bs], data[lo-off:hi-off])
			p.dirty = true
			pc.mu.Unlock()
			continue
		}
		pc.mu.Unlock()
		np := &page{blk: b, data: s.bufs.get(int(bs))}
		if hi-lo < bs {
			ip.ilock.RLock()
			m, err := s.lookup(ip, b)
			ip.ilock.RUnlock()
			if err == nil && m.kind == mapWritten {
				err = s.readBlock(np.data, m, b)
			}
			if err != nil {
				s.bufs.put(np.data)
				return err
			}
		}
		pc.mu.Lock()
		p := pc.get(b)
		if p == nil {
			p = np
			pc.t.ReplaceOrInsert(p)
			s.cache.add(bs)
		} else {
			s.bufs.put(np.data)
		}
		copy(s.owned(p)[lo-int64(b)*bs:hi-int64(b)*bs], data[lo-off:hi-off])
		p.dirty = true
		pc.mu.Unlock()
	}
	return nil
}

// readBlock reads file block b, mapped by m, from the device.
func (s *Session) readBlock(dst []byte, m mapping, b uint64) error {
	buf := ondisk.AlignedBuffer(len(dst), 4096)
	daddr := s.g.FSBOffset(m.startBlock + (b - m.off))
	if _, err := s.cdev.readData(buf, daddr); err != nil {
		return fmt.Errorf("read file block %d: %w", b, err)
	}
	copy(dst, buf)
	return nil
}
