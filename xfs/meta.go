package xfs

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// metaCache reads metadata from the device in pages of one file-system
// block and keeps them. With O_DIRECT every read is a trip to the device,
// so it matters how many there are: the AG header sectors share a page, a
// run of missing pages is one read, and Prefetch reads many blocks at once
// (a btree node's children) with several reads in flight, merging runs of
// nearby pages.
type metaCache struct {
	dev       ondisk.Storage
	limit     int  // pages kept
	pageShift uint // log2 of the page size: the block size

	mu    sync.Mutex
	pages map[int64][]byte // page index -> page
}

const (
	maxRunBytes  = 256 << 10 // largest single read
	prefetchJobs = 8
	prefetchGap  = 4 // pages a prefetch reads through rather than split a run
)

func newMetaCache(dev ondisk.Storage, limit int, blockLog uint) *metaCache {
	return &metaCache{dev: dev, limit: limit, pageShift: blockLog, pages: make(map[int64][]byte)}
}

func (m *metaCache) pageSize() int64    { return 1 << m.pageShift }
func (m *metaCache) maxRunPages() int64 { return maxRunBytes >> m.pageShift }

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
	if err := m.load(first, end); err != nil {
		return nil, err
	}
	start := daddr << ondisk.BBShift
	m.mu.Lock()
	defer m.mu.Unlock()
	if end == first+1 {
		// Inside one page: share it. Pages are never written after they
		// are read, and callers must not modify what they get.
		if page, ok := m.pages[first]; ok {
			lo := start - first<<m.pageShift
			return page[lo : lo+int64(length) : lo+int64(length)], nil
		}
	}
	out := make([]byte, length)
	for p := first; p < end; p++ {
		page, ok := m.pages[p]
		if !ok {
			// Evicted between load and copy by a concurrent reader's
			// eviction; read it again outside the lock.
			m.mu.Unlock()
			err := m.load(p, p+1)
			m.mu.Lock()
			if err != nil {
				return nil, err
			}
			page = m.pages[p]
		}
		pstart := p << m.pageShift
		lo, hi := max(start, pstart), min(start+int64(length), pstart+m.pageSize())
		copy(out[lo-start:hi-start], page[lo-pstart:hi-pstart])
	}
	return out, nil
}

// load reads the missing pages of [first, end), a run per read.
func (m *metaCache) load(first, end int64) error {
	for _, r := range m.missing(first, end) {
		if err := m.readRun(r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

// missing lists the runs of absent pages in [first, end), each at most
// maxRunPages long.
func (m *metaCache) missing(first, end int64) [][2]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var runs [][2]int64
	for p := first; p < end; p++ {
		if _, ok := m.pages[p]; ok {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1][1] == p && p-runs[n-1][0] < m.maxRunPages() {
			runs[n-1][1] = p + 1
			continue
		}
		runs = append(runs, [2]int64{p, p + 1})
	}
	return runs
}

func (m *metaCache) readRun(first, end int64) error {
	off := first << m.pageShift
	n := min(end<<m.pageShift, m.dev.Size()) - off
	buf := ondisk.AlignedBuffer(int((end-first)<<m.pageShift), int(m.pageSize()))
	if _, err := m.dev.ReadAt(buf[:n], off); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ondisk.Corruptf("metadata at byte %d is past the end of the device", off)
		}
		return fmt.Errorf("read metadata at byte %d: %w", off, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pages)+int(end-first) > m.limit {
		clear(m.pages) // crude but bounded; walks are mostly sequential
	}
	for p := first; p < end; p++ {
		i := (p - first) << m.pageShift
		m.pages[p] = buf[i : i+m.pageSize() : i+m.pageSize()]
	}
	return nil
}

// Prefetch reads the pages of many metadata blocks at once, several reads
// in flight. Errors are left for the reads that need the blocks.
func (m *metaCache) Prefetch(daddrs []int64, length int) {
	// Gather the missing pages, sort them, and read runs of nearby pages
	// together: btree blocks allocated one after another sit side by
	// side, and a gap of a few pages costs less than another device trip.
	var want []int64
	for _, d := range daddrs {
		first, end := m.span(d, length)
		for _, r := range m.missing(first, end) {
			for p := r[0]; p < r[1]; p++ {
				want = append(want, p)
			}
		}
	}
	if len(want) == 0 {
		return
	}
	slices.Sort(want)
	var runs [][2]int64
	for _, p := range want {
		if n := len(runs); n > 0 && p < runs[n-1][1] {
			continue // duplicate
		} else if n > 0 && p-runs[n-1][1] <= prefetchGap && p+1-runs[n-1][0] <= m.maxRunPages() {
			runs[n-1][1] = p + 1
			continue
		}
		runs = append(runs, [2]int64{p, p + 1})
	}
	jobs := make(chan [2]int64)
	var wg sync.WaitGroup
	for range min(prefetchJobs, len(runs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				_ = m.readRun(r[0], r[1])
			}
		}()
	}
	for _, r := range runs {
		jobs <- r
	}
	close(jobs)
	wg.Wait()
}
