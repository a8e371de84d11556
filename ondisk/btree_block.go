package ondisk

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
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

func btShortSibToLong(v uint32) uint64 {
	if v == NullAGBlock {
		return NullFSBlock
	}
	return uint64(v)
}

func btLongSibToShort(v uint64) uint32 {
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
		h.LeftSib = btShortSibToLong(be.Uint32(buf[8:]))
		h.RightSib = btShortSibToLong(be.Uint32(buf[12:]))
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
		be.PutUint32(buf[8:], btLongSibToShort(h.LeftSib))
		be.PutUint32(buf[12:], btLongSibToShort(h.RightSib))
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
	// SkipCRC leaves the CRC alone: a block already changed in memory by a
	// transaction has its CRC stamped only when it is written back.
	SkipCRC bool
}

// Verify checks the block header against c and the CRC over the whole of
// buf (the block), in the order the kernel's verifiers do.
func (h *BtreeBlock) Verify(buf []byte, c BlockCheck) error {
	where := btWhere(c.Daddr) // formatted only when an error is
	if h.Magic != c.Magic {
		return Corruptf("%s: magic 0x%08x (%s), want 0x%08x (%s)", where, h.Magic, btMagicText(h.Magic), c.Magic, btMagicText(c.Magic))
	}
	off := BtreeCRCOff(h.Long)
	if len(buf) < BtreeHeaderSize(h.Long) {
		return Corruptf("%s: buffer of %d bytes, want at least %d", where, len(buf), BtreeHeaderSize(h.Long))
	}
	if !c.SkipCRC {
		if got := Checksum(buf, off); got != StoredCRC(buf, off) {
			return Corruptf("%s: bad CRC 0x%08x, contents sum to 0x%08x", where, StoredCRC(buf, off), got)
		}
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
func (h *BtreeBlock) checkSibling(where btWhere, name string, v uint64, c BlockCheck) error {
	if v == NullFSBlock {
		return nil
	}
	g := c.Geo
	self := g.DaddrFSB(c.Daddr)
	if h.Long {
		if v == self {
			return Corruptf("%s: %s %d points at the block itself", where, name, v)
		}
		if !g.ValidFSB(v) || g.FSBAgbno(v) <= AGFLBlock(g) {
			return Corruptf("%s: %s %d is not a data block of the file system", where, name, v)
		}
		return nil
	}
	if v == uint64(g.FSBAgbno(self)) {
		return Corruptf("%s: %s %d points at the block itself", where, name, v)
	}
	agno := uint32(c.Owner)
	if uint64(agno) != c.Owner || agno >= g.AGCount || v >= uint64(g.AGSize(agno)) || v <= uint64(AGFLBlock(g)) {
		return Corruptf("%s: %s %d is not a data block of AG %d", where, name, v, c.Owner)
	}
	return nil
}

// btWhere names a block in messages. Verify runs on every block a cursor
// visits: naming it only when something is wrong keeps that cheap.
type btWhere int64

func (w btWhere) String() string { return fmt.Sprintf("btree block 0x%x", int64(w)) }

// btMagicText shows a magic number as its four characters when printable.
func btMagicText(m uint32) string {
	b := []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "?"
		}
	}
	return string(b)
}

// btreeLayout is what xfs_db needs to print the body of one kind of block:
// entry sizes, column names and how to render one record or key.
type btreeLayout struct {
	recSize, keySize, ptrSize int
	recCols, keyCols          []string
	rec, key                  func(b []byte) []string
}

func btU32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func btU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func btAgbText(v uint32) string {
	if v == NullAGBlock {
		return "null"
	}
	return strconv.FormatUint(uint64(v), 10)
}

func btDecText(v uint64) string { return strconv.FormatUint(v, 10) }

func btFlagText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// btRmapKeyText renders one rmap key (or the key part of a record) as xfs_db
// 6.1 does: owner signed, offset without its flag bits, then the flags it
// shows for keys.
func btRmapKeyText(start uint32, owner, off uint64) []string {
	return []string{btAgbText(start), strconv.FormatInt(int64(owner), 10), btDecText(off & RmapOffMask),
		btFlagText(off&RmapOffAttrFork != 0), btFlagText(off&RmapOffBmbtBlock != 0)}
}

// btRefcountStartText is the 31-bit start block of a refcount record or key,
// "null" when all ones.
func btRefcountStartText(v uint32) string {
	v &^= RefcountCowFlag
	if v == 1<<31-1 {
		return "null"
	}
	return btDecText(uint64(v))
}

