package log

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// ItemInfo describes a log item for display: its type, size, and what the
// format region of the known types says.
type ItemInfo struct {
	Type    string       `json:"type"`
	Regions int          `json:"regions"`
	Bytes   int          `json:"bytes"`
	Buf     *BufInfo     `json:"buf,omitempty"`
	Inode   *InodeInfo   `json:"inode,omitempty"`
	ICreate *ICreateInfo `json:"icreate,omitempty"`
	Intent  *IntentInfo  `json:"intent,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// BufInfo is a buffer item: where, how long, its type and flags, and the
// dirty 128-byte chunk runs logged.
type BufInfo struct {
	Daddr  int64    `json:"daddr"`
	Len    int      `json:"len"` // 512-byte blocks
	Type   string   `json:"type"`
	Flags  []string `json:"flags,omitempty"`
	Chunks [][2]int `json:"chunks"` // [first, end) chunk runs
	Magic  string   `json:"magic,omitempty"`
}

// InodeInfo is an inode item: which inode, what was logged, where it goes
// and the main fields of the logged core.
type InodeInfo struct {
	Ino       uint64   `json:"ino"`
	Fields    []string `json:"fields"`
	Daddr     int64    `json:"cluster_daddr"`
	Len       int32    `json:"cluster_len"`
	Offset    int32    `json:"offset"`
	DSize     uint16   `json:"dsize,omitempty"`
	ASize     uint16   `json:"asize,omitempty"`
	Mode      string   `json:"mode"`
	Format    string   `json:"format"`
	Size      uint64   `json:"size"`
	Nlink     uint32   `json:"nlink"`
	NBlocks   uint64   `json:"nblocks"`
	NExtents  uint64   `json:"nextents"`
	ANExtents uint64   `json:"anextents"`
	ForkOff   uint8    `json:"forkoff"`
	Gen       uint32   `json:"gen"`
}

// ICreateInfo is an inode chunk allocation.
type ICreateInfo struct {
	AG     uint32 `json:"ag"`
	AGBno  uint32 `json:"agbno"`
	Count  uint32 `json:"count"`
	ISize  uint32 `json:"isize"`
	Length uint32 `json:"length"`
	Gen    uint32 `json:"gen"`
}

// IntentInfo is an intent or done item: the intent id that pairs them.
type IntentInfo struct {
	ID       string `json:"id"`
	NExtents uint32 `json:"nextents"`
}

var ilogFieldNames = []struct {
	bit  uint32
	name string
}{
	{ILogCore, "CORE"}, {ILogDData, "DDATA"}, {ILogDExt, "DEXT"}, {ILogDBroot, "DBROOT"}, {ILogDev, "DEV"},
	{ILogUUID, "UUID"}, {ILogAData, "ADATA"}, {ILogAExt, "AEXT"}, {ILogABroot, "ABROOT"},
	{ILogDOwner, "DOWNER"}, {ILogAOwner, "AOWNER"},
}

var formatNames = map[uint8]string{ondisk.FmtDev: "dev", ondisk.FmtLocal: "local", ondisk.FmtExtents: "extents", ondisk.FmtBtree: "btree", ondisk.FmtUUID: "uuid"}

// Describe decodes the item's format region for display. It never fails:
// what cannot be decoded is reported in Error.
func (it *Item) Describe() ItemInfo {
	info := ItemInfo{Type: it.TypeName(), Regions: len(it.Regions)}
	for _, r := range it.Regions {
		info.Bytes += len(r)
	}
	if len(it.Regions) == 0 {
		return info
	}
	f0 := it.Regions[0]
	le := binary.LittleEndian
	switch it.Type {
	case ItemBuf:
		f, err := DecodeBufLogFormat(f0)
		if err != nil {
			info.Error = err.Error()
			return info
		}
		b := &BufInfo{Daddr: f.Blkno, Len: int(f.Len), Type: bufTypeName(f.Type()), Chunks: f.ChunkRuns()}
		for _, fl := range []struct {
			bit  uint16
			name string
		}{{BlfInodeBuf, "INODE_BUF"}, {BlfCancel, "CANCEL"}, {BlfUDquot, "UDQUOT"}, {BlfPDquot, "PDQUOT"}, {BlfGDquot, "GDQUOT"}} {
			if f.Flags&fl.bit != 0 {
				b.Flags = append(b.Flags, fl.name)
			}
		}
		if len(it.Regions) > 1 && len(it.Regions[1]) >= 4 && len(b.Chunks) > 0 && b.Chunks[0][0] == 0 {
			b.Magic = magicText(it.Regions[1])
		}
		info.Buf = b
	case ItemInode:
		f, err := DecodeInodeLogFormat(f0)
		if err != nil {
			info.Error = err.Error()
			return info
		}
		in := &InodeInfo{Ino: f.Ino, Daddr: f.Blkno, Len: f.Len, Offset: f.BOffset, DSize: f.DSize, ASize: f.ASize}
		for _, n := range ilogFieldNames {
			if f.Fields&n.bit != 0 {
				in.Fields = append(in.Fields, n.name)
			}
		}
		if len(it.Regions) > 1 && len(it.Regions[1]) == LogDinodeSize {
			ld := it.Regions[1]
			in.Mode = fmt.Sprintf("%#o", le.Uint16(ld[ldiModeOff:]))
			in.Format = formatNames[ld[ldiFormatOff]]
			if in.Format == "" {
				in.Format = fmt.Sprint(ld[ldiFormatOff])
			}
			in.Nlink = le.Uint32(ld[16:])
			in.Size = le.Uint64(ld[56:])
			in.NBlocks = le.Uint64(ld[ldiNBlocksOff:])
			in.ForkOff = ld[ldiForkOffOff]
			in.Gen = le.Uint32(ld[92:])
			if le.Uint64(ld[ldiFlags2Off:])&flags2Nrext64 != 0 {
				in.NExtents, in.ANExtents = le.Uint64(ld[ldiV3PadOff:]), uint64(le.Uint32(ld[ldiNExtOff:]))
			} else {
				in.NExtents, in.ANExtents = uint64(le.Uint32(ld[ldiNExtOff:])), uint64(le.Uint16(ld[ldiANExtOff:]))
			}
		}
		info.Inode = in
	case ItemICreate:
		ic, err := decodeICreate(f0)
		if err != nil {
			info.Error = err.Error()
			return info
		}
		info.ICreate = &ICreateInfo{ic.AG, ic.AGBno, ic.Count, ic.ISize, ic.Length, ic.Gen}
	default:
		_, isIntent := intentDone[it.Type]
		_, isDone := doneIntent[it.Type]
		if (isIntent || isDone) && len(f0) >= 16 {
			info.Intent = &IntentInfo{ID: fmt.Sprintf("0x%x", le.Uint64(f0[8:])), NExtents: le.Uint32(f0[4:])}
		}
	}
	return info
}

// magicText shows the first word of a logged buffer image: four
// characters when printable, else hex.
func magicText(b []byte) string {
	for _, c := range b[:4] {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", binary.BigEndian.Uint32(b))
		}
	}
	return string(b[:4])
}

// ScanEntry is one thing found scanning the whole log: a record, a run of
// cleared (empty, h_len 0) headers, or a header that could not be read.
type ScanEntry struct {
	Block   int64
	Record  *Record // a record whose header passed its checks
	Cleared int64   // a run of this many cleared headers starts at Block
	Err     error   // a header that failed its checks, or ops that did not parse
}

// Scan reads the whole log from block 0 and returns every record header
// found, in block order, as xfs_logprint does when it dumps a log. Each
// record is parsed with its own h_size; after a record the scan goes on
// after its last block.
func (a *Area) Scan() ([]ScanEntry, error) {
	rr := a.newRangeReader(0, a.BBs)
	var out []ScanEntry
	for blk := int64(0); blk < a.BBs; {
		b, err := rr.blocks(blk, 1)
		if err != nil {
			return out, err
		}
		if binary.BigEndian.Uint32(b) != HeaderMagic {
			blk++
			continue
		}
		h := decodeRecordHeader(b)
		if h.Len == 0 {
			if n := len(out); n > 0 && out[n-1].Cleared > 0 && out[n-1].Block+out[n-1].Cleared == blk {
				out[n-1].Cleared++
			} else {
				out = append(out, ScanEntry{Block: blk, Cleared: 1})
			}
			blk++
			continue
		}
		hsize := min(int(h.Size), maxRecordBytes)
		hblks := hblksFor(h.Version, uint32(hsize))
		if err := checkHeader(h, max(hsize, DefaultHSize)); err != nil {
			out = append(out, ScanEntry{Block: blk, Err: err})
			blk++
			continue
		}
		n := int64(hblks + h.DataBlocks())
		if blk+n > a.BBs {
			// Wrapped past the physical end: read it in two pieces.
			if n > a.BBs {
				out = append(out, ScanEntry{Block: blk, Err: ondisk.Corruptf("record of %d blocks in a %d-block log", n, a.BBs)})
				break
			}
			rec, err := a.readWrapped(blk, hblks, h.DataBlocks())
			if err != nil {
				return out, err
			}
			out = append(out, a.scanParse(blk, rec[:hblks*ondisk.BBSize], rec[hblks*ondisk.BBSize:], max(hsize, DefaultHSize)))
			break
		}
		rb, err := rr.blocks(blk, n)
		if err != nil {
			return out, err
		}
		rec := append([]byte(nil), rb...)
		out = append(out, a.scanParse(blk, rec[:hblks*ondisk.BBSize], rec[hblks*ondisk.BBSize:], max(hsize, DefaultHSize)))
		blk += n
	}
	return out, nil
}

func (a *Area) scanParse(blk int64, hdr, data []byte, bufSize int) ScanEntry {
	r, err := ParseRecord(blk, hdr, data, bufSize)
	if err != nil {
		return ScanEntry{Block: blk, Err: err}
	}
	return ScanEntry{Block: blk, Record: r, Err: r.Err}
}

// readWrapped reads a record that runs past the physical end of the log.
func (a *Area) readWrapped(blk int64, hblks, dblks int) ([]byte, error) {
	n := int64(hblks + dblks)
	first, err := a.ReadBlocks(blk, int(a.BBs-blk))
	if err != nil {
		return nil, err
	}
	rest, err := a.ReadBlocks(0, int(n-(a.BBs-blk)))
	if err != nil {
		return nil, err
	}
	return append(append([]byte(nil), first...), rest...), nil
}
