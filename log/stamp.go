package log

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Metadata written in place carries the LSN of the checkpoint that logged it
// and a CRC32C over the structure, as the kernel's write verifiers stamp
// them. Where both live depends on the structure, found by its magic number.
// A buffer whose magic is not in this table is never written: xfsimg does
// not write metadata it cannot verify.

// stampLayout says where one kind of metadata keeps its stamps.
type stampLayout struct {
	name     string
	typ      BufType // the buffer type the kernel logs it with
	magicOff int
	magic16  bool // a 16-bit magic (da3_blkinfo)
	magic    uint32
	lsnOff   int
	crcOff   int
	perBlock bool // one header and CRC per file system block (attr remote values)
	uuidOff  int  // sb_meta_uuid copy; -1 when the structure has none to check
	nullLSN  bool // stamped with NULLCOMMITLSN, never a log position
}

// Offsets from xfs_format.h, xfs_da_format.h and xfs_log_format.h; each is
// checked against kernel-written blocks in stamp_test.go.
var stampLayouts = []stampLayout{
	{"superblock", BufSB, 0, false, ondisk.SBMagic, ondisk.SBLSNOff, ondisk.SBCRCOff, false, -1, false},
	{"AGF", BufAGF, 0, false, ondisk.AGFMagic, ondisk.AGFLSNOff, ondisk.AGFCRCOff, false, 64, false},
	{"AGI", BufAGI, 0, false, ondisk.AGIMagic, ondisk.AGILSNOff, ondisk.AGICRCOff, false, 296, false},
	{"AGFL", BufAGFL, 0, false, ondisk.AGFLMagic, ondisk.AGFLLSNOff, ondisk.AGFLCRCOff, false, 8, false},
	{"bnobt block", BufBtree, 0, false, ondisk.BnoMagic, 24, ondisk.ShortCRCOff, false, 32, false},
	{"cntbt block", BufBtree, 0, false, ondisk.CntMagic, 24, ondisk.ShortCRCOff, false, 32, false},
	{"inobt block", BufBtree, 0, false, ondisk.InoMagic, 24, ondisk.ShortCRCOff, false, 32, false},
	{"finobt block", BufBtree, 0, false, ondisk.FinoMagic, 24, ondisk.ShortCRCOff, false, 32, false},
	{"rmapbt block", BufBtree, 0, false, ondisk.RmapMagic, 24, ondisk.ShortCRCOff, false, 32, false},
	{"refcountbt block", BufBtree, 0, false, ondisk.RefcMagic, 24, ondisk.ShortCRCOff, false, 32, false},
	{"bmbt block", BufBtree, 0, false, ondisk.BmapMagic, 32, ondisk.LongCRCOff, false, 40, false},
	// xfs_dir3_blk_hdr: magic, crc@4, blkno@8, lsn@16, uuid@24, owner@40.
	{"dir3 block", BufDirBlock, 0, false, 0x58444233, 16, 4, false, 24, false},
	{"dir3 data block", BufDirData, 0, false, 0x58444433, 16, 4, false, 24, false},
	{"dir3 free block", BufDirFree, 0, false, 0x58444633, 16, 4, false, 24, false},
	// xfs_da3_blkinfo: forw, back, magic16@8, pad, crc@12, blkno@16, lsn@24, uuid@32.
	{"dir3 leaf1 block", BufDirLeaf1, 8, true, 0x3df1, 24, 12, false, 32, false},
	{"dir3 leafn block", BufDirLeafN, 8, true, 0x3dff, 24, 12, false, 32, false},
	{"da3 node block", BufDANode, 8, true, 0x3ebe, 24, 12, false, 32, false},
	{"attr3 leaf block", BufAttrLeaf, 8, true, 0x3bee, 24, 12, false, 32, false},
	// xfs_dsymlink_hdr and xfs_attr3_rmt_hdr: magic, offset, bytes, crc@12,
	// uuid@16, owner@32, blkno@40, lsn@48.
	{"remote symlink block", BufSymlink, 0, false, ondisk.SymlinkMagic, 48, 12, false, 16, false},
	// Remote attr values are written synchronously, never logged, so the
	// kernel stamps them NULLCOMMITLSN and recovery always replays over
	// them (xlog_recover_get_buf_lsn).
	{"remote attr value", BufAttrRmt, 0, false, 0x5841524d, 48, 12, true, 16, true},
}

