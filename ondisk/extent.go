package ondisk

import (
	"encoding/binary"
	"fmt"
)

// The packed extent record (xfs_bmbt_rec): 128 bits, big-endian, holding
// from the top bit down: the unwritten flag (1), startoff (54), startblock
// (52), blockcount (21).
const (
	MaxExtLen  = 1<<21 - 1 // largest blockcount one record can hold
	ExtentSize = 16

	extStartOffBits   = 54
	extStartBlockBits = 52
	extStartOffMask   = 1<<extStartOffBits - 1
	extStartBlockMask = 1<<extStartBlockBits - 1

	// MaxFileOff bounds the end of any mapping: file offsets are 54 bits.
	MaxFileOff = 1 << extStartOffBits
)

// Extent is one mapping of file blocks to file system blocks.
type Extent struct {
	StartOff   uint64 // first file block
	StartBlock uint64 // AG-encoded file system block
	BlockCount uint64
	Unwritten  bool // allocated but reads as zeros (preallocation)
}

// DecodeExtent unpacks the 16-byte record at b.
func DecodeExtent(b []byte) Extent {
	l0 := binary.BigEndian.Uint64(b[0:8])
	l1 := binary.BigEndian.Uint64(b[8:16])
	return Extent{
		Unwritten:  l0>>63 != 0,
		StartOff:   l0 >> 9 & extStartOffMask,
		StartBlock: (l0&0x1ff)<<43 | l1>>21,
		BlockCount: l1 & MaxExtLen,
	}
}

// Encode packs the extent into b[:16]. Fields wider than the record are
// truncated to their bit widths; CheckExtents rejects such values first.
func (e Extent) Encode(b []byte) {
	var flag uint64
	if e.Unwritten {
		flag = 1 << 63
	}
	sb := e.StartBlock & extStartBlockMask
	binary.BigEndian.PutUint64(b[0:8], flag|(e.StartOff&extStartOffMask)<<9|sb>>43)
	binary.BigEndian.PutUint64(b[8:16], sb<<21|e.BlockCount&MaxExtLen)
}

// End is the first file block after the extent.
func (e Extent) End() uint64 { return e.StartOff + e.BlockCount }

func (e Extent) String() string {
	s := fmt.Sprintf("[%d,%d,%d]", e.StartOff, e.StartBlock, e.BlockCount)
	if e.Unwritten {
		s += " unwritten"
	}
	return s
}

// DecodeExtents decodes n records from an extents-format fork. The count
// comes from the inode core, so it is checked against the fork before
// anything is allocated.
func DecodeExtents(fork []byte, n uint64) ([]Extent, error) {
	if n > uint64(len(fork)/ExtentSize) {
		return nil, Corruptf("%d extents do not fit a fork of %d bytes", n, len(fork))
	}
	exts := make([]Extent, n)
	for i := range exts {
		exts[i] = DecodeExtent(fork[i*ExtentSize:])
	}
	return exts, nil
}

// EncodeExtents packs exts into the start of fork, which must hold them.
func EncodeExtents(fork []byte, exts []Extent) {
	for i, e := range exts {
		e.Encode(fork[i*ExtentSize:])
	}
}

// CheckExtents applies the kernel's per-record rules (xfs_bmap_validate_extent)
// and the ordering rule of a fork's mapping: sorted by startoff, no overlap,
// a length of 1..MaxExtLen, the end within the 54-bit file offset space, and
// the blocks inside one AG's data area (not the AG headers).
func CheckExtents(exts []Extent, g *Geometry) error {
	var prevEnd uint64
	for i, e := range exts {
		if e.BlockCount == 0 || e.BlockCount > MaxExtLen {
			return Corruptf("extent %d %v: bad length", i, e)
		}
		if e.StartOff > extStartOffMask || e.End() > MaxFileOff {
			return Corruptf("extent %d %v: past the largest file offset", i, e)
		}
		if i > 0 && e.StartOff < prevEnd {
			return Corruptf("extent %d %v: overlaps or precedes the previous extent ending at %d", i, e, prevEnd)
		}
		prevEnd = e.End()
		if err := checkFSBExtent(g, e.StartBlock, e.BlockCount); err != nil {
			return fmt.Errorf("extent %d %v: %w", i, e, err)
		}
	}
	return nil
}

// checkFSBExtent is the kernel's xfs_verify_fsbext: first and last block
// are valid data blocks of the same AG.
func checkFSBExtent(g *Geometry, fsb, n uint64) error {
	last := fsb + n - 1
	if n == 0 || last < fsb {
		return Corruptf("block range %d+%d wraps", fsb, n)
	}
	if !validDataFSB(g, fsb) || !validDataFSB(g, last) || g.FSBAgno(fsb) != g.FSBAgno(last) {
		return Corruptf("blocks %d..%d outside one AG's data area", fsb, last)
	}
	return nil
}

// validDataFSB reports whether fsb can hold file data or btree blocks: inside
// an AG and past the AG header sectors (superblock, AGF, AGI, AGFL), as the
// kernel's xfs_verify_fsbno requires.
func validDataFSB(g *Geometry, fsb uint64) bool {
	if fsb>>g.AGBlkLog >= uint64(g.AGCount) || !g.ValidFSB(fsb) {
		return false
	}
	agflBlock := uint32(3*g.SectSize) >> g.BlockLog
	return g.FSBAgbno(fsb) > agflBlock
}
