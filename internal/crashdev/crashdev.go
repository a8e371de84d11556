// Package crashdev records every write and flush a writer issues, so that
// tests can build the image a power loss would have left at any point: all
// writes before a flush are on disk, any subset of the writes after it may
// be, and one of those may be torn at a sector boundary.
package crashdev

import (
	"fmt"
	"io"
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Op is one recorded operation.
type Op struct {
	Flush bool
	Off   int64  // byte offset of a write
	Data  []byte // bytes written (a private copy)
}

// Tear cuts one write short: of the window's write Index (counting writes
// after the flush, from 0) only the first Sectors sectors reach the disk.
type Tear struct {
	Index   int
	Sectors int
}

// Recorder is an ondisk.Storage that keeps every write and flush in order.
// Over an in-memory base (NewRecorder) it is the device itself; over another
// Storage (Wrap) it writes through and only records.
type Recorder struct {
	mu     sync.Mutex
	base   []byte // image at the start (NewRecorder); nil for Wrap
	mem    *ondisk.MemDevice
	dev    ondisk.Storage // where reads and writes go
	ops    []Op
	sector int
}

// NewRecorder records over an in-memory image; base is copied, and is the
// state every crash image starts from.
func NewRecorder(base []byte) *Recorder {
	cur := append([]byte(nil), base...)
	mem := ondisk.NewMemDevice(cur)
	return &Recorder{base: append([]byte(nil), base...), mem: mem, dev: mem, sector: ondisk.BBSize}
}

// Wrap records the writes and flushes issued to dev while passing them on.
// Crash images are then built with ApplyCrash over a copy of dev's contents
// from before the first write.
func Wrap(dev ondisk.Storage) *Recorder {
	return &Recorder{dev: dev, sector: max(dev.SectorSize(), ondisk.BBSize)}
}

// SetSectorSize sets the unit a torn write is cut at (512 by default).
func (r *Recorder) SetSectorSize(n int) { r.sector = n }

// ReadAt reads the current contents.
func (r *Recorder) ReadAt(p []byte, off int64) (int, error) { return r.dev.ReadAt(p, off) }

// WriteAt writes and records.
func (r *Recorder) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.dev.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	r.ops = append(r.ops, Op{Off: off, Data: append([]byte(nil), p...)})
	return n, nil
}

// Flush records a flush (and flushes the wrapped device).
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.dev.Flush(); err != nil {
		return err
	}
	r.ops = append(r.ops, Op{Flush: true})
	return nil
}

// Size and SectorSize are the underlying device's.
func (r *Recorder) Size() int64     { return r.dev.Size() }
func (r *Recorder) SectorSize() int { return r.dev.SectorSize() }

// Bytes returns the current image of an in-memory recorder.
func (r *Recorder) Bytes() []byte {
	if r.mem == nil {
		return nil
	}
	return r.mem.Bytes()
}

// Ops returns the recorded operations in order.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Flushes is the number of flushes recorded. Crash points are numbered 0
// (before the first flush) to Flushes() (after the last).
func (r *Recorder) Flushes() int {
	n := 0
	for _, o := range r.Ops() {
		if o.Flush {
			n++
		}
	}
	return n
}

// Window returns the writes a crash after flush k may or may not keep:
// those between flush k and flush k+1 (or the end). Flush 0 is the start.
func (r *Recorder) Window(k int) []Op {
	_, win := r.split(k)
	return win
}

// split returns the writes before flush k (all durable) and the window after it.
func (r *Recorder) split(k int) (durable, window []Op) {
	ops := r.Ops()
	seen := 0
	i := 0
	for ; i < len(ops) && seen < k; i++ {
		if ops[i].Flush {
			seen++
			continue
		}
		durable = append(durable, ops[i])
	}
	for ; i < len(ops) && !ops[i].Flush; i++ {
		window = append(window, ops[i])
	}
	return durable, window
}

// ApplyCrash writes onto dst (holding the image as it was before the first
// recorded write) what a power loss after flush k would have left: every
// write before it, the writes of the window that keep selects (nil keeps
// none) in their order, and, if tear is set, the first tear.Sectors sectors
// of window write tear.Index.
func (r *Recorder) ApplyCrash(dst io.WriterAt, k int, keep func(i int) bool, tear *Tear) error {
	if k < 0 || k > r.Flushes() {
		return fmt.Errorf("crashdev: flush %d of %d", k, r.Flushes())
	}
	durable, window := r.split(k)
	for _, o := range durable {
		if _, err := dst.WriteAt(o.Data, o.Off); err != nil {
			return err
		}
	}
	for i, o := range window {
		data := o.Data
		switch {
		case tear != nil && tear.Index == i:
			n := tear.Sectors * r.sector
			if n <= 0 || n >= len(data) {
				return fmt.Errorf("crashdev: tear write %d of %d bytes after %d sectors", i, len(data), tear.Sectors)
			}
			data = data[:n]
		case keep == nil || !keep(i):
			continue
		}
		if _, err := dst.WriteAt(data, o.Off); err != nil {
			return err
		}
	}
	return nil
}

// CrashImage returns the image a power loss after flush k would leave (see
// ApplyCrash). Only for recorders made with NewRecorder.
func (r *Recorder) CrashImage(k int, keep func(i int) bool, tear *Tear) ([]byte, error) {
	if r.base == nil {
		return nil, fmt.Errorf("crashdev: CrashImage needs an in-memory base; use ApplyCrash")
	}
	mem := ondisk.NewMemDevice(append([]byte(nil), r.base...))
	if err := r.ApplyCrash(mem, k, keep, tear); err != nil {
		return nil, err
	}
	return mem.Bytes(), nil
}

var _ ondisk.Storage = (*Recorder)(nil)
