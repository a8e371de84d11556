package ondisk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenOptions say how to open a device.
type OpenOptions struct {
	Write    bool // open read-write, exclusively
	Buffered bool // do not try O_DIRECT
	// Warnf reports conditions worth telling the user once, such as the
	// fallback from O_DIRECT to buffered I/O. Nil discards them.
	Warnf func(format string, args ...any)
	// NoWait fails at once when another process holds the image, instead of
	// waiting for it.
	NoWait bool
}

// Device is an image file or a block device holding a file system. Reads and
// writes take byte offsets; with O_DIRECT the device bounces any request
// that is not aligned to its logical sector size through an aligned buffer.
type Device struct {
	f        *os.File
	path     string
	size     int64
	sector   int // logical sector size; O_DIRECT alignment
	direct   bool
	block    bool
	writable bool
	warnf    func(string, ...any)
	warnOnce sync.Once
	mu       sync.Mutex // guards a fallback reopen
	// cached is a second descriptor of a read-only image file, without
	// O_DIRECT, for ReadCached; nil where that does not apply.
	cached *os.File
	// noCachestat is set once the kernel refused cachestat(2) (before
	// Linux 6.5), after which ReadCached never hits.
	noCachestat atomic.Bool
}

// Open opens path as a device. A writable open takes an exclusive lock (and
// O_EXCL on a block device, which the kernel refuses while it is mounted).
func Open(path string, opt OpenOptions) (*Device, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	d := &Device{path: path, writable: opt.Write, warnf: opt.Warnf, sector: 512}
	d.block = st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	if !d.block && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file or block device", path)
	}
	if opt.Write && !d.block {
		if err := checkNotLoopBacking(path, st); err != nil {
			return nil, err
		}
	}
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if opt.Write {
		flags = unix.O_RDWR | unix.O_CLOEXEC
		if d.block {
			flags |= unix.O_EXCL
		}
	}
	direct := !opt.Buffered
	f, err := openFile(path, flags, direct)
	if err != nil && direct && errors.Is(err, unix.EINVAL) {
		d.warn("%s: O_DIRECT refused by the underlying file system; using buffered I/O", path)
		direct = false
		f, err = openFile(path, flags, false)
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s: device is busy (mounted or in use)", path)
		}
		return nil, err
	}
	d.f, d.direct = f, direct
	if err := d.lock(opt); err != nil {
		f.Close()
		return nil, err
	}
	if direct && !opt.Write && !d.block {
		// Without it ReadCached only ever misses: not worth failing for.
		d.cached = openSameFile(path, flags, f)
	}
	if d.block {
		if err := d.blockGeometry(); err != nil {
			f.Close()
			return nil, err
		}
	} else {
		d.size = st.Size()
	}
	return d, nil
}

