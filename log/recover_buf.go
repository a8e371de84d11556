package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/xfsimg/xfsimg/ondisk"
)

// rbuf is one metadata buffer recovery read, replayed into and will write
// back: the kernel's buffer cache during recovery, in memory.
type rbuf struct {
	daddr int64
	data  []byte
	dirty bool
	// pending is the LSN the buffer's write verifier will stamp (the
	// transaction that last replayed into it); 0 when none. The kernel
	// writes recovered buffers each time the recovery LSN changes, so a
	// buffer carries the new LSN only from then on: replay of later
	// transactions with the same LSN must still see the old one.
	pending LSN
}

// bufCache holds every buffer recovery touches, by disk address.
type bufCache struct {
	dev     ondisk.Storage
	limit   int64 // bytes of the file system; no buffer may reach past it
	bufs    map[int64]*rbuf
	pending []*rbuf // buffers with an LSN to stamp at the next drain
	reads   int     // device reads, for the report and tests
}

func newBufCache(dev ondisk.Storage, limit int64) *bufCache {
	return &bufCache{dev: dev, limit: limit, bufs: map[int64]*rbuf{}}
}

func (c *bufCache) check(daddr int64, bbs int) error {
	if daddr < 0 || bbs <= 0 || bbs > 2*65536/ondisk.BBSize || (daddr+int64(bbs))<<ondisk.BBShift > c.limit {
		return ondisk.Corruptf("buffer of %d blocks at daddr %d is outside the file system", bbs, daddr)
	}
	return nil
}

// lookup returns the cached buffer at daddr, refusing one cached with
// another length (the kernel would not mix them either).
func (c *bufCache) lookup(daddr int64, bbs int) (*rbuf, error) {
	b := c.bufs[daddr]
	if b != nil && len(b.data) != bbs*ondisk.BBSize {
		return nil, ondisk.Unsupportedf("buffer at daddr %d used with lengths of %d and %d blocks", daddr, len(b.data)/ondisk.BBSize, bbs)
	}
	return b, nil
}

// get returns the buffer, reading it on first use.
func (c *bufCache) get(daddr int64, bbs int) (*rbuf, error) {
	if err := c.check(daddr, bbs); err != nil {
		return nil, err
	}
	b, err := c.lookup(daddr, bbs)
	if b != nil || err != nil {
		return b, err
	}
	data := make([]byte, bbs*ondisk.BBSize)
	c.reads++
	if _, err := c.dev.ReadAt(data, daddr<<ondisk.BBShift); err != nil {
		return nil, fmt.Errorf("read daddr %d: %w", daddr, err)
	}
	b = &rbuf{daddr: daddr, data: data}
	c.bufs[daddr] = b
	return b, nil
}

// getZero returns the buffer without reading it, zeroed: a new inode
// cluster is initialised whole.
func (c *bufCache) getZero(daddr int64, bbs int) (*rbuf, error) {
	if err := c.check(daddr, bbs); err != nil {
		return nil, err
	}
	b, err := c.lookup(daddr, bbs)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = &rbuf{daddr: daddr, data: make([]byte, bbs*ondisk.BBSize)}
		c.bufs[daddr] = b
	} else {
		clear(b.data)
	}
	return b, nil
}

// prefetch reads the given buffers (not yet cached) in disk order, merging
// neighbours into large reads.
func (c *bufCache) prefetch(want map[int64]int) error {
	type ext struct {
		daddr int64
		bbs   int
	}
	var list []ext
	for d, n := range want {
		if c.bufs[d] == nil && c.check(d, n) == nil {
			list = append(list, ext{d, n})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].daddr < list[j].daddr })
	const gap = 64          // read through holes up to 32 KiB
	const maxRun = 16 << 11 // 16 MiB per read
	for i := 0; i < len(list); {
		start, end := list[i].daddr, list[i].daddr+int64(list[i].bbs)
		j := i + 1
		for j < len(list) && list[j].daddr <= end+gap && max(end, list[j].daddr+int64(list[j].bbs))-start <= maxRun {
			end = max(end, list[j].daddr+int64(list[j].bbs))
			j++
		}
		run := ondisk.AlignedBuffer(int(end-start)*ondisk.BBSize, 4096)
		c.reads++
		if _, err := c.dev.ReadAt(run, start<<ondisk.BBShift); err != nil {
			return fmt.Errorf("read daddr %d: %w", start, err)
		}
		for _, e := range list[i:j] {
			if c.bufs[e.daddr] != nil {
				continue
			}
			off := (e.daddr - start) * ondisk.BBSize
			data := make([]byte, e.bbs*ondisk.BBSize)
			copy(data, run[off:])
			c.bufs[e.daddr] = &rbuf{daddr: e.daddr, data: data}
		}
		i = j
	}
	return nil
}

