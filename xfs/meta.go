package xfs

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// metaCache reads metadata from the device in pages of one file-system
// block and keeps them. With O_DIRECT every read is a trip to the device,
// so it matters how many there are and how many are in flight: the AG
// header sectors share a page, a run of missing pages is one read, and
// Prefetch queues many blocks (a btree node's children) to be read in the
// background, merging runs of nearby pages, while the caller goes on.
//
// A page being read is pending: a reader that needs it waits for that
// read rather than issuing its own, so two walks over interleaved trees
// (the bnobt and cntbt grow side by side) read each page once.
type metaCache struct {
	dev       ondisk.Storage
	limit     int  // bytes kept: pages and the chunk tables that hold them
	pageShift uint // log2 of the page size: the block size

	mu sync.Mutex
	// groups holds the cached pages by group of groupPages: a map entry
	// per page cost an insert per page read, thousands per walk of a
	// large tree, where one per group does.
	groups  map[int64][][]byte
	npages  int       // pages cached
	pending []pageRun // reads queued or under way, by first page
	queue   []pageRun // prefetch runs not started, in disk order
	workers int       // goroutines reading the queue
	idle    sync.Cond // signalled when the last worker leaves
	closed  bool
}

// inflight is one read of a run of pages; done is closed when it ends.
type inflight struct {
	done chan struct{}
	err  error
}

// pageRun is the pages [first, end) read by one request.
type pageRun struct {
	first, end int64
	f          *inflight
}

const (
	maxRunBytes   = 256 << 10 // largest single read
	prefetchJobs  = 4         // background reads in flight per cache
	prefetchAlign = 64 << 10  // prefetches read aligned chunks of this size
)

// errCacheClosed fails queued prefetches when the file system closes;
// nothing waits for them then.
var errCacheClosed = errors.New("metadata cache closed")

func newMetaCache(dev ondisk.Storage, limit int, blockLog uint) *metaCache {
	m := &metaCache{dev: dev, limit: limit, pageShift: blockLog, groups: make(map[int64][][]byte)}
	m.idle.L = &m.mu
	return m
}

func (m *metaCache) pageSize() int64    { return 1 << m.pageShift }
func (m *metaCache) maxRunPages() int64 { return max(1, int64(maxRunBytes)>>m.pageShift) }
func (m *metaCache) chunkPages() int64  { return max(1, int64(prefetchAlign)>>m.pageShift) }

// groupPages is how many pages share an entry of the page table. The
// entry's slice headers cost memory for the pages absent too, which the
// limit counts, so a group stays small next to a page.
const groupPages = 16

// size is what the cache holds in bytes, tables included.
func (m *metaCache) size(pages, groups int) int {
	return pages<<m.pageShift + groups*(groupPages*24+64)
}

// span is the page range [first, end) covering a metadata read.
func (m *metaCache) span(daddr int64, length int) (int64, int64) {
	start := daddr << ondisk.BBShift
	return start >> m.pageShift, (start + int64(length) + m.pageSize() - 1) >> m.pageShift
}

// ReadMeta returns length bytes at daddr. The bytes may be shared with
// the cache: callers must not modify them.
func (m *metaCache) ReadMeta(daddr int64, length int) ([]byte, error) {
	if daddr < 0 || length <= 0 {
		return nil, ondisk.Corruptf("metadata read of %d bytes at daddr %d", length, daddr)
	}
	if end := daddr<<ondisk.BBShift + int64(length); end > m.dev.Size() {
		return nil, ondisk.Corruptf("metadata at daddr %d (%d bytes) is past the end of the device", daddr, length)
	}
	first, end := m.span(daddr, length)
	start := daddr << ondisk.BBShift
	lo := start - first<<m.pageShift
	if end == first+1 {
		// Inside one page, the common case: share it. Pages are never
		// written after they are read, and callers must not modify what
		// they get.
		m.mu.Lock()
		page := m.page(first)
		m.mu.Unlock()
		if page == nil {
			have, err := m.gather(first, end)
			if err != nil {
				return nil, err
			}
			page = have[0]
		}
		return page[lo : lo+int64(length) : lo+int64(length)], nil
	}
	have, err := m.gather(first, end)
	if err != nil {
		return nil, err
	}
	out := make([]byte, length)
	n := 0
	for i, page := range have {
		from := int64(0)
		if i == 0 {
			from = lo
		}
		n += copy(out[n:], page[from:])
	}
	return out, nil
}

