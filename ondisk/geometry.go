package ondisk

// BBShift is log2 of the 512-byte basic block that disk addresses count in.
const (
	BBShift = 9
	BBSize  = 1 << BBShift
)

// Geometry holds the numbers derived from the superblock that every address
// conversion needs. It is computed once by NewGeometry from a verified
// superblock.
type Geometry struct {
	BlockSize      int
	BlockLog       uint
	SectSize       int
	InodeSize      int
	InodeLog       uint
	InoPerBlock    int
	InoPBLog       uint
	AGBlocks       uint32
	AGCount        uint32
	AGBlkLog       uint
	DBlocks        uint64
	AGInoLog       uint // bits of an AG-relative inode number
	DirBlkSize     int  // directory block size in bytes
	DirBlkFSBs     int  // directory block size in file system blocks
	InoAlign       uint32
	ClusterSize    int    // inode cluster buffer bytes
	ClusterFSBs    uint32 // blocks per inode cluster
	InodesPerChunk int    // 64
	HasFType       bool
	Bigtime        bool
	Nrext64        bool
	MetaUUID       UUID
	LogStart       uint64 // AG-encoded file system block
	LogBlocks      uint32
}

// InodesPerChunk is the number of inodes an inobt record covers.
const InodesPerChunk = 64

// NewGeometry derives the geometry from a superblock that passed Verify.
func NewGeometry(sb *Superblock) *Geometry {
	g := &Geometry{
		BlockSize:      int(sb.BlockSize),
		BlockLog:       uint(sb.BlockLog),
		SectSize:       int(sb.SectSize),
		InodeSize:      int(sb.InodeSize),
		InodeLog:       uint(sb.InodeLog),
		InoPerBlock:    int(sb.InoPBlock),
		InoPBLog:       uint(sb.InoPBLog),
		AGBlocks:       sb.AGBlocks,
		AGCount:        sb.AGCount,
		AGBlkLog:       uint(sb.AGBlkLog),
		DBlocks:        sb.DBlocks,
		AGInoLog:       uint(sb.AGBlkLog) + uint(sb.InoPBLog),
		DirBlkSize:     int(sb.BlockSize) << sb.DirBlkLog,
		DirBlkFSBs:     1 << sb.DirBlkLog,
		InoAlign:       sb.InoAlignmt,
		InodesPerChunk: InodesPerChunk,
		HasFType:       sb.HasFType(),
		Bigtime:        sb.HasBigtime(),
		Nrext64:        sb.HasNrext64(),
		MetaUUID:       sb.MetadataUUID(),
		LogStart:       sb.LogStart,
		LogBlocks:      sb.LogBlocks,
	}
	// v5 scales the 8 KiB inode cluster with the inode size so that a
	// cluster always holds 32 inodes.
	g.ClusterSize = 8192 * g.InodeSize / 256
	if g.ClusterSize < g.BlockSize {
		g.ClusterSize = g.BlockSize
	}
	g.ClusterFSBs = uint32(g.ClusterSize >> g.BlockLog)
	if g.InoAlign == 0 {
		g.InoAlign = 1
	}
	return g
}

// AGSize returns the number of blocks in AG agno; the last AG may be short.
func (g *Geometry) AGSize(agno uint32) uint32 {
	if agno == g.AGCount-1 {
		return uint32(g.DBlocks - uint64(agno)*uint64(g.AGBlocks))
	}
	return g.AGBlocks
}

// FSB builds an AG-encoded file system block number.
func (g *Geometry) FSB(agno, agbno uint32) uint64 {
	return uint64(agno)<<g.AGBlkLog | uint64(agbno)
}

// FSBAgno and FSBAgbno split an AG-encoded block number.
func (g *Geometry) FSBAgno(fsb uint64) uint32  { return uint32(fsb >> g.AGBlkLog) }
func (g *Geometry) FSBAgbno(fsb uint64) uint32 { return uint32(fsb & (1<<g.AGBlkLog - 1)) }

// ValidFSB reports whether fsb names a block inside the file system.
func (g *Geometry) ValidFSB(fsb uint64) bool {
	agno, agbno := g.FSBAgno(fsb), g.FSBAgbno(fsb)
	return agno < g.AGCount && agbno < g.AGSize(agno)
}

// AGBDaddr is the 512-byte disk address of block agbno in AG agno.
func (g *Geometry) AGBDaddr(agno, agbno uint32) int64 {
	return int64(uint64(agno)*uint64(g.AGBlocks)+uint64(agbno)) << (g.BlockLog - BBShift)
}

// FSBDaddr is the disk address of an AG-encoded block number.
func (g *Geometry) FSBDaddr(fsb uint64) int64 { return g.AGBDaddr(g.FSBAgno(fsb), g.FSBAgbno(fsb)) }

