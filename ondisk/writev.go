package ondisk

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// VectorWriter is a Storage that writes several buffers to consecutive
// bytes in one request (pwritev), so that data scattered over memory, a
// page cache's pages, reaches the device without first being gathered
// into one buffer.
type VectorWriter interface {
	WriteVAt(bufs [][]byte, off int64) (int, error)
}

// WriteV writes bufs to consecutive bytes of s from off: in one request
// when s is a VectorWriter, else gathered into one buffer first.
func WriteV(s Storage, bufs [][]byte, off int64) (int, error) {
	if vw, ok := s.(VectorWriter); ok {
		return vw.WriteVAt(bufs, off)
	}
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	all := AlignedBuffer(n, s.SectorSize())[:0]
	for _, b := range bufs {
		all = append(all, b...)
	}
	return s.WriteAt(all, off)
}

// iovMax is the kernel's limit on buffers per pwritev (UIO_MAXIOV).
const iovMax = 1024

// WriteVAt writes bufs to consecutive bytes from off. Under O_DIRECT every
// buffer must start and end on a sector boundary; when one does not, the
// whole request is gathered through an aligned bounce buffer instead.
func (d *Device) WriteVAt(bufs [][]byte, off int64) (int, error) {
	total := 0
	aligned := true
	for _, b := range bufs {
		total += len(b)
		aligned = aligned && d.aligned(b, off)
	}
	if !d.writable {
		return 0, fmt.Errorf("%s: device opened read-only", d.path)
	}
	if off < 0 || off+int64(total) > d.size {
		return 0, fmt.Errorf("%s: write of %d bytes at %d past the end (%d)", d.path, total, off, d.size)
	}
	if !aligned {
		all := AlignedBuffer(total, d.sector)[:0]
		for _, b := range bufs {
			all = append(all, b...)
		}
		return d.WriteAt(all, off)
	}
	done := 0
	for len(bufs) > 0 {
		k := min(len(bufs), iovMax)
		n, err := d.pwritev(bufs[:k], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
		bufs = bufs[k:]
	}
	return done, nil
}

// pwritev writes at most iovMax buffers whole, resuming after short
// writes, and falls back to buffered I/O as writeFull does.
func (d *Device) pwritev(bufs [][]byte, off int64) (int, error) {
	want := 0
	for _, b := range bufs {
		want += len(b)
	}
	done := 0
	for done < want {
		n, err := unix.Pwritev(int(d.f.Fd()), bufs, off+int64(done))
		if err != nil && errors.Is(err, unix.EINVAL) && d.direct && done == 0 && n <= 0 {
			if ferr := d.fallBack(); ferr != nil {
				return 0, ferr
			}
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("%s: write %d bytes at %d: %w", d.path, want, off, err)
		}
		if n == 0 {
			return done, fmt.Errorf("%s: write %d bytes at %d: no progress", d.path, want, off)
		}
		done += n
		bufs = advance(bufs, n)
	}
	return done, nil
}

// advance drops the first n bytes of bufs.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n < len(bufs[0]) {
			return append([][]byte{bufs[0][n:]}, bufs[1:]...)
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	return bufs
}

var _ VectorWriter = (*Device)(nil)
