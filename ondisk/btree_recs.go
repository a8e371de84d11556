package ondisk

import "encoding/binary"

// Record, key and pointer sizes of the v5 btrees. Records live in leaves;
// nodes hold keys then pointers, each array sized for the node's maxrecs.
// The rmap btree overlaps: a node entry has a low and a high key, so its
// node key slot is 2*RmapKeySize bytes.
const (
	AllocRecSize    = 8
	AllocKeySize    = 8
	InobtRecSize    = 16
	InobtKeySize    = 4
	RefcountRecSize = 12
	RefcountKeySize = 4
	RmapRecSize     = 24
	RmapKeySize     = 20
	ShortPtrSize    = 4
	LongPtrSize     = 8
	BmbtRecSize     = 16
	BmbtKeySize     = 8
)

// AllocRec is a bnobt/cntbt record: a free extent. Keys have the same
// layout (the cntbt sorts them by count, then block).
type AllocRec struct {
	StartBlock uint32
	BlockCount uint32
}

// DecodeAllocRec reads an AllocRec from the first AllocRecSize bytes of b.
func DecodeAllocRec(b []byte) AllocRec {
	be := binary.BigEndian
	return AllocRec{StartBlock: be.Uint32(b[0:]), BlockCount: be.Uint32(b[4:])}
}

// Encode writes r into the first AllocRecSize bytes of b.
func (r AllocRec) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b[0:], r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
}

// InobtRec is an inobt/finobt record: a chunk of 64 inodes starting at
// StartIno (AG-relative), Free having one bit per inode. HoleMask has one
// bit per 4 inodes that are not allocated (sparse chunks); Count is the
// number of inodes the chunk really has.
type InobtRec struct {
	StartIno  uint32
	HoleMask  uint16
	Count     uint8
	FreeCount uint8
	Free      uint64
}

// DecodeInobtRec reads an inobt record. With sparse inodes bytes 4..7 hold
// holemask, count and freecount; without, they are one 32-bit freecount and
// the chunk is always full (Count 64, no holes). A freecount that does not
// fit 8 bits is saturated to 255 so that it fails any count check.
func DecodeInobtRec(b []byte, sparse bool) InobtRec {
	be := binary.BigEndian
	r := InobtRec{StartIno: be.Uint32(b[0:]), Free: be.Uint64(b[8:])}
	if sparse {
		r.HoleMask = be.Uint16(b[4:])
		r.Count = b[6]
		r.FreeCount = b[7]
	} else {
		r.Count = InodesPerChunk
		r.FreeCount = uint8(min(be.Uint32(b[4:]), 255))
	}
	return r
}

// Encode writes r in the sparse or the full-chunk layout. The full-chunk
// layout has no room for HoleMask and Count.
func (r InobtRec) Encode(b []byte, sparse bool) {
	be := binary.BigEndian
	be.PutUint32(b[0:], r.StartIno)
	if sparse {
		be.PutUint16(b[4:], r.HoleMask)
		b[6] = r.Count
		b[7] = r.FreeCount
	} else {
		be.PutUint32(b[4:], uint32(r.FreeCount))
	}
	be.PutUint64(b[8:], r.Free)
}

// RefcountCowFlag marks a refcount record (bit 31 of the start block) as
// copy-on-write staging rather than shared extent.
const RefcountCowFlag = 1 << 31

// RefcountRec is a refcount btree record; StartBlock carries the COW flag in
// bit 31 as on disk. Refcount keys are the first 4 bytes (StartBlock).
type RefcountRec struct {
	StartBlock uint32
	BlockCount uint32
	RefCount   uint32
}

// Cow reports a COW staging extent.
func (r RefcountRec) Cow() bool { return r.StartBlock&RefcountCowFlag != 0 }

// AGBlock is the start block without the COW flag.
func (r RefcountRec) AGBlock() uint32 { return r.StartBlock &^ RefcountCowFlag }

// DecodeRefcountRec reads a refcount record from the first 12 bytes of b.
func DecodeRefcountRec(b []byte) RefcountRec {
	be := binary.BigEndian
	return RefcountRec{StartBlock: be.Uint32(b[0:]), BlockCount: be.Uint32(b[4:]), RefCount: be.Uint32(b[8:])}
}

// Encode writes r into the first 12 bytes of b.
func (r RefcountRec) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b[0:], r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
	be.PutUint32(b[8:], r.RefCount)
}

