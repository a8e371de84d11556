package log

import (
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// State is where the log stands, as the kernel would find it at mount.
type State struct {
	Head       LSN   // where the next record goes: (cycle, block)
	Tail       LSN   // oldest LSN whose changes may not be in place yet
	LastRecord int64 // block of the last record header; -1 if none
	LastLSN    LSN   // h_lsn of the last record
	Clean      bool  // the last record is an unmount record
	Empty      bool  // the log was never written

	// Set by VerifyState on a dirty log:
	Torn      bool // records before the head failed their CRC (a torn write) and were dropped
	TornFrom  LSN  // the head before the torn records were dropped
	TailMoved bool // the head had wrapped over the tail's records: the tail moved forward
	OrigTail  LSN  // the tail before it moved
}

// FindState finds head and tail, and whether the log is clean, following
// xlog_find_tail and xlog_check_unmount_rec.
func (a *Area) FindState() (*State, error) {
	head, cycle, err := a.FindHead()
	if err != nil {
		return nil, err
	}
	if cycle == 0 {
		return &State{Empty: true, Clean: true, LastRecord: -1}, nil
	}
	st := &State{Head: MakeLSN(cycle, uint32(head)), LastRecord: -1}
	hblk, h, err := a.LastRecordBefore(head)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, ondisk.Corruptf("log: no record header before the head at block %d", head)
	}
	if h.FSUUID != a.UUID {
		return nil, ondisk.Corruptf("log: record at block %d belongs to file system %v, not %v", hblk, h.FSUUID, a.UUID)
	}
	st.LastRecord, st.LastLSN, st.Tail = hblk, h.LSN, h.TailLSN
	clean, err := a.isUnmountRecord(hblk, h, head)
	if err != nil {
		return nil, err
	}
	if clean {
		st.Clean, st.Tail = true, st.Head
	}
	return st, nil
}

// isUnmountRecord applies the kernel's three conditions: the record ends at
// the head, holds one op, and that op carries the UNMOUNT flag.
func (a *Area) isUnmountRecord(hblk int64, h *RecordHeader, head int64) (bool, error) {
	if h.NumLogOps != 1 || h.Len < OpHeaderSize {
		return false, nil
	}
	end := (hblk + int64(h.HeaderBlocks()) + int64(h.DataBlocks())) % a.BBs
	if end != head%a.BBs {
		return false, nil
	}
	dblk := (hblk + int64(h.HeaderBlocks())) % a.BBs
	b, err := a.ReadBlocks(dblk, 1)
	if err != nil {
		return false, fmt.Errorf("log: unmount record data: %w", err)
	}
	return b[9]&OpUnmount != 0, nil
}