func openFile(path string, flags int, direct bool) (*os.File, error) {
	if direct {
		flags |= unix.O_DIRECT
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openSameFile opens path again without O_DIRECT, or returns nil if that
// fails or the name no longer leads to the file f (renamed or replaced
// between the two opens).
func openSameFile(path string, flags int, f *os.File) *os.File {
	g, err := openFile(path, flags, false)
	if err != nil {
		return nil
	}
	a, aerr := f.Stat()
	b, berr := g.Stat()
	if aerr != nil || berr != nil || !os.SameFile(a, b) {
		g.Close()
		return nil
	}
	return g
}

// lock takes an advisory lock so that two xfsimg processes never write the
// same image at once: exclusive for writers, shared for readers.
func (d *Device) lock(opt OpenOptions) error {
	how := unix.LOCK_SH
	if opt.Write {
		how = unix.LOCK_EX
	}
	err := unix.Flock(int(d.f.Fd()), how|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("%s: lock: %w", d.path, err)
	}
	if opt.NoWait {
		return fmt.Errorf("%s: in use by another process", d.path)
	}
	d.warn("%s: waiting for another process using the image", d.path)
	if err := unix.Flock(int(d.f.Fd()), how); err != nil {
		return fmt.Errorf("%s: lock: %w", d.path, err)
	}
	return nil
}

func (d *Device) blockGeometry() error {
	fd := int(d.f.Fd())
	size, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
	if err != nil {
		return fmt.Errorf("%s: BLKGETSIZE64: %w", d.path, err)
	}
	ss, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
	if err != nil {
		return fmt.Errorf("%s: BLKSSZGET: %w", d.path, err)
	}
	if ss < 512 || ss&(ss-1) != 0 {
		return fmt.Errorf("%s: odd logical sector size %d", d.path, ss)
	}
	d.size, d.sector = int64(size), ss
	return nil
}

func (d *Device) warn(format string, args ...any) {
	if d.warnf != nil {
		d.warnOnce.Do(func() { d.warnf(format, args...) })
	}
}

// Path is the name the device was opened with.
func (d *Device) Path() string { return d.path }

// Size is the device size in bytes.
func (d *Device) Size() int64 { return d.size }

// SectorSize is the logical sector size O_DIRECT requests align to.
func (d *Device) SectorSize() int { return d.sector }

// Direct reports whether I/O bypasses the page cache.
func (d *Device) Direct() bool { return d.direct }

// IsBlockDevice reports whether the device is a block device.
func (d *Device) IsBlockDevice() bool { return d.block }

// Writable reports whether the device was opened for writing.
func (d *Device) Writable() bool { return d.writable }

// Fd exposes the descriptor for callers that need ioctls.
func (d *Device) Fd() uintptr { return d.f.Fd() }

// Close releases the device and its lock.
func (d *Device) Close() error {
	if d.cached != nil {
		d.cached.Close()
	}
	return d.f.Close()
}

// aligned reports whether a request can go to the device as it is.
func (d *Device) aligned(p []byte, off int64) bool {
	if !d.direct {
		return true
	}
	m := int64(d.sector - 1)
	return off&m == 0 && int64(len(p))&m == 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))&uintptr(m) == 0
}

// ReadAt reads len(p) bytes at byte offset off. Reading past the end of the
// device is io.ErrUnexpectedEOF: a file system never points there.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("%s: read of %d bytes at %d past the end (%d): %w", d.path, len(p), off, d.size, io.ErrUnexpectedEOF)
	}
	if d.aligned(p, off) {
		return d.readFull(p, off)
	}
	start, end := d.alignOut(off, int64(len(p)))
	bounce := AlignedBuffer(int(end-start), d.sector)
	if _, err := d.readFull(bounce, start); err != nil {
		return 0, err
	}
	copy(p, bounce[off-start:])
	return len(p), nil
}

func (d *Device) readFull(p []byte, off int64) (int, error) {
	n, err := d.f.ReadAt(p, off)
	if err != nil && errors.Is(err, unix.EINVAL) && d.direct && n == 0 {
		// Some file systems accept O_DIRECT at open and refuse it at I/O.
		if ferr := d.fallBack(); ferr != nil {
			return 0, ferr
		}
		n, err = d.f.ReadAt(p, off)
	}
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("%s: read %d bytes at %d: %w", d.path, len(p), off, err)
	}
	return n, nil
}

// WriteAt writes p at byte offset off. Unaligned O_DIRECT writes are
// read-modify-written through a bounce buffer.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if !d.writable {
		return 0, fmt.Errorf("%s: device opened read-only", d.path)
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("%s: write of %d bytes at %d past the end (%d)", d.path, len(p), off, d.size)
	}
	if d.aligned(p, off) {
		return d.writeFull(p, off)
	}
	start, end := d.alignOut(off, int64(len(p)))
	bounce := AlignedBuffer(int(end-start), d.sector)
	if _, err := d.readFull(bounce, start); err != nil {
		return 0, err
	}
	copy(bounce[off-start:], p)
	if _, err := d.writeFull(bounce, start); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *Device) writeFull(p []byte, off int64) (int, error) {
	n, err := d.f.WriteAt(p, off)
	if err != nil && errors.Is(err, unix.EINVAL) && d.direct && n == 0 {
		if ferr := d.fallBack(); ferr != nil {
			return 0, ferr
		}
		n, err = d.f.WriteAt(p, off)
	}
	if err != nil {
		return n, fmt.Errorf("%s: write %d bytes at %d: %w", d.path, len(p), off, err)
	}
	return n, nil
}

