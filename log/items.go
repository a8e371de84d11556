package log

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Log item types (xfs_log_format.h). Only buffers and inodes are written
// by xfsimg; the others are recognised by name so that recovery can refuse
// what it does not implement, naming it.
const (
	ItemEFI32    = 0x1236
	ItemEFD      = 0x1237
	ItemIUnlink  = 0x1238
	ItemInode    = 0x123b
	ItemBuf      = 0x123c
	ItemDquot    = 0x123d
	ItemQuotaOff = 0x123e
	ItemICreate  = 0x123f
	ItemRUI      = 0x1240
	ItemRUD      = 0x1241
	ItemCUI      = 0x1242
	ItemCUD      = 0x1243
	ItemBUI      = 0x1244
	ItemBUD      = 0x1245
	ItemATTRI    = 0x1246
	ItemATTRD    = 0x1247
	ItemXMI      = 0x1248
	ItemXMD      = 0x1249
)

var itemNames = map[uint16]string{
	ItemEFI32: "EFI", ItemEFD: "EFD", ItemIUnlink: "IUNLINK", ItemInode: "INODE", ItemBuf: "BUF",
	ItemDquot: "DQUOT", ItemQuotaOff: "QUOTAOFF", ItemICreate: "ICREATE", ItemRUI: "RUI", ItemRUD: "RUD",
	ItemCUI: "CUI", ItemCUD: "CUD", ItemBUI: "BUI", ItemBUD: "BUD", ItemATTRI: "ATTRI", ItemATTRD: "ATTRD",
	ItemXMI: "XMI", ItemXMD: "XMD",
}

// ItemName names a log item type, e.g. "EFI".
func ItemName(t uint16) string {
	if n, ok := itemNames[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown item type 0x%04x", t)
}

// Transaction header (xfs_trans_header), host-endian (little-endian).
const (
	TransMagic      = 0x5452414E // "TRAN"
	TransCheckpoint = 40         // XFS_TRANS_CHECKPOINT
	TransHeaderSize = 16
)

// TransHeader mirrors xfs_trans_header.
type TransHeader struct {
	Magic, Type, Tid, NumItems uint32
}

// Encode writes the header in host (little-endian) order.
func (h TransHeader) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Magic)
	le.PutUint32(b[4:], h.Type)
	le.PutUint32(b[8:], h.Tid)
	le.PutUint32(b[12:], h.NumItems)
}

// DecodeTransHeader reads a transaction header region.
func DecodeTransHeader(b []byte) (TransHeader, error) {
	if len(b) < TransHeaderSize {
		return TransHeader{}, ondisk.Corruptf("log: transaction header of %d bytes", len(b))
	}
	le := binary.LittleEndian
	h := TransHeader{le.Uint32(b[0:]), le.Uint32(b[4:]), le.Uint32(b[8:]), le.Uint32(b[12:])}
	if h.Magic != TransMagic {
		return h, ondisk.Corruptf("log: transaction header magic 0x%08x", h.Magic)
	}
	return h, nil
}

// OpHeader mirrors xlog_op_header (big-endian).
type OpHeader struct {
	Tid      uint32
	Len      uint32
	ClientID uint8
	Flags    uint8
}

// Encode writes the op header.
func (o OpHeader) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b[0:], o.Tid)
	be.PutUint32(b[4:], o.Len)
	b[8], b[9] = o.ClientID, o.Flags
	b[10], b[11] = 0, 0
}

// DecodeOpHeader reads an op header.
func DecodeOpHeader(b []byte) OpHeader {
	be := binary.BigEndian
	return OpHeader{Tid: be.Uint32(b[0:]), Len: be.Uint32(b[4:]), ClientID: b[8], Flags: b[9]}
}

