package convert

import (
	"sync"

	"github.com/google/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The page cache: a file's data between a write and its writeback, one
// page per file system block. A page is dirty from the write until
// writeback takes it; busy from then until its I/O completed (the page
// lock plus the writeback bit: truncate and punch wait for it). Clean,
// idle pages leave the cache at once, so the cache holds only what is
// dirty or in flight and its size is what --dirty-limit bounds.
type page struct {
	blk   uint64
	data  []byte
	dirty bool
	busy  bool
	// inflight: an I/O is writing from data itself. A writer then
	// continues the page in a copy (owned) and leaves the buffer to the
	// I/O: the device sees stable data and writers never wait for it.
	inflight bool
}

// owned returns p's data for changing. The caller holds pc.mu.
func (s *Session) owned(p *page) []byte {
	if p.inflight {
		nb := s.bufs.get(len(p.data))
		copy(nb, p.data)
		p.data, p.inflight = nb, false
	}
	return p.data
}

type pageCache struct {
	mu   sync.Mutex
	cond *sync.Cond
	t    *btree.BTreeG[*page]
}

func (pc *pageCache) init() {
	pc.cond = sync.NewCond(&pc.mu)
	pc.t = btree.NewG(32, func(a, b *page) bool { return a.blk < b.blk })
}

// get returns the page of blk or nil. The caller holds pc.mu.
func (pc *pageCache) get(blk uint64) *page {
	p, _ := pc.t.Get(&page{blk: blk})
	return p
}

// hasDirty reports whether any page of the file is dirty or in flight.
func (pc *pageCache) hasDirty() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.t.Len() > 0
}

// takeDirty finds the first dirty page at or after blk and below end that
// is not in flight, marks it busy and clean, and returns it. The caller
// holds pc.mu.
func (pc *pageCache) takeDirty(blk, end uint64) *page {
	var got *page
	pc.t.AscendRange(&page{blk: blk}, &page{blk: end}, func(p *page) bool {
		if p.dirty && !p.busy {
			got = p
			return false
		}
		return true
	})
	if got != nil {
		got.dirty, got.busy = false, true
	}
	return got
}

// waitIdle waits until no page in [lo, hi) is in flight. The caller holds
// pc.mu.
func (pc *pageCache) waitIdle(lo, hi uint64) {
	for {
		busy := false
		pc.t.AscendRange(&page{blk: lo}, &page{blk: hi}, func(p *page) bool {
			busy = p.busy
			return !busy
		})
		if !busy {
			return
		}
		pc.cond.Wait()
	}
}

// pages lists the pages in [lo, hi). The caller holds pc.mu.
func (pc *pageCache) pages(lo, hi uint64) []*page {
	var out []*page
	pc.t.AscendRange(&page{blk: lo}, &page{blk: hi}, func(p *page) bool {
		out = append(out, p)
		return true
	})
	return out
}

// cacheBytes counts the bytes the page caches of all files hold.
type cacheBytes struct {
	mu    sync.Mutex
	cond  *sync.Cond
	bytes int64
	peak  int64
	// The flusher's state (flusher.go), under mu so that a writer
	// waiting for the cache to shrink cannot miss the flusher stopping.
	flushing bool
	flushErr error
	ios      uint64 // data writes completed: the flusher's progress
}

func (c *cacheBytes) add(n int64) {
	c.mu.Lock()
	c.bytes += n
	c.peak = max(c.peak, c.bytes)
	c.mu.Unlock()
	if n < 0 {
		c.cond.Broadcast()
	}
}

// ioDone counts a completed data write and wakes who waits for one.
func (c *cacheBytes) ioDone() {
	c.mu.Lock()
	c.ios++
	c.mu.Unlock()
	c.cond.Broadcast()
}

func (c *cacheBytes) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// pageBufs keeps the data buffers of pages that left the cache for the
// next pages: a long write then reuses the same DirtyLimit worth of
// buffers instead of making a block's worth of garbage per block written
// (which made the Go heap, and so the resident set, grow to several times
// the limit between collections).
type pageBufs struct {
	mu   sync.Mutex
	free [][]byte
	max  int
}

// get returns a zeroed buffer of n bytes.
func (b *pageBufs) get(n int) []byte {
	b.mu.Lock()
	if k := len(b.free); k > 0 {
		buf := b.free[k-1]
		b.free = b.free[:k-1]
		b.mu.Unlock()
		if len(buf) == n {
			clear(buf)
			return buf
		}
	} else {
		b.mu.Unlock()
	}
	// Aligned: writeback hands the page itself to an O_DIRECT write.
	return ondisk.AlignedBuffer(n, n)
}

// put keeps buf for reuse; the caller must hold no reference to it.
func (b *pageBufs) put(buf []byte) {
	b.mu.Lock()
	if len(b.free) < b.max {
		b.free = append(b.free, buf)
	}
	b.mu.Unlock()
}