// Magic numbers of the v5 metadata recovery recognises.
const (
	magicAGF     = ondisk.AGFMagic
	magicAGI     = ondisk.AGIMagic
	magicAGFL    = ondisk.AGFLMagic
	magicSB      = 0x58465342 // XFSB
	magicDir3Blk = 0x58444233 // XDB3
	magicDir3Dat = 0x58444433 // XDD3
	magicDir3Fre = 0x58444633 // XDF3
	magicSymlink = 0x58534c4d // XSLM
	magicAttrRmt = 0x5841524d // XARM
	magicDinode  = ondisk.DinodeMagic
	magicDquot   = 0x4451 // "DQ"

	magicDir3Leaf1 = 0x3df1
	magicDir3LeafN = 0x3dff
	magicDA3Node   = 0x3ebe
	magicAttr3Leaf = 0x3bee
)

// bufKind is where a metadata block keeps its self-describing fields;
// offsets are -1 where the block has none.
type bufKind struct {
	name     string
	lsnOff   int
	crcOff   int
	uuidOff  int
	blknoOff int
	short    bool // short-form btree block
	long     bool // long-form btree block
	dino     bool // inode cluster: per-inode CRCs and LSNs only
}

var (
	kindShort   = bufKind{name: "btree", lsnOff: 24, crcOff: ondisk.ShortCRCOff, uuidOff: 32, blknoOff: 16, short: true}
	kindLong    = bufKind{name: "bmbt", lsnOff: 32, crcOff: ondisk.LongCRCOff, uuidOff: 40, blknoOff: 24, long: true}
	kindAGF     = bufKind{name: "AGF", lsnOff: ondisk.AGFLSNOff, crcOff: ondisk.AGFCRCOff, uuidOff: 64, blknoOff: -1}
	kindAGI     = bufKind{name: "AGI", lsnOff: ondisk.AGILSNOff, crcOff: ondisk.AGICRCOff, uuidOff: 296, blknoOff: -1}
	kindAGFL    = bufKind{name: "AGFL", lsnOff: ondisk.AGFLLSNOff, crcOff: ondisk.AGFLCRCOff, uuidOff: 8, blknoOff: -1}
	kindSB      = bufKind{name: "superblock", lsnOff: 240, crcOff: 224, uuidOff: 248, blknoOff: -1}
	kindDir3    = bufKind{name: "directory block", lsnOff: 16, crcOff: 4, uuidOff: 24, blknoOff: 8}
	kindDA3     = bufKind{name: "dabtree block", lsnOff: 24, crcOff: 12, uuidOff: 32, blknoOff: 16}
	kindSymlink = bufKind{name: "symlink block", lsnOff: 48, crcOff: ondisk.SymlinkCRCOff, uuidOff: 16, blknoOff: 40}
	kindDino    = bufKind{name: "inode cluster", lsnOff: -1, crcOff: -1, uuidOff: -1, blknoOff: -1, dino: true}
)

// kindOf classifies a v5 metadata block by its magic number.
func kindOf(b []byte) (bufKind, bool) {
	if len(b) < 512 {
		return bufKind{}, false
	}
	be := binary.BigEndian
	switch be.Uint32(b) {
	case ondisk.BnoMagic, ondisk.CntMagic, ondisk.InoMagic, ondisk.FinoMagic, ondisk.RmapMagic, ondisk.RefcMagic:
		return kindShort, true
	case ondisk.BmapMagic:
		return kindLong, true
	case magicAGF:
		return kindAGF, true
	case magicAGI:
		return kindAGI, true
	case magicAGFL:
		return kindAGFL, true
	case magicSB:
		return kindSB, true
	case magicDir3Blk, magicDir3Dat, magicDir3Fre:
		return kindDir3, true
	case magicSymlink:
		return kindSymlink, true
	}
	switch be.Uint16(b[8:]) {
	case magicDir3Leaf1, magicDir3LeafN, magicDA3Node, magicAttr3Leaf:
		return kindDA3, true
	}
	if be.Uint16(b) == magicDinode {
		return kindDino, true
	}
	return bufKind{}, false
}

