package log

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Area is the internal log region of a device.
type Area struct {
	Dev   ondisk.Storage
	Start int64 // disk address (512-byte units) of log block 0
	BBs   int64 // size in 512-byte blocks
	UUID  ondisk.UUID
	// LogSUnit is sb_logsunit in bytes (0 or 1: none); recovery needs it
	// only for an old mkfs quirk.
	LogSUnit uint32

	rr *rangeReader // the last range read, kept for the next pass over it
}

// NewArea describes the internal log of the file system with geometry g.
func NewArea(dev ondisk.Storage, g *ondisk.Geometry, fsUUID ondisk.UUID) *Area {
	return &Area{Dev: dev, Start: g.LogDaddr(), BBs: g.LogBBs(), UUID: fsUUID}
}

// ReadBlocks reads n log blocks starting at log block blk (no wrapping).
func (a *Area) ReadBlocks(blk int64, n int) ([]byte, error) {
	if blk < 0 || n < 0 || blk+int64(n) > a.BBs {
		return nil, fmt.Errorf("log: read of %d blocks at %d outside the log (%d blocks)", n, blk, a.BBs)
	}
	buf := ondisk.AlignedBuffer(n*ondisk.BBSize, 4096)
	if _, err := a.Dev.ReadAt(buf, (a.Start+blk)<<ondisk.BBShift); err != nil {
		return nil, fmt.Errorf("log block %d: %w", blk, err)
	}
	return buf, nil
}

// cycleOf returns the cycle stamped in a log block: the first word, or for
// a record header the word after the magic.
func cycleOf(b []byte) uint32 {
	w := binary.BigEndian.Uint32(b)
	if w == HeaderMagic {
		return binary.BigEndian.Uint32(b[4:])
	}
	return w
}

func (a *Area) cycleAt(blk int64) (uint32, error) {
	b, err := a.ReadBlocks(blk, 1)
	if err != nil {
		return 0, err
	}
	return cycleOf(b), nil
}

// readRange reads log blocks [start, end) in chunks and calls fn for each
// block with its cycle, stopping when fn returns false.
func (a *Area) scanCycles(start, end int64, fn func(blk int64, cycle uint32) bool) error {
	const chunk = 256
	for blk := start; blk < end; {
		n := int(min(end-blk, chunk))
		b, err := a.ReadBlocks(blk, n)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if !fn(blk+int64(i), cycleOf(b[i*ondisk.BBSize:])) {
				return nil
			}
		}
		blk += int64(n)
	}
	return nil
}

// findCycleBoundary binary-searches [lo, hi] for the first block whose
// cycle equals want, given that block hi has it and block lo does not.
func (a *Area) findCycleBoundary(lo, hi int64, want uint32) (int64, error) {
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		c, err := a.cycleAt(mid)
		if err != nil {
			return 0, err
		}
		if c == want {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// scanBackBlocks is how far before the head the kernel looks for blocks of
// an older cycle left by out-of-order writes of in-flight log buffers.
const scanBackBlocks = 4096

// FindHead locates the head of the log, following xlog_find_head: the
// block after the last complete record, and the cycle that a record
// written there next carries. A never-written (zeroed) log has head (0, 0).
func (a *Area) FindHead() (head int64, cycle uint32, err error) {
	first, err := a.cycleAt(0)
	if err != nil {
		return 0, 0, err
	}
	if first == 0 {
		return 0, 0, nil
	}
	lastBlk := a.BBs - 1
	last, err := a.cycleAt(lastBlk)
	if err != nil {
		return 0, 0, err
	}
	var stopOn uint32 // a block of this cycle before the head marks a hole
	switch {
	case last == 0:
		// Partly written log: the head is the first zeroed block.
		if head, err = a.findCycleBoundary(0, lastBlk, 0); err != nil {
			return 0, 0, err
		}
		cycle, stopOn = first, 0
	case first == last:
		// One cycle everywhere: the writer ended exactly at the end.
		head, cycle, stopOn = a.BBs, last, last-1
	default:
		// Block 0 carries the newer cycle: the head is where the older
		// cycle, the one at the end of the log, begins.
		if first != last+1 {
			return 0, 0, ondisk.Corruptf("log: cycle %d at block 0 but %d at the end", first, last)
		}
		if head, err = a.findCycleBoundary(0, lastBlk, last); err != nil {
			return 0, 0, err
		}
		cycle, stopOn = first, last
	}
	// Out-of-order writes of in-flight log buffers can leave an older block
	// inside the window before the head: the first one is the real head.
	found := int64(-1)
	if err := a.scanCycles(max(head-scanBackBlocks, 0), head, func(blk int64, c uint32) bool {
		if c == stopOn {
			found = blk
			return false
		}
		return true
	}); err != nil {
		return 0, 0, err
	}
	if found >= 0 {
		head = found
	}
	back, err := a.backUpToRecordEnd(head)
	if err != nil {
		return 0, 0, err
	}
	if back > head {
		// The torn record began before the physical end: its start, the
		// new head, is in the previous cycle.
		cycle--
	}
	head = back
	if head == a.BBs {
		head, cycle = 0, cycle+1
	}
	return head, cycle, nil
}

// backUpToRecordEnd moves the head back to the start of the last record if
// that record does not end exactly at the head (it was torn).
func (a *Area) backUpToRecordEnd(head int64) (int64, error) {
	hblk, h, err := a.LastRecordBefore(head)
	if err != nil || h == nil {
		return head, err
	}
	end := hblk + int64(h.HeaderBlocks()) + int64(h.DataBlocks())
	if end > a.BBs {
		end -= a.BBs // the record wrapped
	}
	if end != head && !(end == a.BBs && head == 0) && !(end == 0 && head == a.BBs) {
		return hblk, nil
	}
	return head, nil
}

// LastRecordBefore walks back from blk (wrapping at the start of the log)
// to the nearest record header and returns its block and header; nil if
// the log holds none.
func (a *Area) LastRecordBefore(blk int64) (int64, *RecordHeader, error) {
	for i := int64(1); i <= a.BBs; i++ {
		b := (blk - i + a.BBs) % a.BBs
		buf, err := a.ReadBlocks(b, 1)
		if err != nil {
			return 0, nil, err
		}
		if binary.BigEndian.Uint32(buf) == HeaderMagic {
			return b, decodeRecordHeader(buf), nil
		}
		if i > maxRecordBytes/ondisk.BBSize+8 {
			break // no record is longer: the log has no header here
		}
	}
	return 0, nil, nil
}