// Buffer log item (xfs_buf_log_format), host-endian.
const (
	BufChunkSize   = 128 // XFS_BLF_CHUNK: one dirty-map bit
	bufFmtFixed    = 20  // type, size, flags, len, blkno, map_size
	BlfInodeBuf    = 0x1
	BlfCancel      = 0x2
	BlfUDquot      = 0x4
	BlfPDquot      = 0x8
	BlfGDquot      = 0x10
	blfTypeShift   = 11
	maxBufMapWords = (65536 / BufChunkSize) / 32 // XFS_BLF_DATAMAP_SIZE for 64 KiB buffers
	// MaxRegionsInItem is XLOG_MAX_REGIONS_IN_ITEM: a 64 KiB buffer logged
	// in alternating dirty and clean chunks, plus its format region.
	// Recovery rejects an item announcing more.
	MaxRegionsInItem = 65536/BufChunkSize/2 + 1
)

// BufType is the buffer type recorded in blf_flags (XFS_BLFT_*); on replay
// it selects the verifier.
type BufType uint16

const (
	BufUnknown   BufType = 0
	BufBtree     BufType = 4
	BufAGF       BufType = 5
	BufAGFL      BufType = 6
	BufAGI       BufType = 7
	BufDino      BufType = 8
	BufSymlink   BufType = 9
	BufDirBlock  BufType = 10
	BufDirData   BufType = 11
	BufDirFree   BufType = 12
	BufDirLeaf1  BufType = 13
	BufDirLeafN  BufType = 14
	BufDANode    BufType = 15
	BufAttrLeaf  BufType = 16
	BufAttrRmt   BufType = 17
	BufSB        BufType = 18
	BufRTBitmap  BufType = 19
	BufRTSummary BufType = 20
)

// BufLogFormat mirrors xfs_buf_log_format.
type BufLogFormat struct {
	Size    uint16 // regions of the item, this one included
	Flags   uint16 // type << 11 | flag bits
	Len     uint16 // buffer length in 512-byte blocks
	Blkno   int64  // disk address
	DataMap []uint32
}

// Type returns the buffer type held in the flags.
func (f *BufLogFormat) Type() BufType { return BufType(f.Flags >> blfTypeShift) }

// EncodedSize is the logged size: the fixed part and the used map words,
// not sizeof(struct).
func (f *BufLogFormat) EncodedSize() int { return bufFmtFixed + 4*len(f.DataMap) }

// Encode writes the format region.
func (f *BufLogFormat) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], ItemBuf)
	le.PutUint16(b[2:], f.Size)
	le.PutUint16(b[4:], f.Flags)
	le.PutUint16(b[6:], f.Len)
	le.PutUint64(b[8:], uint64(f.Blkno))
	le.PutUint32(b[16:], uint32(len(f.DataMap)))
	for i, w := range f.DataMap {
		le.PutUint32(b[20+4*i:], w)
	}
}

// DecodeBufLogFormat reads a buffer item's format region, checking it the
// way xfs_buf_log_check_iovec does.
func DecodeBufLogFormat(b []byte) (*BufLogFormat, error) {
	if len(b) < bufFmtFixed {
		return nil, ondisk.Corruptf("log: buffer item format of %d bytes", len(b))
	}
	le := binary.LittleEndian
	if t := le.Uint16(b[0:]); t != ItemBuf {
		return nil, ondisk.Corruptf("log: buffer item type 0x%x", t)
	}
	f := &BufLogFormat{
		Size:  le.Uint16(b[2:]),
		Flags: le.Uint16(b[4:]),
		Len:   le.Uint16(b[6:]),
		Blkno: int64(le.Uint64(b[8:])),
	}
	words := le.Uint32(b[16:])
	if words > maxBufMapWords || int(words)*4 > len(b)-bufFmtFixed {
		return nil, ondisk.Corruptf("log: buffer item map of %d words in a %d-byte region", words, len(b))
	}
	f.DataMap = make([]uint32, words)
	for i := range f.DataMap {
		f.DataMap[i] = le.Uint32(b[20+4*i:])
	}
	return f, nil
}

