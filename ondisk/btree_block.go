package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Magic numbers of the v5 (CRC) btree blocks.
const (
	BnoMagic  = 0x41423342 // AB3B: free space by block
	CntMagic  = 0x41423343 // AB3C: free space by size
	InoMagic  = 0x49414233 // IAB3: inodes
	FinoMagic = 0x46494233 // FIB3: chunks with free inodes
	RmapMagic = 0x524d4233 // RMB3: reverse mappings
	RefcMagic = 0x52334643 // R3FC: reference counts
	BmapMagic = 0x424d4133 // BMA3: file block maps (long form)
)

// Header sizes and CRC offsets of the short (AG trees, 32-bit sibling
// pointers) and long (BMBT, 64-bit) v5 btree block headers.
const (
	ShortBlockHeaderSize = 56
	LongBlockHeaderSize  = 72
	ShortCRCOff          = 52
	LongCRCOff           = 64
)

// BtreeBlock is the header of a v5 btree block in either form. Sibling
// pointers are AG blocks in the short form and file system blocks in the
// long form; a short-form NULLAGBLOCK is held as NullFSBlock so callers test
// one null value, and Encode writes it back as NULLAGBLOCK.
type BtreeBlock struct {
	Magic    uint32
	Level    uint16
	NumRecs  uint16
	LeftSib  uint64
	RightSib uint64
	Blkno    uint64 // disk address (512-byte units) of the block itself
	LSN      uint64
	UUID     UUID
	Owner    uint64 // short form: AG number; long form: inode number
	CRC      uint32
	Long     bool
}

// BtreeHeaderSize is the header size of the short or long form.
func BtreeHeaderSize(long bool) int {
	if long {
		return LongBlockHeaderSize
	}
	return ShortBlockHeaderSize
}

// BtreeCRCOff is the offset of the CRC in the short or long header.
func BtreeCRCOff(long bool) int {
	if long {
		return LongCRCOff
	}
	return ShortCRCOff
}

// StampBtreeCRC computes and stores the CRC of a whole btree block.
func StampBtreeCRC(buf []byte, long bool) { StampCRC(buf, BtreeCRCOff(long)) }

func shortSibToLong(v uint32) uint64 {
	if v == NullAGBlock {
		return NullFSBlock
	}
	return uint64(v)
}

func longSibToShort(v uint64) uint32 {
	if v == NullFSBlock {
		return NullAGBlock
	}
	return uint32(v)
}

// DecodeBtreeBlock decodes the header of a btree block; buf must hold at
// least the header (normally it is the whole block). It checks nothing else.
func DecodeBtreeBlock(buf []byte, long bool) (*BtreeBlock, error) {
	if n := BtreeHeaderSize(long); len(buf) < n {
		return nil, Corruptf("btree block: buffer of %d bytes, want at least %d", len(buf), n)
	}
	be := binary.BigEndian
	h := &BtreeBlock{
		Magic:   be.Uint32(buf[0:]),
		Level:   be.Uint16(buf[4:]),
		NumRecs: be.Uint16(buf[6:]),
		Long:    long,
	}
	if long {
		h.LeftSib = be.Uint64(buf[8:])
		h.RightSib = be.Uint64(buf[16:])
		h.Blkno = be.Uint64(buf[24:])
		h.LSN = be.Uint64(buf[32:])
		copy(h.UUID[:], buf[40:56])
		h.Owner = be.Uint64(buf[56:])
		h.CRC = StoredCRC(buf, LongCRCOff)
	} else {
		h.LeftSib = shortSibToLong(be.Uint32(buf[8:]))
		h.RightSib = shortSibToLong(be.Uint32(buf[12:]))
		h.Blkno = be.Uint64(buf[16:])
		h.LSN = be.Uint64(buf[24:])
		copy(h.UUID[:], buf[32:48])
		h.Owner = uint64(be.Uint32(buf[48:]))
		h.CRC = StoredCRC(buf, ShortCRCOff)
	}
	return h, nil
}

// Encode writes the header fields into buf in the form h.Long says. It does
// not stamp the CRC (the caller does, with StampBtreeCRC, once the records
// are in place); the CRC field is written as h.CRC. The long form's 4-byte
// pad is left as it is.
func (h *BtreeBlock) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint16(buf[4:], h.Level)
	be.PutUint16(buf[6:], h.NumRecs)
	if h.Long {
		be.PutUint64(buf[8:], h.LeftSib)
		be.PutUint64(buf[16:], h.RightSib)
		be.PutUint64(buf[24:], h.Blkno)
		be.PutUint64(buf[32:], h.LSN)
		copy(buf[40:56], h.UUID[:])
		be.PutUint64(buf[56:], h.Owner)
		binary.LittleEndian.PutUint32(buf[LongCRCOff:], h.CRC)
	} else {
		be.PutUint32(buf[8:], longSibToShort(h.LeftSib))
		be.PutUint32(buf[12:], longSibToShort(h.RightSib))
		be.PutUint64(buf[16:], h.Blkno)
		be.PutUint64(buf[24:], h.LSN)
		copy(buf[32:48], h.UUID[:])
		be.PutUint32(buf[48:], uint32(h.Owner))
		binary.LittleEndian.PutUint32(buf[ShortCRCOff:], h.CRC)
	}
}