// FSBOffset is the byte offset on the device of an AG-encoded block.
func (g *Geometry) FSBOffset(fsb uint64) int64 { return g.FSBDaddr(fsb) << BBShift }

// DaddrFSB converts a disk address back to an AG-encoded block number.
func (g *Geometry) DaddrFSB(daddr int64) uint64 {
	lin := uint64(daddr) >> (g.BlockLog - BBShift)
	return g.FSB(uint32(lin/uint64(g.AGBlocks)), uint32(lin%uint64(g.AGBlocks)))
}

// BlockBBs is the number of 512-byte basic blocks in one fs block.
func (g *Geometry) BlockBBs() int { return g.BlockSize >> BBShift }

// AG header sector addresses: the superblock copy, AGF, AGI and AGFL are
// the first four sectors of every AG.
func (g *Geometry) AGHeaderDaddr(agno uint32, sector int) int64 {
	return g.AGBDaddr(agno, 0) + int64(sector*g.SectSize>>BBShift)
}

// AGFDaddr, AGIDaddr and AGFLDaddr give the header sectors of AG agno.
func (g *Geometry) AGFDaddr(agno uint32) int64  { return g.AGHeaderDaddr(agno, 1) }
func (g *Geometry) AGIDaddr(agno uint32) int64  { return g.AGHeaderDaddr(agno, 2) }
func (g *Geometry) AGFLDaddr(agno uint32) int64 { return g.AGHeaderDaddr(agno, 3) }

// AGFLSize is the number of slots in the AGFL ring.
func (g *Geometry) AGFLSize() int { return (g.SectSize - AGFLHeaderSize) / 4 }

// Ino builds an inode number from AG and AG-relative inode number.
func (g *Geometry) Ino(agno, agino uint32) uint64 { return uint64(agno)<<g.AGInoLog | uint64(agino) }

// InoAgno and InoAgino split an inode number.
func (g *Geometry) InoAgno(ino uint64) uint32  { return uint32(ino >> g.AGInoLog) }
func (g *Geometry) InoAgino(ino uint64) uint32 { return uint32(ino & (1<<g.AGInoLog - 1)) }

// AginoAgbno is the AG block holding an AG-relative inode.
func (g *Geometry) AginoAgbno(agino uint32) uint32 { return agino >> g.InoPBLog }

// AginoOffset is the inode's index within its block.
func (g *Geometry) AginoOffset(agino uint32) int { return int(agino & (1<<g.InoPBLog - 1)) }

// AgbnoAgino is the first AG-relative inode number in block agbno.
func (g *Geometry) AgbnoAgino(agbno uint32) uint32 { return agbno << g.InoPBLog }

// ValidIno reports whether ino can name an inode in the file system: inside
// an AG's data blocks and not in the AG headers.
func (g *Geometry) ValidIno(ino uint64) bool {
	if ino>>g.AGInoLog >= uint64(g.AGCount) {
		return false
	}
	agno, agino := g.InoAgno(ino), g.InoAgino(ino)
	agbno := g.AginoAgbno(agino)
	return agbno > 3 && agbno < g.AGSize(agno)
}

// InodeLocation says where an inode lives: the cluster buffer it is read and
// logged with, and its byte offset there.
type InodeLocation struct {
	ClusterDaddr int64 // disk address of the cluster buffer
	ClusterLen   int   // cluster buffer length in bytes
	Offset       int   // byte offset of the inode in the cluster buffer
}

// LocateInode finds the cluster buffer for ino. Clusters are aligned to the
// inode chunk alignment, so the cluster start is found from the chunk start.
func (g *Geometry) LocateInode(ino uint64) InodeLocation {
	agno, agino := g.InoAgno(ino), g.InoAgino(ino)
	agbno := g.AginoAgbno(agino)
	align := g.InoAlign
	if align < g.ClusterFSBs {
		align = g.ClusterFSBs
	}
	chunk := agbno - agbno%align
	cluster := chunk + (agbno-chunk)/g.ClusterFSBs*g.ClusterFSBs
	off := (int(agbno-cluster)*g.InoPerBlock + g.AginoOffset(agino)) * g.InodeSize
	return InodeLocation{ClusterDaddr: g.AGBDaddr(agno, cluster), ClusterLen: g.ClusterSize, Offset: off}
}

// LogDaddr is the disk address of the internal log's first block.
func (g *Geometry) LogDaddr() int64 { return g.FSBDaddr(g.LogStart) }

// LogBBs is the size of the internal log in 512-byte blocks.
func (g *Geometry) LogBBs() int64 { return int64(g.LogBlocks) << (g.BlockLog - BBShift) }
