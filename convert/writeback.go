package convert

import (
	"errors"
	"fmt"
	"sync"

	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Writeback is the kernel's since 2019 (xfs_map_blocks with the fork
// sequence numbers, xfs_bmapi_convert_delalloc): a context caches one
// mapping and the fork's sequence number it was read at; a cached mapping
// is used only while it covers the block and the number has not moved;
// otherwise the block is looked up again, and a delayed extent found there
// is converted whole, looked up again under the exclusive lock, so that
// only what backs the page being written (the one thing nobody can take
// away meanwhile) decides what is allocated. Holes are never allocated.

// Hook points: where the kernel drops the inode lock in writeback and
// truncate. Tests park goroutines there to force the races.
const (
	HookAfterLookup       = "wb.after_lookup_unlocked"
	HookBetweenPages      = "wb.between_pages"
	HookAfterPartialAlloc = "conv.after_partial_alloc"
	HookBeforeSubmit      = "wb.before_submit"
	HookTruncInvalidated  = "trunc.after_invalidate"
	// Between a write's reservation and its page copy, where the
	// kernel's iomap_begin has dropped the inode lock.
	HookWriteMapped = "write.after_iomap_begin"
)

// Hook is called at a hook point with the inode and file block at hand.
type Hook func(point string, ino, blk uint64)

func (s *Session) hook(point string, ino, blk uint64) {
	if s.opt.Hook != nil {
		s.opt.Hook(point, ino, blk)
	}
}

// wbCtx is the writeback context: xfs_writepage_ctx's iomap and seq.
type wbCtx struct {
	m      mapping
	seq    uint64
	cowSeq uint64
	valid  bool
}

// mapper maps a dirty block for writeback. The engine has one; tests add
// the pre-2019 one to show that the races they set up are real.
type mapper interface {
	mapBlock(s *Session, ip *inode, ctx *wbCtx, blk uint64) (mapping, error)
}

type fixedMapper struct{}

// mapBlock is xfs_map_blocks. A cached mapping holds while it covers the
// block and the COW fork's sequence number has not moved (a COW
// reservation made meanwhile must send the block to the COW fork; a COW
// extent cancelled by a truncate meanwhile must not be written to, and
// the kernel's rule that a COW mapping stays valid by its range alone
// would let a page dirtied again after the truncate go to freed blocks);
// a cached data mapping also needs the data fork's number unchanged.
// The COW fork is looked at first; a delayed extent there is converted,
// and if it is gone by then (-EAGAIN) the block is looked up once more in
// the data fork alone. A data mapping stops where the next COW extent
// starts.
func (fixedMapper) mapBlock(s *Session, ip *inode, ctx *wbCtx, blk uint64) (mapping, error) {
	if ctx.valid && ctx.m.covers(blk) && ctx.cowSeq == ip.cowSeq.Load() && (ctx.m.cow || ctx.seq == ip.seq.Load()) {
		return ctx.m, nil
	}
	ctx.valid = false
	dataOnly := false
	for {
		ip.ilock.RLock()
		seq, cowSeq := ip.seq.Load(), ip.cowSeq.Load()
		cowNext := uint64(ondisk.MaxFileOff)
		if !dataOnly {
			c, ok, next := ip.cow.lookup(blk)
			if ok {
				ip.ilock.RUnlock()
				if c.kind == mapDelalloc {
					s.hook(HookAfterLookup, ip.ino, blk)
					var err error
					c, cowSeq, err = s.convertCow(ip, blk)
					if errors.Is(err, errCowGone) {
						dataOnly = true
						continue
					}
					if err != nil {
						return mapping{}, err
					}
				}
				ctx.m, ctx.seq, ctx.cowSeq, ctx.valid = c, seq, cowSeq, true
				return c, nil
			}
			cowNext = next
		}
		m, err := s.lookup(ip, blk)
		ip.ilock.RUnlock()
		if err != nil {
			return mapping{}, err
		}
		if m.kind == mapDelalloc {
			s.hook(HookAfterLookup, ip.ino, blk)
			if m, seq, err = s.convertDelalloc(ip, blk); err != nil {
				return mapping{}, err
			}
		}
		if m.end() > cowNext && cowNext > blk {
			m.len = cowNext - m.off
		}
		ctx.m, ctx.seq, ctx.cowSeq, ctx.valid = m, seq, cowSeq, m.real()
		return m, nil
	}
}

// convertDelalloc is xfs_bmapi_convert_delalloc: under the exclusive lock,
// look block blk up again and allocate the whole delayed extent backing
// it, unwritten, in one transaction; repeat while the allocation came back
// short of blk. It returns the mapping covering blk as it is now (someone
// else may have converted it, or punched it to a hole) and the sequence
// number it was read at.
func (s *Session) convertDelalloc(ip *inode, blk uint64) (mapping, uint64, error) {
	for {
		ip.ilock.Lock()
		d, ok := ip.del.find(blk)
		if !ok {
			m, err := s.lookup(ip, blk)
			seq := ip.seq.Load()
			ip.ilock.Unlock()
			return m, seq, err
		}
		e, err := s.allocDelalloc(ip, d)
		if err != nil {
			ip.ilock.Unlock()
			return mapping{}, 0, err
		}
		var m mapping
		covered := blk < e.End()
		if covered {
			m, err = s.lookup(ip, blk)
		}
		seq := ip.seq.Load()
		ip.ilock.Unlock()
		if covered || err != nil {
			return m, seq, err
		}
		s.hook(HookAfterPartialAlloc, ip.ino, blk)
	}
}

// allocDelalloc allocates delayed extent d from its start, as much as one
// allocation gets, as unwritten blocks: the reservation made at write time
// pays for it, and what the rest of d still needs stays reserved. The
// caller holds ilock exclusively.
func (s *Session) allocDelalloc(ip *inode, d dext) (ondisk.Extent, error) {
	t, err := s.beginRsvd(ip.ino)
	if err != nil {
		return ondisk.Extent{}, err
	}
	if err := t.tx.TakeReserved(int64(d.len + d.indlen)); err != nil {
		t.cancel()
		return ondisk.Extent{}, err
	}
	nb := t.f.Core().NBlocks
	e, err := t.allocHole(d.off, d.len)
	if err != nil {
		if rerr := t.tx.ReturnReserved(int64(d.len + d.indlen)); rerr != nil {
			err = fmt.Errorf("%w (and %w)", err, rerr)
		}
		t.cancel()
		return ondisk.Extent{}, fmt.Errorf("convert delayed extent [%d,+%d): %w", d.off, d.len, err)
	}
	used := t.f.Core().NBlocks - nb - e.BlockCount // BMBT blocks
	left := d.len - e.BlockCount
	var leftInd uint64
	if left > 0 {
		leftInd = min(s.worstIndlen(left), d.indlen-min(used, d.indlen))
	}
	if err := t.tx.ReturnReserved(int64(left + leftInd)); err != nil {
		t.cancel()
		return ondisk.Extent{}, err
	}
	if err := t.commit(); err != nil {
		return ondisk.Extent{}, err
	}
	ip.del.del(d)
	if left > 0 {
		ip.del.put(dext{off: e.End(), len: left, indlen: leftInd})
	}
	ip.seq.Add(1)
	s.addStats(func(st *Stats) { st.DelallocConverted++ })
	return e, nil
}

// beginRsvd starts a transaction on ino's data fork for work whose space
// was reserved before (writeback's), with room for a BMBT split taken
// from the set-aside if need be.
func (s *Session) beginRsvd(ino uint64) (*txn, error) {
	tx, err := s.j.Begin(log.Reservation{Blocks: int64(s.maxLevels), Rsvd: true})
	if err != nil {
		if tx, err = s.j.Begin(log.Reservation{}); err != nil {
			return nil, err
		}
	}
	return s.beginTx(tx, ino, int64(s.maxLevels))
}

// errSkipBlock from a mapper says it found nothing to write the block to:
// the page is dropped as the kernel's writepage_map skips a hole. Only the
// tests' legacy mapper returns it (the engine's treats a hole under a
// dirty page below EOF as an error).
var errSkipBlock = errors.New("nothing to write the block to")

// maxIOBytes bounds one data write.
const maxIOBytes = 4 << 20

// syncMode is wbc->sync_mode: what a writeback does about the pages of
// its range that another writeback of the file has in flight (busy: the
// writeback bit). No lock keeps two writebacks of a file apart; the busy
// flag does, as in the kernel.
type syncMode uint8

const (
	// syncNone (WB_SYNC_NONE: background and dirty-limit writeback)
	// skips them.
	syncNone syncMode = iota
	// syncAll (WB_SYNC_ALL: a data-integrity flush, as fsync, sync and
	// the flush before truncate, punch and fallocate change extents)
	// skips them too on its pass, then waits for each and writes it if
	// it is dirty again (write_cache_pages waits on a page under
	// writeback, then writes it if dirty). On return every page of the
	// range dirty when it started is written and none is in flight
	// (filemap_fdatawait_range).
	syncAll
)

// writeback writes the dirty pages of file blocks [lo, hi) and waits for
// them, as write_cache_pages with xfs_writepages does: in offset order,
// contiguous blocks merged into one I/O, several I/Os in flight.
func (s *Session) writeback(ip *inode, lo, hi uint64, mode syncMode) error {
	var (
		ctx   wbCtx
		cur   *ioend
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		if first == nil {
			first = err
		}
		errMu.Unlock()
	}
	submit := func(io *ioend) {
		if io == nil {
			return
		}
		s.hook(HookBeforeSubmit, ip.ino, io.off)
		s.ioSem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.ioSem }()
			if err := s.runIO(io); err != nil {
				fail(err)
			}
		}()
	}
	bs := uint64(s.g.BlockSize)
	pc := &ip.pc
	// next takes the next page to write: the dirty pages of [lo, hi) in
	// order, skipping those in flight in other writebacks, and then, in
	// syncAll, each of those skipped once it is no longer in flight, if
	// it is dirty again.
	var inFlight []*page
	next := func() *page {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if lo < hi {
			p := pc.takeDirty(lo, hi)
			end := hi
			if p != nil {
				end = p.blk
			}
			if mode == syncAll {
				// The cache holds dirty or busy pages only: what
				// takeDirty passed is in flight elsewhere.
				for _, q := range pc.pages(lo, end) {
					if q.busy {
						inFlight = append(inFlight, q)
					}
				}
			}
			if p != nil {
				lo = p.blk + 1
				return p
			}
			lo = hi
		}
		for ; len(inFlight) > 0; inFlight = inFlight[1:] {
			p := inFlight[0]
			if p.busy {
				// Never sleep on a page with pages of ours not
				// submitted: its writeback may be waiting for them.
				pc.mu.Unlock()
				submit(cur)
				cur = nil
				pc.mu.Lock()
				for p.busy {
					pc.cond.Wait()
				}
			}
			if p.dirty && pc.get(p.blk) == p {
				inFlight = inFlight[1:]
				p.dirty, p.busy = false, true
				return p
			}
		}
		return nil
	}
	for n := 0; ; n++ {
		p := next()
		if p == nil {
			break
		}
		if n > 0 {
			s.hook(HookBetweenPages, ip.ino, p.blk)
		}
		m, err := s.mapper.mapBlock(s, ip, &ctx, p.blk)
		if errors.Is(err, errSkipBlock) {
			s.dropPage(ip, p)
			continue
		}
		if err == nil && !m.real() {
			ip.ilock.RLock()
			size := ip.size
			ip.ilock.RUnlock()
			if int64(p.blk*bs) >= size {
				// Past EOF (truncated meanwhile): nothing to write.
				s.dropPage(ip, p)
				continue
			}
			err = fmt.Errorf("inode %d: dirty file block %d over a %v below EOF", ip.ino, p.blk, m.kind)
		}
		if err != nil {
			s.redirty(ip, p)
			fail(err)
			break
		}
		dblk := m.startBlock + (p.blk - m.off)
		if cur != nil && (p.blk != cur.off+uint64(len(cur.pages)) || dblk != cur.dblk+uint64(len(cur.pages)) ||
			m.cow != cur.cow || uint64(len(cur.pages)+1)*bs > maxIOBytes) {
			submit(cur)
			cur = nil
		}
		if cur == nil {
			cur = s.newIoend(ip, p.blk, dblk)
		}
		cur.cow = m.cow
		cur.unwritten = cur.unwritten || (m.kind == mapUnwritten && !m.cow)
		s.addPage(cur, p)
	}
	submit(cur)
	wg.Wait()
	return first
}

// redirty puts a page writeback could not map back as it was.
func (s *Session) redirty(ip *inode, p *page) {
	pc := &ip.pc
	pc.mu.Lock()
	p.busy, p.dirty = false, true
	pc.cond.Broadcast()
	pc.mu.Unlock()
}

// dropPage takes a page writeback found nothing to write for out of the
// cache.
func (s *Session) dropPage(ip *inode, p *page) {
	pc := &ip.pc
	pc.mu.Lock()
	p.busy = false
	if !p.dirty {
		pc.t.Delete(p)
		s.cache.add(-int64(len(p.data)))
		s.bufs.put(p.data)
		p.data = nil
	}
	pc.cond.Broadcast()
	pc.mu.Unlock()
}