func (d *Device) alignOut(off, n int64) (int64, int64) {
	m := int64(d.sector)
	start := off / m * m
	end := (off + n + m - 1) / m * m
	return start, end
}

// fallBack reopens the file without O_DIRECT after the file system refused
// a direct request, keeping the lock by opening before closing.
func (d *Device) fallBack() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.direct {
		return nil
	}
	fl, err := unix.FcntlInt(d.f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	if _, err := unix.FcntlInt(d.f.Fd(), unix.F_SETFL, fl&^unix.O_DIRECT); err != nil {
		return fmt.Errorf("%s: clear O_DIRECT: %w", d.path, err)
	}
	d.direct = false
	d.warn("%s: O_DIRECT refused by the underlying file system; using buffered I/O", d.path)
	return nil
}

// Flush makes every completed write durable (fdatasync; on a block device
// this also flushes the device's volatile cache).
func (d *Device) Flush() error {
	if err := unix.Fdatasync(int(d.f.Fd())); err != nil {
		return fmt.Errorf("%s: fdatasync: %w", d.path, err)
	}
	return nil
}

// AlignedBuffer returns a zeroed slice of n bytes whose start is aligned to
// align bytes (a power of two), as O_DIRECT requires.
func AlignedBuffer(n, align int) []byte {
	if align < 1 {
		align = 1
	}
	// Go's allocator places a block whose size is a multiple of a power of
	// two (up to a page) at a multiple of that power: try without padding.
	if n > 0 && n%align == 0 {
		if raw := make([]byte, n); uintptr(unsafe.Pointer(unsafe.SliceData(raw)))&uintptr(align-1) == 0 {
			return raw
		}
	}
	raw := make([]byte, n+align)
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	shift := int((uintptr(align) - addr&uintptr(align-1)) & uintptr(align-1))
	return raw[shift : shift+n : shift+n]
}

// checkNotLoopBacking refuses to write an image file that backs an attached
// loop device: the kernel may have the file system mounted through it, and
// even unmounted, the device's page cache would go stale. The flock does not
// help there, since the loop driver takes none. Every attached loop device
// names its backing file in sysfs; the path is compared by device and inode
// number (so hard links and other spellings match), and where the path no
// longer resolves to the file (renamed or deleted since), the loop device
// itself is asked for its backing file's device and inode.
func checkNotLoopBacking(path string, st os.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	entries, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, e := range entries {
		raw, err := os.ReadFile(e)
		if err != nil {
			continue // detached meanwhile
		}
		loop := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(e)))
		name := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), " (deleted)")
		if fi, err := os.Stat(name); err == nil && os.SameFile(fi, st) {
			return loopBusy(path, loop)
		}
		// The name may be stale (renamed, deleted, another mount
		// namespace): ask the device.
		if same, err := loopBacks(loop, sys); err == nil && same {
			return loopBusy(path, loop)
		}
	}
	return nil
}

// loopBacks asks a loop device (LOOP_GET_STATUS64) whether its backing file
// is the file with stat st. The kernel reports the device number in the
// kernel's encoding; compare major and minor.
func loopBacks(loop string, st *syscall.Stat_t) (bool, error) {
	fd, err := unix.Open(loop, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		return false, err
	}
	// new_encode_dev: minor low byte, major, then the rest of the minor.
	kmaj := uint32(info.Device&0xfff00) >> 8
	kmin := uint32(info.Device&0xff) | uint32(info.Device>>12)&0xfff00
	return info.Inode == st.Ino && kmaj == unix.Major(st.Dev) && kmin == unix.Minor(st.Dev), nil
}

func loopBusy(path, loop string) error {
	return fmt.Errorf("%s: the image backs loop device %s (unmount it and run losetup -d %s first)", path, loop, loop)
}