// gather returns the pages [first, end), reading what is missing and
// waiting for reads already under way. Pages are held as they arrive, so
// an eviction by a concurrent reader cannot take them back; each round
// either reads pages itself or waits for a read to end, and a failed
// read of someone else's is retried here, where its error is returned.
func (m *metaCache) gather(first, end int64) ([][]byte, error) {
	have := make([][]byte, end-first)
	for {
		runs, waits := m.claim(first, end, have)
		if len(runs) == 0 && len(waits) == 0 {
			return have, nil
		}
		for _, r := range runs {
			buf, err := m.readRun(r)
			if err != nil {
				return nil, err
			}
			for p := r.first; p < r.end; p++ {
				i := (p - r.first) << m.pageShift
				have[p-first] = buf[i : i+m.pageSize() : i+m.pageSize()]
			}
		}
		for _, f := range waits {
			<-f.done
		}
	}
}

// claim takes the cached pages of [first, end) not yet in have into it,
// marks the missing ones pending in runs of at most maxRunPages for the
// caller to read, and lists the reads under way for the others.
func (m *metaCache) claim(first, end int64, have [][]byte) ([]pageRun, []*inflight) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var runs []pageRun
	var waits []*inflight
	for p := first; p < end; p++ {
		if have[p-first] != nil {
			continue
		}
		if page := m.page(p); page != nil {
			have[p-first] = page
			continue
		}
		if f := m.pendingAt(p); f != nil {
			if len(waits) == 0 || waits[len(waits)-1] != f {
				waits = append(waits, f)
			}
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].end == p && p-runs[n-1].first < m.maxRunPages() {
			runs[n-1].end = p + 1
			continue
		}
		runs = append(runs, pageRun{p, p + 1, &inflight{done: make(chan struct{})}})
	}
	for _, r := range runs {
		m.addPending(r)
	}
	return runs, waits
}

// page returns cached page p, or nil.
func (m *metaCache) page(p int64) []byte {
	if g := m.groups[p/groupPages]; g != nil {
		return g[p%groupPages]
	}
	return nil
}

// pendingAt returns the read under way that covers page p, if any. Runs
// are at most maxRunPages long, so only those starting that close before
// p can cover it.
func (m *metaCache) pendingAt(p int64) *inflight {
	i, _ := slices.BinarySearchFunc(m.pending, p+1, func(r pageRun, t int64) int { return cmp.Compare(r.first, t) })
	for i--; i >= 0 && m.pending[i].first > p-m.maxRunPages(); i-- {
		if p < m.pending[i].end {
			return m.pending[i].f
		}
	}
	return nil
}

// addPending records r as under way, keeping the list in page order.
func (m *metaCache) addPending(r pageRun) {
	i, _ := slices.BinarySearchFunc(m.pending, r.first, func(q pageRun, t int64) int { return cmp.Compare(q.first, t) })
	m.pending = slices.Insert(m.pending, i, r)
}

// dropPending removes r from the reads under way.
func (m *metaCache) dropPending(r pageRun) {
	i, _ := slices.BinarySearchFunc(m.pending, r.first, func(q pageRun, t int64) int { return cmp.Compare(q.first, t) })
	for ; i < len(m.pending) && m.pending[i].first == r.first; i++ {
		if m.pending[i].f == r.f {
			m.pending = slices.Delete(m.pending, i, i+1)
			return
		}
	}
}