// bufLSN is xlog_recover_get_buf_lsn: the LSN of the block's current
// contents by its magic number, or -1 (replay it) when the block is of an
// unknown kind, of another file system (uuid), or a kind whose LSN recovery
// does not trust (inode and dquot buffers, remote attribute values, and,
// as the kernel has it, finobt and attr leaf blocks).
func bufLSN(b []byte, metaUUID, sbUUID ondisk.UUID) int64 {
	be := binary.BigEndian
	var lsn int64 = -1
	var uuid []byte
	switch be.Uint32(b) {
	case ondisk.BnoMagic, ondisk.CntMagic, ondisk.RmapMagic, ondisk.RefcMagic, ondisk.InoMagic:
		lsn, uuid = int64(be.Uint64(b[24:])), b[32:48]
	case ondisk.BmapMagic:
		lsn, uuid = int64(be.Uint64(b[32:])), b[40:56]
	case magicAGF:
		lsn, uuid = int64(be.Uint64(b[ondisk.AGFLSNOff:])), b[64:80]
	case magicAGFL:
		lsn, uuid = int64(be.Uint64(b[ondisk.AGFLLSNOff:])), b[8:24]
	case magicAGI:
		lsn, uuid = int64(be.Uint64(b[ondisk.AGILSNOff:])), b[296:312]
	case magicSymlink:
		lsn, uuid = int64(be.Uint64(b[48:])), b[16:32]
	case magicDir3Blk, magicDir3Dat, magicDir3Fre:
		lsn, uuid = int64(be.Uint64(b[16:])), b[24:40]
	case magicAttrRmt:
		return -1
	case magicSB:
		// The superblock's own uuid field, or its metadata uuid when the
		// feature is set: the one equal to the mount's metadata uuid.
		lsn, uuid = int64(be.Uint64(b[240:])), b[32:48]
		if be.Uint32(b[216:])&ondisk.IncompatMetaUUID != 0 {
			uuid = b[248:264]
		}
	}
	if lsn != -1 {
		if !bytes.Equal(uuid, metaUUID[:]) {
			return -1
		}
		return lsn
	}
	switch be.Uint16(b[8:]) {
	case magicDir3Leaf1, magicDir3LeafN, magicDA3Node:
		lsn, uuid = int64(be.Uint64(b[24:])), b[32:48]
		if !bytes.Equal(uuid, sbUUID[:]) {
			return -1
		}
		return lsn
	}
	return -1
}

// bufTypeMatches is xlog_recover_validate_buf_type's check that the
// replayed contents are what the item's type says (v5 magics only).
func bufTypeMatches(t BufType, b []byte) bool {
	be := binary.BigEndian
	m32, m16, mda := be.Uint32(b), be.Uint16(b), be.Uint16(b[8:])
	switch t {
	case BufBtree:
		switch m32 {
		case ondisk.BnoMagic, ondisk.CntMagic, ondisk.InoMagic, ondisk.FinoMagic, ondisk.BmapMagic, ondisk.RmapMagic, ondisk.RefcMagic:
			return true
		}
		return false
	case BufAGF:
		return m32 == magicAGF
	case BufAGFL:
		return m32 == magicAGFL
	case BufAGI:
		return m32 == magicAGI
	case BufDino:
		return m16 == magicDinode
	case BufSymlink:
		return m32 == magicSymlink
	case BufDirBlock:
		return m32 == magicDir3Blk
	case BufDirData:
		return m32 == magicDir3Dat
	case BufDirFree:
		return m32 == magicDir3Fre
	case BufDirLeaf1:
		return mda == magicDir3Leaf1
	case BufDirLeafN:
		return mda == magicDir3LeafN
	case BufDANode:
		return mda == magicDA3Node
	case BufAttrLeaf:
		return mda == magicAttr3Leaf
	case BufSB:
		return m32 == magicSB
	}
	return false
}

// bufTypeNames names the XFS_BLFT_* buffer types.
var bufTypeNames = map[BufType]string{
	BufUnknown: "unknown", 1: "user dquot", 2: "project dquot", 3: "group dquot", BufBtree: "btree",
	BufAGF: "AGF", BufAGFL: "AGFL", BufAGI: "AGI", BufDino: "inode cluster", BufSymlink: "symlink",
	BufDirBlock: "dir block", BufDirData: "dir data", BufDirFree: "dir free", BufDirLeaf1: "dir leaf1",
	BufDirLeafN: "dir leafn", BufDANode: "da node", BufAttrLeaf: "attr leaf", BufAttrRmt: "attr remote",
	BufSB: "superblock", BufRTBitmap: "rt bitmap", BufRTSummary: "rt summary",
}