// btreeLayoutFor returns the layout of blocks with the given magic, nil if
// unknown. Inode btree records have two layouts; xfs_db picks by the sparse
// inode feature, as the kernel does.
func btreeLayoutFor(magic uint32, sparse bool) *btreeLayout {
	alloc := func(b []byte) []string { return []string{btAgbText(btU32(b)), btDecText(uint64(btU32(b[4:])))} }
	switch magic {
	case BnoMagic:
		return &btreeLayout{AllocRecSize, AllocKeySize, ShortPtrSize,
			[]string{"startblock", "blockcount"}, []string{"startblock", "blockcount"}, alloc, alloc}
	case CntMagic:
		return &btreeLayout{AllocRecSize, AllocKeySize, ShortPtrSize,
			[]string{"startblock", "blockcount"}, []string{"blockcount", "startblock"}, alloc,
			func(b []byte) []string { return []string{btDecText(uint64(btU32(b[4:]))), btAgbText(btU32(b))} }}
	case InoMagic, FinoMagic:
		l := &btreeLayout{recSize: InobtRecSize, keySize: InobtKeySize, ptrSize: ShortPtrSize,
			keyCols: []string{"startino"},
			key:     func(b []byte) []string { return []string{btAgbText(btU32(b))} }}
		if sparse {
			l.recCols = []string{"startino", "holemask", "count", "freecount", "free"}
			l.rec = func(b []byte) []string {
				return []string{btAgbText(btU32(b)), xdbHexText(uint64(binary.BigEndian.Uint16(b[4:]))),
					btDecText(uint64(b[6])), btDecText(uint64(b[7])), xdbHexText(btU64(b[8:]))}
			}
		} else {
			l.recCols = []string{"startino", "freecount", "free"}
			l.rec = func(b []byte) []string {
				return []string{btAgbText(btU32(b)), strconv.FormatInt(int64(int32(btU32(b[4:]))), 10), xdbHexText(btU64(b[8:]))}
			}
		}
		return l
	case RefcMagic:
		return &btreeLayout{RefcountRecSize, RefcountKeySize, ShortPtrSize,
			[]string{"startblock", "blockcount", "refcount", "cowflag"}, []string{"startblock", "cowflag"},
			func(b []byte) []string {
				return []string{btRefcountStartText(btU32(b)), btDecText(uint64(btU32(b[4:]))), btDecText(uint64(btU32(b[8:]))),
					btFlagText(btU32(b)&RefcountCowFlag != 0)}
			},
			func(b []byte) []string {
				return []string{btRefcountStartText(btU32(b)), btFlagText(btU32(b)&RefcountCowFlag != 0)}
			}}
	case RmapMagic:
		return &btreeLayout{RmapRecSize, 2 * RmapKeySize, ShortPtrSize,
			[]string{"startblock", "blockcount", "owner", "offset", "extentflag", "attrfork", "bmbtblock"},
			[]string{"startblock", "owner", "offset", "attrfork", "bmbtblock",
				"startblock_hi", "owner_hi", "offset_hi", "attrfork_hi", "bmbtblock_hi"},
			func(b []byte) []string {
				r := DecodeRmapRec(b)
				return []string{btAgbText(r.StartBlock), btDecText(uint64(r.BlockCount)), strconv.FormatInt(int64(r.Owner), 10),
					btDecText(r.FileOffset()), btFlagText(r.Unwritten()), btFlagText(r.AttrFork()), btFlagText(r.BmbtBlock())}
			},
			func(b []byte) []string {
				lo, hi := DecodeRmapKey(b), DecodeRmapKey(b[RmapKeySize:])
				return append(btRmapKeyText(lo.StartBlock, lo.Owner, lo.Offset), btRmapKeyText(hi.StartBlock, hi.Owner, hi.Offset)...)
			}}
	case BmapMagic:
		return &btreeLayout{BmbtRecSize, BmbtKeySize, LongPtrSize,
			[]string{"startoff", "startblock", "blockcount", "extentflag"}, []string{"startoff"},
			func(b []byte) []string {
				hi, lo := btU64(b), btU64(b[8:])
				return []string{btDecText(hi >> 9 & (1<<54 - 1)), btDecText((hi&(1<<9-1))<<43 | lo>>21),
					btDecText(lo & (1<<21 - 1)), btFlagText(hi>>63 != 0)}
			},
			func(b []byte) []string { return []string{btDecText(btU64(b))} }}
	}
	return nil
}