// ChunkRuns returns the contiguous dirty runs of the map as [first, end)
// chunk ranges, in order: one data region is logged per run.
func (f *BufLogFormat) ChunkRuns() [][2]int {
	var runs [][2]int
	start := -1
	n := len(f.DataMap) * 32
	for i := 0; i <= n; i++ {
		set := i < n && f.DataMap[i/32]&(1<<(i%32)) != 0
		switch {
		case set && start < 0:
			start = i
		case !set && start >= 0:
			runs = append(runs, [2]int{start, i})
			start = -1
		}
	}
	return runs
}

// Inode log item (xfs_inode_log_format), host-endian, 56 bytes.
const (
	InodeLogFormatSize   = 56
	inodeLogFormat32Size = 52 // the packed layout of old 32-bit kernels

	ILogCore   = 0x001
	ILogDData  = 0x002
	ILogDExt   = 0x004
	ILogDBroot = 0x008
	ILogDev    = 0x010
	ILogUUID   = 0x020
	ILogAData  = 0x040
	ILogAExt   = 0x080
	ILogABroot = 0x100
	ILogDOwner = 0x200
	ILogAOwner = 0x400
)

// InodeLogFormat mirrors xfs_inode_log_format.
type InodeLogFormat struct {
	Size    uint16 // regions: format, core, then optional data and attr forks
	Fields  uint32
	ASize   uint16
	DSize   uint16
	Ino     uint64
	Rdev    uint32 // with ILogDev
	Blkno   int64  // cluster buffer disk address
	Len     int32  // cluster buffer length in 512-byte blocks
	BOffset int32  // byte offset of the inode in the cluster buffer
}

// Encode writes the 56-byte format region.
func (f *InodeLogFormat) Encode(b []byte) {
	le := binary.LittleEndian
	clear(b[:InodeLogFormatSize])
	le.PutUint16(b[0:], ItemInode)
	le.PutUint16(b[2:], f.Size)
	le.PutUint32(b[4:], f.Fields)
	le.PutUint16(b[8:], f.ASize)
	le.PutUint16(b[10:], f.DSize)
	le.PutUint64(b[16:], f.Ino)
	le.PutUint32(b[24:], f.Rdev)
	le.PutUint64(b[40:], uint64(f.Blkno))
	le.PutUint32(b[48:], uint32(f.Len))
	le.PutUint32(b[52:], uint32(f.BOffset))
}

// DecodeInodeLogFormat reads either layout of the inode format region.
func DecodeInodeLogFormat(b []byte) (*InodeLogFormat, error) {
	le := binary.LittleEndian
	switch len(b) {
	case InodeLogFormatSize:
		return &InodeLogFormat{
			Size: le.Uint16(b[2:]), Fields: le.Uint32(b[4:]), ASize: le.Uint16(b[8:]), DSize: le.Uint16(b[10:]),
			Ino: le.Uint64(b[16:]), Rdev: le.Uint32(b[24:]),
			Blkno: int64(le.Uint64(b[40:])), Len: int32(le.Uint32(b[48:])), BOffset: int32(le.Uint32(b[52:])),
		}, nil
	case inodeLogFormat32Size:
		// Packed: no padding after dsize, so everything from ino on sits
		// four bytes earlier.
		return &InodeLogFormat{
			Size: le.Uint16(b[2:]), Fields: le.Uint32(b[4:]), ASize: le.Uint16(b[8:]), DSize: le.Uint16(b[10:]),
			Ino: le.Uint64(b[12:]), Rdev: le.Uint32(b[20:]),
			Blkno: int64(le.Uint64(b[36:])), Len: int32(le.Uint32(b[44:])), BOffset: int32(le.Uint32(b[48:])),
		}, nil
	}
	return nil, ondisk.Corruptf("log: inode item format of %d bytes", len(b))
}

// Unmount record payload (xfs_unmount_log_format), host-endian.
const (
	UnmountMagic = 0x556E
	unmountSize  = 8
)
