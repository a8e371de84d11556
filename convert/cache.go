package convert

import (
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// cachedDev keeps what a session reads from the device in memory, page by
// page, and writes through it. The journal drops metadata buffers once they
// are written in place and reads them again when a later transaction needs
// them; with O_DIRECT every such read would go to the disk. All writes of
// the session (log, write-back, file data) pass through here, so the
// cache never goes stale.
type cachedDev struct {
	ondisk.Storage
	mu    sync.Mutex
	pages map[int64][]byte // page index -> contents
	limit int              // pages kept before the cache starts over
}

const cachePage = 4096

func newCachedDev(dev ondisk.Storage, limitBytes int) *cachedDev {
	return &cachedDev{Storage: dev, pages: map[int64][]byte{}, limit: max(limitBytes/cachePage, 16)}
}

// ReadAt serves whole cached pages from memory and reads the missing ones
// (page-aligned, so O_DIRECT devices take them as they are).
func (c *cachedDev) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := off + int64(len(p))
	first, last := off/cachePage, (end-1)/cachePage
	if end > c.Storage.Size() || last-first+1 > int64(c.limit) {
		return c.Storage.ReadAt(p, off)
	}
	// Read the run of missing pages in one request.
	for pg := first; pg <= last; {
		if c.pages[pg] != nil {
			pg++
			continue
		}
		run := pg
		for run <= last && c.pages[run] == nil {
			run++
		}
		n := (run - pg) * cachePage
		if pg*cachePage+n > c.Storage.Size() {
			n = c.Storage.Size() - pg*cachePage
		}
		buf := ondisk.AlignedBuffer(int(n), cachePage)
		if _, err := c.Storage.ReadAt(buf, pg*cachePage); err != nil {
			return c.Storage.ReadAt(p, off)
		}
		if len(c.pages)+int(run-pg) > c.limit {
			clear(c.pages)
		}
		for i := pg; i < run; i++ {
			lo := (i - pg) * cachePage
			c.pages[i] = buf[lo:min(lo+cachePage, int64(len(buf)))]
		}
		pg = run
	}
	for pg := first; pg <= last; pg++ {
		page := c.pages[pg]
		base := pg * cachePage
		lo, hi := max(off, base), min(end, base+int64(len(page)))
		copy(p[lo-off:hi-off], page[lo-base:hi-base])
	}
	return len(p), nil
}

// WriteAt writes through and updates the cached pages it covers.
func (c *cachedDev) WriteAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.Storage.WriteAt(p, off)
	end := off + int64(n)
	for pg := off / cachePage; n > 0 && pg <= (end-1)/cachePage; pg++ {
		page := c.pages[pg]
		if page == nil {
			continue
		}
		base := pg * cachePage
		lo, hi := max(off, base), min(end, base+int64(len(page)))
		if lo < hi {
			copy(page[lo-base:hi-base], p[lo-off:hi-off])
		}
	}
	if err != nil {
		// What reached the device is unknown: forget it.
		for pg := off / cachePage; pg <= (off+int64(len(p))-1)/cachePage; pg++ {
			delete(c.pages, pg)
		}
	}
	return n, err
}

// readData reads file data straight from the device, leaving the cache
// to metadata. p and off must suit O_DIRECT.
func (c *cachedDev) readData(p []byte, off int64) (int, error) {
	return c.Storage.ReadAt(p, off)
}

// writeData writes file data, the buffers of bufs one after the other,
// straight to the device, without holding the cache's lock (data writes
// run in parallel), and forgets cached pages it overwrote: a block freed
// as metadata may come back as file data.
func (c *cachedDev) writeData(bufs [][]byte, off int64) (int, error) {
	n, err := ondisk.WriteV(c.Storage, bufs, off)
	end := off
	for _, b := range bufs {
		end += int64(len(b))
	}
	c.mu.Lock()
	for pg := off / cachePage; pg <= (end-1)/cachePage; pg++ {
		delete(c.pages, pg)
	}
	c.mu.Unlock()
	return n, err
}
