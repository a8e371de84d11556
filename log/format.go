// Package log is the journal, in the real XFS v2 log format: it finds the
// head and tail of the internal log as the kernel does, parses records,
// and (for writers) commits transactions as checkpoints and replays them.
package log

import (
	"encoding/binary"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Record header constants (xlog_rec_header).
const (
	HeaderMagic    = 0xFEEDBABE
	HeaderCRCOff   = 0x20
	headerCRCLen   = 0x148 // CRC covers sizeof(xlog_rec_header) with its alignment padding
	extHdrCRCLen   = 260   // each extended header's cycle word and cycle data
	cycleDataSlots = 64    // h_cycle_data entries per header block
	FmtLinuxLE     = 1
	Version2       = 2
	DefaultHSize   = 32768
	// maxRecordBBs bounds a record: XLOG_MAX_RECORD_BSIZE is 256 KiB.
	maxRecordBytes = 256 << 10
)

// RecordHeader mirrors xlog_rec_header.
type RecordHeader struct {
	Magic     uint32
	Cycle     uint32
	Version   uint32
	Len       uint32 // data bytes after the header blocks
	LSN       LSN
	TailLSN   LSN
	CRC       uint32
	PrevBlock int32
	NumLogOps uint32
	CycleData [cycleDataSlots]uint32
	Fmt       uint32
	FSUUID    ondisk.UUID
	Size      uint32 // h_size: the iclog size, which sets the header block count
}

// LSN is a log sequence number: cycle in the high 32 bits, block below.
type LSN uint64

// MakeLSN builds an LSN.
func MakeLSN(cycle, block uint32) LSN { return LSN(uint64(cycle)<<32 | uint64(block)) }

// Cycle and Block split an LSN.
func (l LSN) Cycle() uint32 { return uint32(l >> 32) }
func (l LSN) Block() uint32 { return uint32(l) }

// Less orders LSNs by (cycle, block).
func (l LSN) Less(m LSN) bool { return l < m }

func decodeRecordHeader(b []byte) *RecordHeader {
	be := binary.BigEndian
	h := &RecordHeader{
		Magic:     be.Uint32(b[0:]),
		Cycle:     be.Uint32(b[4:]),
		Version:   be.Uint32(b[8:]),
		Len:       be.Uint32(b[12:]),
		LSN:       LSN(be.Uint64(b[16:])),
		TailLSN:   LSN(be.Uint64(b[24:])),
		CRC:       binary.LittleEndian.Uint32(b[HeaderCRCOff:]),
		PrevBlock: int32(be.Uint32(b[36:])),
		NumLogOps: be.Uint32(b[40:]),
		Fmt:       be.Uint32(b[0x12c:]),
		Size:      be.Uint32(b[0x140:]),
	}
	for i := range h.CycleData {
		h.CycleData[i] = be.Uint32(b[44+4*i:])
	}
	copy(h.FSUUID[:], b[0x130:0x140])
	return h
}

// HeaderBlocks is the number of 512-byte header blocks a record with this
// h_size carries (extended headers hold the cycle data of blocks 64 on).
func (h *RecordHeader) HeaderBlocks() int {
	if h.Version&Version2 != 0 && h.Size > DefaultHSize {
		return int((h.Size + DefaultHSize - 1) / DefaultHSize)
	}
	return 1
}

// DataBlocks is the number of 512-byte data blocks after the headers.
func (h *RecordHeader) DataBlocks() int { return int((h.Len + ondisk.BBSize - 1) / ondisk.BBSize) }

// Op header flags (xlog_op_header.oh_flags).
const (
	OpStart    = 0x01
	OpCommit   = 0x02
	OpContinue = 0x04
	OpWasCont  = 0x08
	OpEnd      = 0x10
	OpUnmount  = 0x20

	ClientTransaction = 0x69
	ClientLog         = 0xAA

	OpHeaderSize = 12
)