// Flags in the top bits of an rmap record's Offset.
const (
	RmapOffAttrFork  = 1 << 63
	RmapOffBmbtBlock = 1 << 62
	RmapOffUnwritten = 1 << 61
	RmapOffMask      = 1<<54 - 1
)

// RmapRec is a reverse-mapping record: AG extent, owner (inode number or a
// negative special owner) and file offset with flags as stored. A key is the
// first 20 bytes (StartBlock, Owner, Offset) without BlockCount; see
// DecodeRmapKey.
type RmapRec struct {
	StartBlock uint32
	BlockCount uint32
	Owner      uint64
	Offset     uint64
}

// DecodeRmapRec reads an rmap record from the first 24 bytes of b.
func DecodeRmapRec(b []byte) RmapRec {
	be := binary.BigEndian
	return RmapRec{StartBlock: be.Uint32(b[0:]), BlockCount: be.Uint32(b[4:]), Owner: be.Uint64(b[8:]), Offset: be.Uint64(b[16:])}
}

// Encode writes r into the first 24 bytes of b.
func (r RmapRec) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b[0:], r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
	be.PutUint64(b[8:], r.Owner)
	be.PutUint64(b[16:], r.Offset)
}

// DecodeRmapKey reads one rmap key (20 bytes: start block, owner, offset);
// BlockCount is 0.
func DecodeRmapKey(b []byte) RmapRec {
	be := binary.BigEndian
	return RmapRec{StartBlock: be.Uint32(b[0:]), Owner: be.Uint64(b[4:]), Offset: be.Uint64(b[12:])}
}

// FileOffset is the offset without the flag bits.
func (r RmapRec) FileOffset() uint64 { return r.Offset & RmapOffMask }

// AttrFork, BmbtBlock and Unwritten test the offset flags.
func (r RmapRec) AttrFork() bool  { return r.Offset&RmapOffAttrFork != 0 }
func (r RmapRec) BmbtBlock() bool { return r.Offset&RmapOffBmbtBlock != 0 }
func (r RmapRec) Unwritten() bool { return r.Offset&RmapOffUnwritten != 0 }

// btMaxRecs is the kernel's per-block capacity: records in a leaf, key and
// pointer pairs in a node.
func btMaxRecs(blocksize int, long, leaf bool, recSize, keySize, ptrSize int) int {
	body := blocksize - BtreeHeaderSize(long)
	if body <= 0 {
		return 0
	}
	if leaf {
		return body / recSize
	}
	return body / (keySize + ptrSize)
}

// AllocMaxRecs is the bnobt/cntbt capacity of one block.
func AllocMaxRecs(blocksize int, leaf bool) int {
	return btMaxRecs(blocksize, false, leaf, AllocRecSize, AllocKeySize, ShortPtrSize)
}

// InobtMaxRecs is the inobt/finobt capacity of one block.
func InobtMaxRecs(blocksize int, leaf bool) int {
	return btMaxRecs(blocksize, false, leaf, InobtRecSize, InobtKeySize, ShortPtrSize)
}

// RefcountMaxRecs is the refcount btree capacity of one block.
func RefcountMaxRecs(blocksize int, leaf bool) int {
	return btMaxRecs(blocksize, false, leaf, RefcountRecSize, RefcountKeySize, ShortPtrSize)
}

// RmapMaxRecs is the rmap btree capacity of one block; a node entry is a
// low key, a high key and a pointer.
func RmapMaxRecs(blocksize int, leaf bool) int {
	return btMaxRecs(blocksize, false, leaf, RmapRecSize, 2*RmapKeySize, ShortPtrSize)
}

// BmbtMaxRecs is the capacity of one BMBT block (long header, 64-bit
// pointers); the root in the inode fork is sized differently.
func BmbtMaxRecs(blocksize int, leaf bool) int {
	return btMaxRecs(blocksize, true, leaf, BmbtRecSize, BmbtKeySize, LongPtrSize)
}

// BtreeRecOff is the byte offset of record i (0-based) in a leaf.
func BtreeRecOff(long bool, recSize, i int) int { return BtreeHeaderSize(long) + i*recSize }

// BtreeKeyOff is the byte offset of key i (0-based) in a node. For the rmap
// btree pass keySize 2*RmapKeySize: key i is then the low key, the high key
// follows it.
func BtreeKeyOff(long bool, keySize, i int) int { return BtreeHeaderSize(long) + i*keySize }

