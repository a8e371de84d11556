package ondisk

import (
	"fmt"
	"io"

	"github.com/dsnet/golib/memfile"
)

// Storage is what the file-system layers need from a device. *Device
// implements it for image files and block devices; MemDevice for in-memory
// images in unit tests; the log's crash-test recorder wraps another Storage.
type Storage interface {
	io.ReaderAt
	io.WriterAt
	// Flush makes every completed write durable.
	Flush() error
	// Size is the device size in bytes.
	Size() int64
	// SectorSize is the logical sector size.
	SectorSize() int
}

// MemDevice is an in-memory Storage over a byte slice, for tests.
type MemDevice struct {
	f      *memfile.File
	size   int64
	sector int
}

// NewMemDevice wraps b (which it takes ownership of) as a device.
func NewMemDevice(b []byte) *MemDevice {
	return &MemDevice{f: memfile.New(b), size: int64(len(b)), sector: 512}
}

// ReadAt implements io.ReaderAt; a read past the end is an error.
func (m *MemDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, fmt.Errorf("memdev: read of %d bytes at %d past the end (%d): %w", len(p), off, m.size, io.ErrUnexpectedEOF)
	}
	return m.f.ReadAt(p, off)
}

// WriteAt implements io.WriterAt within the fixed size.
func (m *MemDevice) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, fmt.Errorf("memdev: write of %d bytes at %d past the end (%d)", len(p), off, m.size)
	}
	return m.f.WriteAt(p, off)
}

// Flush does nothing: memory is as durable as it gets.
func (m *MemDevice) Flush() error { return nil }

// Size is the image size.
func (m *MemDevice) Size() int64 { return m.size }

// SectorSize is 512.
func (m *MemDevice) SectorSize() int { return m.sector }

// Bytes returns the image contents.
func (m *MemDevice) Bytes() []byte { return m.f.Bytes() }

var _ Storage = (*Device)(nil)
var _ Storage = (*MemDevice)(nil)
