package ondisk_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/ondisk"
)

// ReadCached serves a read from the page cache only when every page of it
// is there, returns the file's bytes when it does, and never applies to a
// writable open.
func TestReadCached(t *testing.T) {
	const size = 1 << 20
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Cachestat_t
	probe, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if err := unix.Cachestat(uint(probe.Fd()), &unix.CachestatRange{Len: size}, &st, 0); errors.Is(err, unix.ENOSYS) {
		t.Skip("cachestat(2) needs Linux 6.5")
	}
	evict := func() {
		t.Helper()
		if err := unix.Fdatasync(int(probe.Fd())); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fadvise(int(probe.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ondisk.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Direct() {
		t.Skip("the file system under the test directory refuses O_DIRECT: nothing to serve from the cache instead")
	}
	read := func(off, n int) (bool, []byte) {
		t.Helper()
		p := make([]byte, n)
		hit, err := d.ReadCached(p, int64(off))
		if err != nil {
			t.Fatal(err)
		}
		return hit, p
	}

	evict()
	if hit, _ := read(4096, 8192); hit {
		t.Fatal("hit on pages just evicted")
	}
	// Fill the cache with a buffered read of the whole file.
	if _, err := probe.ReadAt(make([]byte, size), 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ off, n int }{
		{0, 512}, {512, 1024}, {4096, 4096}, {1000, 70000}, {size - 1024, 1024}, {0, size},
	} {
		hit, p := read(c.off, c.n)
		if !hit {
			t.Fatalf("%d bytes at %d: miss with the whole file cached", c.n, c.off)
		}
		if !bytes.Equal(p, data[c.off:c.off+c.n]) {
			t.Fatalf("%d bytes at %d: cached read differs from the file", c.n, c.off)
		}
	}
	// One page missing in the middle of a range makes the range a miss.
	if err := unix.Fadvise(int(probe.Fd()), 65536, 4096, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if hit, _ := read(60000, 20000); hit {
		t.Fatal("hit over a range with a page evicted")
	}
	if hit, _ := read(0, 65536); !hit {
		t.Fatal("miss on the cached range before the evicted page")
	}
	// Past the end: no hit, and ReadAt reports the error.
	if hit, _ := read(size-512, 1024); hit {
		t.Fatal("hit past the end of the file")
	}

	w, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err == nil {
		defer w.Close()
		if hit, _ := w.ReadCached(make([]byte, 512), 0); hit {
			t.Fatal("a writable open served a read from the page cache")
		}
	}
}