// BtreePtrOff is the byte offset of pointer i (0-based) in a node: the
// pointer array starts after room for maxrecs keys, however many are used.
func BtreePtrOff(long bool, blocksize, keySize, ptrSize, i int) int {
	hdr := BtreeHeaderSize(long)
	maxrecs := (blocksize - hdr) / (keySize + ptrSize)
	return hdr + maxrecs*keySize + i*ptrSize
}

// btComputeMaxLevels is the height of a tree holding records with every block
// at its minimum fill (xfs_btree_compute_maxlevels).
func btComputeMaxLevels(leafMin, nodeMin int, records uint64) int {
	leafMin, nodeMin = max(leafMin, 2), max(nodeMin, 2)
	blocks := btCeilDiv(records, uint64(leafMin))
	height := 1
	for blocks > 1 {
		blocks = btCeilDiv(blocks, uint64(nodeMin))
		height++
	}
	return height
}

func btCeilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// AllocMaxLevels is the kernel's bound on bnobt/cntbt height: a tree of
// minimally full blocks indexing the most free extents an AG can hold (every
// other block free).
func AllocMaxLevels(g *Geometry) int {
	return btComputeMaxLevels(AllocMaxRecs(g.BlockSize, true)/2, AllocMaxRecs(g.BlockSize, false)/2,
		(uint64(g.AGBlocks)+1)/2)
}

// InobtMaxLevels bounds inobt/finobt height: one record per 64-inode chunk of
// the whole AG-relative inode number space.
func InobtMaxLevels(g *Geometry) int {
	chunks := (uint64(1) << min(g.AGInoLog, 63)) / InodesPerChunk
	return btComputeMaxLevels(InobtMaxRecs(g.BlockSize, true)/2, InobtMaxRecs(g.BlockSize, false)/2, chunks)
}

// Largest extent counts of a data fork (xfs_iext_max_nextents): the classic
// 32-bit signed counter, or the 48-bit one with NREXT64.
const (
	bmbtMaxExtents   = 1<<31 - 1
	bmbtMaxExtents64 = 1<<48 - 1
)

// BmbtMaxLevels bounds the data-fork BMBT height, counting the root in the
// inode as a level, as xfs_bmap_compute_maxlevels does: leaves and nodes at
// minimum fill, and the root taking over once at most 3 pointers are left
// (the smallest data-fork root, MINDBTPTRS).
func BmbtMaxLevels(g *Geometry) int {
	extents := uint64(bmbtMaxExtents)
	if g.Nrext64 {
		extents = bmbtMaxExtents64
	}
	const maxRootRecs = 3
	leafMin := max(BmbtMaxRecs(g.BlockSize, true)/2, 2)
	nodeMin := max(BmbtMaxRecs(g.BlockSize, false)/2, 2)
	blocks := btCeilDiv(extents, uint64(leafMin))
	level := 1
	for blocks > 1 {
		if blocks <= maxRootRecs {
			blocks = 1
		} else {
			blocks = btCeilDiv(blocks, uint64(nodeMin))
		}
		level++
	}
	return level
}

// refcountMaxLevels bounds refcount btree height: one record per AG block.
func refcountMaxLevels(g *Geometry) int {
	return btComputeMaxLevels(RefcountMaxRecs(g.BlockSize, true)/2, RefcountMaxRecs(g.BlockSize, false)/2, uint64(g.AGBlocks))
}

// rmapMaxLevels bounds rmap btree height: one record per AG block without
// reflink; with reflink (unbounded sharing) the tallest tree that fits in
// the AG's blocks (xfs_btree_space_to_height).
func rmapMaxLevels(g *Geometry, reflink bool) int {
	leafMin, nodeMin := RmapMaxRecs(g.BlockSize, true)/2, RmapMaxRecs(g.BlockSize, false)/2
	if !reflink {
		return btComputeMaxLevels(leafMin, nodeMin, uint64(g.AGBlocks))
	}
	if g.AGBlocks < 1 {
		return 0
	}
	nodeBlocks, left := uint64(2), uint64(g.AGBlocks)-1
	height := 1
	for nodeBlocks < left {
		left -= nodeBlocks
		nodeBlocks *= uint64(max(nodeMin, 2))
		height++
	}
	return height
}

// RefcountMaxLevels is the kernel's bound on the refcount btree's height.
func RefcountMaxLevels(g *Geometry) int { return refcountMaxLevels(g) }

// RmapMaxLevels is the kernel's bound on the rmap btree's height; reflink
// says whether the file system shares blocks.
func RmapMaxLevels(g *Geometry, reflink bool) int { return rmapMaxLevels(g, reflink) }