// Fields renders the block as `xfs_db -c 'fsb N' -c 'type T' -c p` prints
// it: the header, then the records of a leaf or the keys and pointers of a
// node. buf is the whole block; sb says whether inode btree records use the
// sparse layout. Entry counts are bounded by buf. A block with an unknown
// magic renders its header only.
func (h *BtreeBlock) Fields(buf []byte, sb *Superblock) Fields {
	crcOK := len(buf) >= BtreeHeaderSize(h.Long) && VerifyCRC(buf, BtreeCRCOff(h.Long))
	var fs Fields
	fs = append(fs, hexField("magic", uint64(h.Magic)), decField("level", uint64(h.Level)),
		decField("numrecs", uint64(h.NumRecs)))
	// Short-form null siblings were widened to NullFSBlock at decode; both
	// forms print "null" for them.
	fs = append(fs, nullField("leftsib", h.LeftSib, NullFSBlock), nullField("rightsib", h.RightSib, NullFSBlock))
	fs = append(fs, nullField("bno", h.Blkno, NullFSBlock), hexField("lsn", h.LSN), uuidField("uuid", h.UUID))
	if h.Long {
		fs = append(fs, nullField("owner", h.Owner, NullFSIno))
	} else {
		fs = append(fs, xdbNull32("owner", uint32(h.Owner)))
	}
	fs = append(fs, crcField("crc", h.CRC, crcOK))

	l := btreeLayoutFor(h.Magic, sb != nil && sb.HasSpinodes())
	if l == nil || len(buf) < BtreeHeaderSize(h.Long) {
		return fs
	}
	hdr := BtreeHeaderSize(h.Long)
	n := int(h.NumRecs)
	if h.Level == 0 {
		n = min(n, (len(buf)-hdr)/l.recSize)
		if n > 0 {
			fs = append(fs, xdbStructArray("recs", l.recCols, n, func(i int) []string {
				return l.rec(buf[hdr+i*l.recSize:])
			}))
		}
		return fs
	}
	if k := min(n, (len(buf)-hdr)/l.keySize); k > 0 {
		fs = append(fs, xdbStructArray("keys", l.keyCols, k, func(i int) []string {
			return l.key(buf[hdr+i*l.keySize:])
		}))
	}
	ptr0 := BtreePtrOff(h.Long, len(buf), l.keySize, l.ptrSize, 0)
	if p := min(n, (len(buf)-ptr0)/l.ptrSize); p > 0 {
		ptrs := make([]uint64, p)
		for i := range ptrs {
			if l.ptrSize == LongPtrSize {
				ptrs[i] = btU64(buf[ptr0+i*LongPtrSize:])
			} else {
				ptrs[i] = uint64(btU32(buf[ptr0+i*ShortPtrSize:]))
			}
		}
		fs = append(fs, xdbPtrArray("ptrs", ptrs))
	}
	return fs
}

// btArrayName is "name[1]" or "name[1-n]": btree arrays count from 1.
func btArrayName(name string, n int) string {
	if n == 1 {
		return name + "[1]"
	}
	return fmt.Sprintf("%s[1-%d]", name, n)
}

// xdbStructArray renders an array of records as xfs_db's print_sarray: the
// column names, then each entry on its own line as "i:[v,v,...]".
func xdbStructArray(name string, cols []string, n int, entry func(i int) []string) Field {
	var b strings.Builder
	b.WriteString("[" + strings.Join(cols, ",") + "] ")
	value := make([]any, n)
	for i := range n {
		vals := entry(i)
		fmt.Fprintf(&b, "\n%d:[%s]", i+1, strings.Join(vals, ","))
		if i < n-1 {
			b.WriteByte(' ')
		}
		rec := make(Fields, len(cols))
		for j, c := range cols {
			rec[j] = Field{Name: c, Value: vals[j], Text: vals[j]}
		}
		value[i] = rec
	}
	return Field{Name: btArrayName(name, n), Value: value, Text: b.String()}
}

// xdbPtrArray renders child pointers as fp_num does: "1:p 2:q ...", and a
// single pointer without its index.
func xdbPtrArray(name string, ptrs []uint64) Field {
	var b strings.Builder
	value := make([]any, len(ptrs))
	for i, p := range ptrs {
		if len(ptrs) > 1 {
			fmt.Fprintf(&b, "%d:", i+1)
		}
		b.WriteString(btDecText(p))
		if i < len(ptrs)-1 {
			b.WriteByte(' ')
		}
		value[i] = p
	}
	return Field{Name: btArrayName(name, len(ptrs)), Value: value, Text: b.String()}
}
