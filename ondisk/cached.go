package ondisk

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CachedReader is a Storage that can serve a read from the host's page
// cache when all of it is there, without doing any I/O otherwise.
type CachedReader interface {
	ReadCached(p []byte, off int64) (bool, error)
}

var hostPageSize = int64(os.Getpagesize())

// ReadCached reads len(p) bytes at off through the page cache if every
// page of the range is cached already, and reports whether it did; on a
// miss it reads nothing, and the caller goes to the device with O_DIRECT.
//
// It applies to image files opened read-only. An image that xfs_db or
// xfs_repair just read, or that was written through a loop device, sits
// in the host's page cache, wholly or in part; reading those pages costs
// a copy, where O_DIRECT goes to the disk for each. A read with any page
// missing is a miss as a whole: the metadata cache reads runs of blocks,
// and right after a loop mount the blocks between a tree's blocks (file
// space never written, say) are often not cached, so such runs still go
// O_DIRECT. The page cache of a regular file is
// that file's contents (O_DIRECT writes invalidate it, O_DIRECT reads write
// dirty pages back first), so the bytes are the same either way. What is
// not cached is still read with O_DIRECT, so that inspecting a large image
// does not fill the page cache with it; cachestat(2) asks without reading.
// A block device's page cache can be stale under a mounted file system:
// those are always read directly.
func (d *Device) ReadCached(p []byte, off int64) (bool, error) {
	if d.cached == nil || len(p) == 0 || d.noCachestat.Load() {
		return false, nil
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return false, nil // ReadAt reports it
	}
	first := off / hostPageSize * hostPageSize
	pages := (off + int64(len(p)) - first + hostPageSize - 1) / hostPageSize
	r := unix.CachestatRange{Off: uint64(first), Len: uint64(pages * hostPageSize)}
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(d.cached.Fd()), &r, &st, 0); err != nil {
		// ENOSYS on kernels before 6.5; anything else is no reason to
		// fail a read that O_DIRECT can do.
		d.noCachestat.Store(true)
		return false, nil
	}
	if int64(st.Cache) < pages {
		return false, nil
	}
	n, err := d.cached.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: read %d bytes at %d: %w", d.path, len(p), off, err)
	}
	return true, nil
}
