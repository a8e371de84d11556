package xfs

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/ondisk"
)

// countingDev records the reads that reach the device; gate, when set,
// holds every read until it is closed, and fail makes reads fail.
type countingDev struct {
	*ondisk.MemDevice
	mu    sync.Mutex
	reads [][2]int64 // offset, length
	gate  chan struct{}
	fail  error
}

func (d *countingDev) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	d.reads = append(d.reads, [2]int64{off, int64(len(p))})
	gate, fail := d.gate, d.fail
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return 0, fail
	}
	return d.MemDevice.ReadAt(p, off)
}

func (d *countingDev) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.reads)
}

// newTestCache is a cache of 1 KiB pages over a 4 MiB device whose every
// byte says where it is.
func newTestCache(t *testing.T) (*metaCache, *countingDev, []byte) {
	t.Helper()
	img := make([]byte, 4<<20)
	for i := range img {
		img[i] = byte(i / 1024 * 7)
	}
	dev := &countingDev{MemDevice: ondisk.NewMemDevice(bytes.Clone(img))}
	m := newMetaCache(dev, 4<<20, 10)
	t.Cleanup(m.close)
	return m, dev, img
}

func expectMeta(t *testing.T, m *metaCache, img []byte, daddr int64, n int) {
	t.Helper()
	got, err := m.ReadMeta(daddr, n)
	if err != nil {
		t.Errorf("ReadMeta(%d, %d): %v", daddr, n, err)
		return
	}
	off := daddr << ondisk.BBShift
	if !bytes.Equal(got, img[off:off+int64(n)]) {
		t.Errorf("ReadMeta(%d, %d) returned other bytes", daddr, n)
	}
}

// waitIdle waits for the background reads to end.
func waitIdle(m *metaCache) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.workers > 0 {
		m.idle.Wait()
	}
}

// A prefetch reads aligned chunks, neighbours in one request, or a lone
// block by itself, and the reads after it find the blocks cached.
func TestMetaPrefetchChunks(t *testing.T) {
	m, dev, img := newTestCache(t)
	// Blocks 100, 103, 170 (one chunk and the next: one read) and 1000
	// (alone in its chunk: a read of its own), in no order and once twice.
	blocks := []int64{170, 100, 1000, 103, 100}
	var daddrs []int64
	for _, b := range blocks {
		daddrs = append(daddrs, b*2)
	}
	m.Prefetch(daddrs, 1024)
	for _, b := range blocks {
		expectMeta(t, m, img, b*2, 1024)
	}
	waitIdle(m)
	want := [][2]int64{{64 << 10, 128 << 10}, {1000 << 10, 1 << 10}}
	dev.mu.Lock()
	defer dev.mu.Unlock()
	slices.SortFunc(dev.reads, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	if !slices.Equal(dev.reads, want) {
		t.Fatalf("device reads %v, want %v", dev.reads, want)
	}
}

// Readers of a page being read wait for that read instead of issuing
// their own.
func TestMetaPendingShared(t *testing.T) {
	m, dev, img := newTestCache(t)
	dev.gate = make(chan struct{})
	m.Prefetch([]int64{200, 206}, 1024) // blocks 100 and 103: their chunk
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			expectMeta(t, m, img, 200, 1024)
			expectMeta(t, m, img, 202, 512) // same chunk, other page
		}()
	}
	time.Sleep(20 * time.Millisecond) // let the readers queue up on the read
	close(dev.gate)
	wg.Wait()
	if n := dev.count(); n != 1 {
		t.Fatalf("%d device reads, want 1", n)
	}
	// A read across pages, one cached and one not, reads only the other.
	expectMeta(t, m, img, (64<<10)/512-1, 1024)
	if n := dev.count(); n != 2 {
		t.Fatalf("%d device reads, want 2", n)
	}
}

// A failed prefetch leaves its pages missing: the reader that needs one
// reads it itself and gets the error from its own read, or the data once
// the device works again.
func TestMetaPrefetchFailure(t *testing.T) {
	m, dev, img := newTestCache(t)
	bad := errors.New("media error")
	dev.fail = bad
	m.Prefetch([]int64{400}, 1024)
	waitIdle(m)
	if _, err := m.ReadMeta(400, 1024); !errors.Is(err, bad) {
		t.Fatalf("ReadMeta after a failed prefetch: %v, want the device's error", err)
	}
	dev.mu.Lock()
	dev.fail = nil
	dev.mu.Unlock()
	expectMeta(t, m, img, 400, 1024)
	if len(m.pending) != 0 {
		t.Fatalf("pages left pending: %v", m.pending)
	}
}

// close drops the queue and waits for the reads under way, so that none
// reaches the device after it; reads after close still work, uncached by
// prefetch.
func TestMetaClose(t *testing.T) {
	m, dev, img := newTestCache(t)
	dev.gate = make(chan struct{})
	var daddrs []int64
	for c := range int64(16) {
		daddrs = append(daddrs, c*(256<<10)/512) // 16 runs, one per 256 KiB
	}
	m.Prefetch(daddrs, 1024)
	for dev.count() < prefetchJobs {
		time.Sleep(time.Millisecond) // until every worker holds a read
	}
	done := make(chan struct{})
	go func() { m.close(); close(done) }()
	select {
	case <-done:
		t.Fatal("close returned with reads under way")
	case <-time.After(20 * time.Millisecond):
	}
	close(dev.gate)
	<-done
	if n := dev.count(); n != prefetchJobs {
		t.Fatalf("%d device reads, want the %d under way at close", n, prefetchJobs)
	}
	n := dev.count()
	m.Prefetch([]int64{3000}, 1024)
	expectMeta(t, m, img, 3000, 1024)
	if got := dev.count(); got != n+1 {
		t.Fatalf("%d device reads after close, want 1", got-n)
	}
}

// The cache stays within its limit, the tables holding the pages counted,
// however sparsely the pages are read.
func TestMetaLimit(t *testing.T) {
	m, _, img := newTestCache(t)
	m.limit = 64 << 10
	for i := range int64(300) {
		daddr := (i * 37 % 4000) * 2 // blocks spread over the device
		expectMeta(t, m, img, daddr, 1024)
		m.mu.Lock()
		size := m.size(m.npages, len(m.groups))
		m.mu.Unlock()
		if size > m.limit {
			t.Fatalf("after %d reads the cache holds %d bytes, over its limit of %d", i+1, size, m.limit)
		}
	}
}