// bufTypeName names a buffer type as the kernel's XFS_BLFT_* does.
func bufTypeName(t BufType) string {
	if n, ok := bufTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", uint16(t))
}

// bufTypeSupported reports whether recovery replays buffers of type t;
// the reason names what is not.
func bufTypeSupported(f *BufLogFormat) (string, bool) {
	if f.Flags&(BlfUDquot|BlfPDquot|BlfGDquot) != 0 {
		return "a quota buffer", false
	}
	switch t := f.Type(); t {
	case BufBtree, BufAGF, BufAGFL, BufAGI, BufDino, BufDirBlock, BufDirData, BufDirFree,
		BufDirLeaf1, BufDirLeafN, BufDANode, BufAttrLeaf, BufSB:
		return "", true
	case BufSymlink:
		return "", true
	default:
		return "a buffer of type " + bufTypeName(t), false
	}
}

// nextBit and contigBits walk a dirty map as xfs_next_bit and
// xfs_contig_bits do.
func nextBit(m []uint32, start int) int {
	for i := start; i < 32*len(m); i++ {
		if m[i/32]&(1<<(i%32)) != 0 {
			return i
		}
	}
	return -1
}

func contigBits(m []uint32, start int) int {
	n := 0
	for i := start; i < 32*len(m) && m[i/32]&(1<<(i%32)) != 0; i++ {
		n++
	}
	return n
}

// replayRegions is xlog_recover_do_reg_buffer: each logged region lands at
// the chunk offset of its dirty run; a run logged in several regions (split
// at a page boundary) takes as many.
func replayRegions(f *BufLogFormat, regions [][]byte, buf []byte) error {
	i := 1
	for bit := nextBit(f.DataMap, 0); bit >= 0; bit = nextBit(f.DataMap, bit) {
		n := contigBits(f.DataMap, bit)
		if i >= len(regions) {
			return ondisk.Corruptf("buffer item at daddr %d: dirty chunk %d has no region", f.Blkno, bit)
		}
		r := regions[i]
		if len(r) < n*BufChunkSize {
			n = len(r) / BufChunkSize
		}
		off := bit * BufChunkSize
		if off+n*BufChunkSize > len(buf) {
			return ondisk.Corruptf("buffer item at daddr %d: chunks %d-%d past the %d-byte buffer", f.Blkno, bit, bit+n-1, len(buf))
		}
		copy(buf[off:], r[:n*BufChunkSize])
		i++
		bit += n
	}
	return nil
}

// replayInodeBuffer is xlog_recover_do_inode_buffer: of an inode buffer
// logged for unlinked-list changes only the di_next_unlinked fields are
// replayed (the rest of each inode comes from inode items), and each
// changed inode's CRC is recomputed.
func replayInodeBuffer(f *BufLogFormat, regions [][]byte, buf []byte, isize int) error {
	const nextOff = 96
	bit, nbits, regOff, regBytes, idx := 0, 0, 0, 0, 0
	for i := 0; (i+1)*isize <= len(buf); i++ {
		nu := i*isize + nextOff
		for nu >= regOff+regBytes {
			bit += nbits
			bit = nextBit(f.DataMap, bit)
			if bit < 0 {
				return nil
			}
			nbits = contigBits(f.DataMap, bit)
			regOff, regBytes = bit*BufChunkSize, nbits*BufChunkSize
			idx++
		}
		if nu < regOff {
			continue
		}
		if idx >= len(regions) || nu-regOff+4 > len(regions[idx]) {
			return ondisk.Corruptf("inode buffer item at daddr %d: next_unlinked of inode %d not in its region", f.Blkno, i)
		}
		v := regions[idx][nu-regOff : nu-regOff+4]
		if binary.BigEndian.Uint32(v) == 0 {
			return ondisk.Corruptf("inode buffer item at daddr %d: next_unlinked 0 for inode %d", f.Blkno, i)
		}
		copy(buf[nu:], v)
		ondisk.StampCRC(buf[i*isize:(i+1)*isize], ondisk.DinodeCRCOff)
	}
	return nil
}