// nullCommitLSN is NULLCOMMITLSN: "no log position".
const nullCommitLSN = LSN(^uint64(0))

// layoutOf finds the stamp layout for a buffer by its magic number.
func layoutOf(buf []byte) *stampLayout {
	for i := range stampLayouts {
		l := &stampLayouts[i]
		if l.magicOff+4 > len(buf) {
			continue
		}
		var m uint32
		if l.magic16 {
			m = uint32(binary.BigEndian.Uint16(buf[l.magicOff:]))
		} else {
			m = binary.BigEndian.Uint32(buf[l.magicOff:])
		}
		if m == l.magic {
			return l
		}
	}
	return nil
}

// checkBuffer refuses a buffer the journal must not write: unknown magic, a
// type that does not match it, or another file system's UUID.
func checkBuffer(buf []byte, typ BufType, g *ondisk.Geometry) error {
	if typ == BufDino {
		return nil // checked inode by inode
	}
	l := layoutOf(buf)
	if l == nil {
		return fmt.Errorf("unknown metadata (magic 0x%08x): %w", binary.BigEndian.Uint32(buf), ondisk.ErrUnsupported)
	}
	if typ != l.typ {
		return fmt.Errorf("%s logged as buffer type %d, want %d", l.name, typ, l.typ)
	}
	blocks := [][]byte{buf}
	if l.perBlock {
		blocks = splitBlocks(buf, g.BlockSize)
	}
	for _, b := range blocks {
		if l.uuidOff >= 0 && ondisk.UUID(b[l.uuidOff:l.uuidOff+16]) != g.MetaUUID {
			return ondisk.Corruptf("%s: uuid %v is not the file system's %v", l.name, ondisk.UUID(b[l.uuidOff:l.uuidOff+16]), g.MetaUUID)
		}
		if l.perBlock && layoutOf(b) != l {
			return ondisk.Corruptf("%s: block without a header", l.name)
		}
	}
	return nil
}

func splitBlocks(buf []byte, bs int) [][]byte {
	var out [][]byte
	for off := 0; off+bs <= len(buf); off += bs {
		out = append(out, buf[off:off+bs])
	}
	if len(out) == 0 {
		out = append(out, buf)
	}
	return out
}

// stampBuffer sets the LSN and CRC of a buffer about to be written in place.
// inodes lists the byte offsets of the logged inodes of an inode cluster.
func stampBuffer(buf []byte, typ BufType, lsn LSN, g *ondisk.Geometry, inodes []int) error {
	if typ == BufDino {
		for _, off := range inodes {
			ip := buf[off : off+g.InodeSize]
			binary.BigEndian.PutUint64(ip[ondisk.DinodeLSNOff:], uint64(lsn))
			ondisk.StampCRC(ip, ondisk.DinodeCRCOff)
		}
		return nil
	}
	l := layoutOf(buf)
	if l == nil {
		return fmt.Errorf("unknown metadata (magic 0x%08x): %w", binary.BigEndian.Uint32(buf), ondisk.ErrUnsupported)
	}
	blocks := [][]byte{buf}
	if l.perBlock {
		blocks = splitBlocks(buf, g.BlockSize)
	}
	if l.nullLSN {
		lsn = nullCommitLSN
	}
	for _, b := range blocks {
		binary.BigEndian.PutUint64(b[l.lsnOff:], uint64(lsn))
		ondisk.StampCRC(b, l.crcOff)
	}
	return nil
}

// inodeCRCOK reports whether every in-use inode slot of a cluster buffer
// in [from, to) carries a valid CRC.
func inodeSlotsOK(buf []byte, g *ondisk.Geometry, from, to int) error {
	is := g.InodeSize
	for off := from / is * is; off < to && off+is <= len(buf); off += is {
		ip := buf[off : off+is]
		if binary.BigEndian.Uint16(ip) != ondisk.DinodeMagic {
			continue
		}
		if !ondisk.VerifyCRC(ip, ondisk.DinodeCRCOff) {
			return ondisk.Corruptf("inode at offset %d of the cluster changed without being logged (bad CRC)", off)
		}
	}
	return nil
}