// BlockCheck is what a caller expects of one btree block.
type BlockCheck struct {
	Magic   uint32
	Daddr   int64  // where the block was read from; must equal its bno
	Owner   uint64 // AG number (short form) or inode number (long form)
	UUID    UUID   // the file system's metadata UUID
	Level   int    // expected level; -1: any
	MaxRecs int    // capacity at this block's level; 0: skip the check
	MinRecs int    // minimum fill; 0: skip (roots may hold fewer)
	// Geo, when set, lets Verify check that siblings are blocks of the
	// file system (of AG Owner, for the short form) and not the block
	// itself.
	Geo *Geometry
}

// Verify checks the block header against c and the CRC over the whole of
// buf (the block), in the order the kernel's verifiers do.
func (h *BtreeBlock) Verify(buf []byte, c BlockCheck) error {
	where := fmt.Sprintf("btree block 0x%x", c.Daddr)
	if h.Magic != c.Magic {
		return Corruptf("%s: magic 0x%08x (%s), want 0x%08x (%s)", where, h.Magic, magicText(h.Magic), c.Magic, magicText(c.Magic))
	}
	off := BtreeCRCOff(h.Long)
	if len(buf) < BtreeHeaderSize(h.Long) {
		return Corruptf("%s: buffer of %d bytes, want at least %d", where, len(buf), BtreeHeaderSize(h.Long))
	}
	if got := Checksum(buf, off); got != StoredCRC(buf, off) {
		return Corruptf("%s: bad CRC 0x%08x, contents sum to 0x%08x", where, StoredCRC(buf, off), got)
	}
	if h.UUID != c.UUID {
		return Corruptf("%s: uuid %s, want %s", where, h.UUID, c.UUID)
	}
	if h.Blkno != uint64(c.Daddr) {
		return Corruptf("%s: bno 0x%x, want 0x%x (block is not where it says)", where, h.Blkno, c.Daddr)
	}
	if h.Owner != c.Owner {
		return Corruptf("%s: owner %d, want %d", where, h.Owner, c.Owner)
	}
	if c.Level >= 0 && int(h.Level) != c.Level {
		return Corruptf("%s: level %d, want %d", where, h.Level, c.Level)
	}
	if c.MaxRecs > 0 && int(h.NumRecs) > c.MaxRecs {
		return Corruptf("%s: numrecs %d, want at most %d", where, h.NumRecs, c.MaxRecs)
	}
	if c.MinRecs > 0 && int(h.NumRecs) < c.MinRecs {
		return Corruptf("%s: numrecs %d, want at least %d", where, h.NumRecs, c.MinRecs)
	}
	if h.LeftSib != NullFSBlock && h.LeftSib == h.RightSib {
		return Corruptf("%s: leftsib and rightsib both %d", where, h.LeftSib)
	}
	if c.Geo != nil {
		for _, s := range []struct {
			name string
			v    uint64
		}{{"leftsib", h.LeftSib}, {"rightsib", h.RightSib}} {
			if err := h.checkSibling(where, s.name, s.v, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSibling reports a sibling pointer that is not null, not a block of
// the file system (of the owning AG, for the short form) or the block
// itself.
func (h *BtreeBlock) checkSibling(where, name string, v uint64, c BlockCheck) error {
	if v == NullFSBlock {
		return nil
	}
	g := c.Geo
	self := g.DaddrFSB(c.Daddr)
	if h.Long {
		if v == self {
			return Corruptf("%s: %s %d points at the block itself", where, name, v)
		}
		if !g.ValidFSB(v) {
			return Corruptf("%s: %s %d is not a block of the file system", where, name, v)
		}
		return nil
	}
	if v == uint64(g.FSBAgbno(self)) {
		return Corruptf("%s: %s %d points at the block itself", where, name, v)
	}
	if agno := uint32(c.Owner); uint64(agno) != c.Owner || agno >= g.AGCount || v >= uint64(g.AGSize(agno)) {
		return Corruptf("%s: %s %d is not a block of AG %d", where, name, v, c.Owner)
	}
	return nil
}

// magicText shows a magic number as its four characters when printable.
func magicText(m uint32) string {
	b := []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "?"
		}
	}
	return string(b)
}