// readRun reads the pages of r, caches them and ends r's inflight: the
// pending pages it owns are released whether the read worked or not, so
// a failure is seen by the next reader as a page to read again.
func (m *metaCache) readRun(r pageRun) ([]byte, error) {
	off := r.first << m.pageShift
	n := min(r.end<<m.pageShift, m.dev.Size()) - off
	buf := ondisk.AlignedBuffer(int((r.end-r.first)<<m.pageShift), int(m.pageSize()))
	// A read-only image file serves the pages from the host's page cache
	// when they are all there (see ondisk.Device.ReadCached).
	hit, err := false, error(nil)
	if c, ok := m.dev.(ondisk.CachedReader); ok {
		hit, err = c.ReadCached(buf[:n], off)
	}
	if !hit && err == nil {
		_, err = m.dev.ReadAt(buf[:n], off)
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = ondisk.Corruptf("metadata at byte %d is past the end of the device", off)
		} else {
			err = fmt.Errorf("read metadata at byte %d: %w", off, err)
		}
	}
	m.mu.Lock()
	if err == nil {
		n := int(r.end - r.first)
		if m.size(m.npages+n, len(m.groups)+n/groupPages+2) > m.limit {
			clear(m.groups) // crude but bounded; walks are mostly sequential
			m.npages = 0
		}
		var g [][]byte
		for p := r.first; p < r.end; p++ {
			if g == nil || p%groupPages == 0 {
				if g = m.groups[p/groupPages]; g == nil {
					g = make([][]byte, groupPages)
					m.groups[p/groupPages] = g
				}
			}
			if g[p%groupPages] == nil {
				m.npages++
			}
			i := (p - r.first) << m.pageShift
			g[p%groupPages] = buf[i : i+m.pageSize() : i+m.pageSize()]
		}
	}
	m.dropPending(r)
	m.mu.Unlock()
	r.f.err = err
	close(r.f.done)
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// Prefetch queues the pages of many metadata blocks to be read in the
// background, a few reads in flight, and returns at once. Readers that
// need a queued page wait for its read. Errors are left for the reads
// that need the blocks: a failed prefetch leaves its pages missing.
func (m *metaCache) Prefetch(daddrs []int64, length int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	var want []int64
	for _, d := range daddrs {
		if d < 0 || d<<ondisk.BBShift+int64(length) > m.dev.Size() {
			continue // a bad pointer: the read that needs it reports it
		}
		first, end := m.span(d, length)
		for p := first; p < end; p++ {
			if m.page(p) != nil {
				continue
			}
			if m.pendingAt(p) != nil {
				continue
			}
			want = append(want, p)
		}
	}
	if len(want) == 0 {
		return
	}
	// Read whole aligned chunks, runs of neighbouring ones together:
	// btree blocks allocated one after another sit side by side, and
	// those of two trees that grew at the same time interleave, so a
	// chunk one walk wants holds the other's blocks too, which then need
	// no read of their own; and a chunk between two wanted ones costs
	// less to read through than another device trip.
	slices.Sort(want)
	want = slices.Compact(want)
	chunk, last := m.chunkPages(), (m.dev.Size()+m.pageSize()-1)>>m.pageShift
	type span struct {
		pageRun
		lo, hi, n int64 // the first and past the last wanted page, how many
	}
	var spans []span
	for _, p := range want {
		first, end := p/chunk*chunk, min((p/chunk+1)*chunk, last)
		if n := len(spans); n > 0 && (first < spans[n-1].end ||
			first-spans[n-1].end <= chunk && end-spans[n-1].first <= m.maxRunPages()) {
			r := &spans[n-1]
			r.end, r.hi, r.n = max(r.end, end), p+1, r.n+1
			continue
		}
		spans = append(spans, span{pageRun{first: first, end: end}, p, p + 1, 1})
	}
	// A block alone in its chunk (a node among the leaves of other trees,
	// say) is read by itself: the chunk around it would only make the
	// read take longer.
	blockPages := (int64(length) + m.pageSize() - 1) >> m.pageShift
	runs := make([]pageRun, len(spans))
	for i, r := range spans {
		if r.n == r.hi-r.lo && r.n <= blockPages {
			r.first, r.end = r.lo, r.hi
		}
		runs[i] = r.pageRun
	}
	// Pages of a run may be cached or pending already: they are read
	// again with the run, which is harmless since metadata pages here are
	// never written; a reader waits for whichever read it finds first.
	for i := range runs {
		runs[i].f = &inflight{done: make(chan struct{})}
		m.addPending(runs[i])
	}
	m.queue = append(m.queue, runs...)
	for ; m.workers < prefetchJobs && m.workers < len(m.queue); m.workers++ {
		go m.worker()
	}
}

// worker reads queued runs in order until the queue is empty. The queue
// is in the order prefetches asked, each in disk order, which is the order
// a walk needs the blocks in.
func (m *metaCache) worker() {
	m.mu.Lock()
	for len(m.queue) > 0 {
		r := m.queue[0]
		m.queue = m.queue[1:]
		m.mu.Unlock()
		_, _ = m.readRun(r)
		m.mu.Lock()
	}
	m.workers--
	if m.workers == 0 {
		m.idle.Broadcast()
	}
	m.mu.Unlock()
}

// close drops the prefetches not started and waits for those under way,
// so that no read reaches the device after the file system is closed.
func (m *metaCache) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, r := range m.queue {
		m.dropPending(r)
		r.f.err = errCacheClosed
		close(r.f.done)
	}
	m.queue = nil
	for m.workers > 0 {
		m.idle.Wait()
	}
}