// stamp is the write verifier's update: the LSN the buffer carries, if one
// is pending, and the CRC. Inode clusters have neither at buffer level.
func (b *rbuf) stamp() {
	k, ok := kindOf(b.data)
	if !ok || k.dino {
		b.pending = 0
		return
	}
	if b.pending != 0 {
		binary.BigEndian.PutUint64(b.data[k.lsnOff:], uint64(b.pending))
		b.pending = 0
	}
	ondisk.StampCRC(b.data, k.crcOff)
}

// drain stamps the buffers replayed since the last drain, as writing them
// out at a change of recovery LSN does in the kernel.
func (c *bufCache) drain() {
	for _, b := range c.pending {
		b.stamp()
	}
	c.pending = c.pending[:0]
}

// verifyForWrite checks a buffer the way the kernel's write verifiers
// would before it goes to disk: known kind, self address, uuid, CRC, and
// the full structure checks ondisk has for AG headers, the superblock and
// btree blocks. Nothing of unknown kind is written.
func verifyForWrite(b *rbuf, g *ondisk.Geometry, sb *ondisk.Superblock) error {
	k, ok := kindOf(b.data)
	if !ok {
		return ondisk.Corruptf("buffer at daddr %d: unknown contents (magic 0x%08x); xfsimg does not write it", b.daddr, binary.BigEndian.Uint32(b.data))
	}
	where := fmt.Sprintf("%s at daddr %d", k.name, b.daddr)
	be := binary.BigEndian
	agBBs := int64(g.AGBlocks) << (g.BlockLog - ondisk.BBShift)
	agno := uint32(b.daddr / agBBs)
	if k.dino {
		for off := 0; off+g.InodeSize <= len(b.data); off += g.InodeSize {
			if be.Uint16(b.data[off:]) != magicDinode || b.data[off+4] != 3 {
				return ondisk.Corruptf("%s: inode %d: magic 0x%04x version %d", where, off/g.InodeSize, be.Uint16(b.data[off:]), b.data[off+4])
			}
		}
		return nil
	}
	if !ondisk.VerifyCRC(b.data, k.crcOff) {
		return ondisk.Corruptf("%s: bad CRC", where)
	}
	if k.blknoOff >= 0 && int64(be.Uint64(b.data[k.blknoOff:])) != b.daddr {
		return ondisk.Corruptf("%s: says it is at daddr %d", where, be.Uint64(b.data[k.blknoOff:]))
	}
	if k.uuidOff >= 0 && k != kindSB && !bytes.Equal(b.data[k.uuidOff:k.uuidOff+16], g.MetaUUID[:]) {
		return ondisk.Corruptf("%s: belongs to another file system", where)
	}
	switch k {
	case kindSB:
		s, err := ondisk.DecodeSuperblock(b.data)
		if err == nil {
			err = s.Verify()
		}
		if err == nil && (s.UUID != sb.UUID || s.DBlocks != sb.DBlocks || s.AGCount != sb.AGCount) {
			err = ondisk.Corruptf("geometry differs from the primary superblock")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	case kindAGF, kindAGI, kindAGFL:
		hdr := map[bufKind]int64{kindAGF: g.AGFDaddr(agno), kindAGI: g.AGIDaddr(agno), kindAGFL: g.AGFLDaddr(agno)}[k]
		if b.daddr != hdr {
			return ondisk.Corruptf("%s: not where AG %d keeps its %s", where, agno, k.name)
		}
		var err error
		switch k {
		case kindAGF:
			var a *ondisk.AGF
			if a, err = ondisk.DecodeAGF(b.data); err == nil {
				err = a.Verify(g, agno)
			}
		case kindAGI:
			var a *ondisk.AGI
			if a, err = ondisk.DecodeAGI(b.data); err == nil {
				err = a.Verify(g, agno, sb)
			}
		case kindAGFL:
			var a *ondisk.AGFL
			if a, err = ondisk.DecodeAGFL(b.data); err == nil {
				err = a.Verify(g, agno)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	case kindShort, kindLong:
		h, err := ondisk.DecodeBtreeBlock(b.data, k.long)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		owner := uint64(agno)
		if k.long {
			owner = h.Owner
		}
		if err := h.Verify(b.data, ondisk.BlockCheck{Magic: h.Magic, Daddr: b.daddr, Owner: owner, UUID: g.MetaUUID, Level: -1, Geo: g}); err != nil {
			return err
		}
	}
	return nil
}
