package ondisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// Directory block magics and the layout of the directory address space.
// A directory's data fork is split in three 32 GiB spaces: data blocks from
// byte 0, leaf (and da node) blocks from DirLeafOffset, free index blocks
// from DirFreeOffset.
const (
	Dir3BlockMagic = 0x58444233 // XDB3: single-block directory (data + leaf)
	Dir3DataMagic  = 0x58444433 // XDD3: data block of a leaf or node directory
	Dir3FreeMagic  = 0x58444633 // XDF3: free index block

	DirLeafOffset = 1 << 35 // XFS_DIR2_LEAF_OFFSET
	DirFreeOffset = 2 << 35 // XFS_DIR2_FREE_OFFSET
)

// Data block layout.
const (
	Dir3BlkHdrSize     = 48 // magic, crc, blkno, lsn, uuid, owner
	Dir3BlkHdrCRCOff   = 4
	Dir3DataHdrSize    = 64 // blk hdr, bestfree[3], pad: the first entry's offset
	DirDataAlign       = 8  // entries and unused regions are 8-byte aligned
	DirDataFreeTag     = 0xffff
	DirBlockTailSize   = 8      // count, stale at the end of a single-block directory
	DirLeafEntrySize   = 8      // hashval, address
	DirNullDataOff     = 0xffff // NULLDATAOFF: a bests slot for a hole
	DirNullDataptr     = 0      // address of a stale leaf entry
	DirDataFDCount     = 3      // bestfree slots
	DirDataDotOffset   = Dir3DataHdrSize
	DirDataDotDotOff   = DirDataDotOffset + 16 // "." is 16 bytes with or without ftype
	DirDataFirstOffset = DirDataDotDotOff + 16 // ".." likewise
	dirDataUnusedMin   = 8                     // freetag, length, tag, rounded up
	dirDataBlockMax    = 1 << 16               // offsets and lengths are 16-bit
)

// DirDataEntSize is the size of a data entry with a name of namelen bytes:
// inumber, namelen, name, ftype (when the feature is on), tag, rounded up
// to 8 bytes.
func DirDataEntSize(namelen int, hasFType bool) int {
	n := 8 + 1 + namelen + 2
	if hasFType {
		n++
	}
	return (n + DirDataAlign - 1) &^ (DirDataAlign - 1)
}

// DirDataptr is the address of byte off of directory block db: the leaf
// entry address and the readdir cookie (byte offset in the data space / 8).
func DirDataptr(dirBlkSize int, db uint64, off int) uint32 {
	return uint32((db*uint64(dirBlkSize) + uint64(off)) >> 3)
}

// DirDataptrSplit splits a data pointer into its directory block and byte
// offset within that block.
func DirDataptrSplit(dirBlkSize int, ptr uint32) (db uint64, off int) {
	b := uint64(ptr) << 3
	return b / uint64(dirBlkSize), int(b % uint64(dirBlkSize))
}

// Dir3BlkHdr is the v5 header at the start of data, single-block and free
// index blocks (xfs_dir3_blk_hdr).
type Dir3BlkHdr struct {
	Magic uint32
	CRC   uint32
	Blkno uint64 // disk address of the block's first sector
	LSN   uint64
	UUID  UUID
	Owner uint64

	crcOK bool // whether the CRC matched the block when decoded or encoded
}

// CRCOK reports whether the CRC matched the block when it was decoded.
func (h *Dir3BlkHdr) CRCOK() bool { return h.crcOK }

func decodeDir3BlkHdr(buf []byte) Dir3BlkHdr {
	be := binary.BigEndian
	h := Dir3BlkHdr{
		Magic: be.Uint32(buf[0:]),
		CRC:   StoredCRC(buf, Dir3BlkHdrCRCOff),
		Blkno: be.Uint64(buf[8:]),
		LSN:   be.Uint64(buf[16:]),
		Owner: be.Uint64(buf[40:]),
		crcOK: VerifyCRC(buf, Dir3BlkHdrCRCOff),
	}
	copy(h.UUID[:], buf[24:40])
	return h
}

// encode writes everything but the CRC, which is stamped last over the
// whole block.
func (h *Dir3BlkHdr) encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint64(buf[8:], h.Blkno)
	be.PutUint64(buf[16:], h.LSN)
	copy(buf[24:40], h.UUID[:])
	be.PutUint64(buf[40:], h.Owner)
}

// verify checks the self-describing fields every v5 directory block
// carries: the CRC over the whole block, the file system UUID, the block's
// own disk address and its owning inode.
func (h *Dir3BlkHdr) verify(what string, buf []byte, g *Geometry, ino uint64, daddr int64) error {
	return selfDesc{Dir3BlkHdrCRCOff, h.UUID, h.Blkno, h.Owner}.verify(what, buf, g, daddr, ino)
}

// DirBestFree is one bestfree slot: a free region the block header
// advertises so that inserts find room without walking the block.
type DirBestFree struct {
	Offset, Length uint16
}

// DirDataEntry is a live entry in a data block. Off is its byte offset in
// the block, Tag the stored copy of it.
type DirDataEntry struct {
	Ino   uint64
	Name  []byte
	FType uint8
	Tag   uint16
	Off   int
}

// DirDataUnused is a free region in a data block: freetag 0xffff, length,
// and a tag holding its own offset in its last two bytes.
type DirDataUnused struct {
	Off, Length int
}

// DirDataBlock is a decoded data block (XDD3) or single-block directory
// (XDB3). Entries and Unused are in block order and together tile the data
// area. Leaf and Stale only exist in the single-block form, where the hash
// index lives at the end of the block, before the tail.
type DirDataBlock struct {
	Hdr      Dir3BlkHdr
	BestFree [DirDataFDCount]DirBestFree
	Entries  []DirDataEntry
	Unused   []DirDataUnused
	Leaf     []DirLeafEntry
	Stale    uint32
}

// IsBlock reports the single-block directory form.
func (b *DirDataBlock) IsBlock() bool { return b.Hdr.Magic == Dir3BlockMagic }

// DataEnd is the offset where the data area ends: the block end, or the
// start of the leaf entries in the single-block form.
func (b *DirDataBlock) DataEnd(blkSize int) int {
	if b.IsBlock() {
		return blkSize - DirBlockTailSize - len(b.Leaf)*DirLeafEntrySize
	}
	return blkSize
}

// EntryAt returns the entry that starts at byte off, if any.
func (b *DirDataBlock) EntryAt(off int) (*DirDataEntry, bool) {
	lo, hi := 0, len(b.Entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.Entries[m].Off < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(b.Entries) && b.Entries[lo].Off == off {
		return &b.Entries[lo], true
	}
	return nil, false
}

// DecodeDirDataBlock decodes a whole directory block (one dir block, which
// may span several file system blocks). It walks the entries and unused
// regions with bounds checks and requires every tag to hold its own
// offset; the cross-checks between them are Verify's.
func DecodeDirDataBlock(buf []byte, hasFType bool) (*DirDataBlock, error) {
	n := len(buf)
	if n < 512 || n > dirDataBlockMax || n&(n-1) != 0 {
		return nil, Corruptf("dir data block: size %d is not a directory block size", n)
	}
	b := &DirDataBlock{Hdr: decodeDir3BlkHdr(buf)}
	if b.Hdr.Magic != Dir3BlockMagic && b.Hdr.Magic != Dir3DataMagic {
		return nil, Corruptf("dir data block: bad magic 0x%08x, want 0x%08x or 0x%08x", b.Hdr.Magic, Dir3DataMagic, Dir3BlockMagic)
	}
	what := b.what()
	be := binary.BigEndian
	for i := range b.BestFree {
		b.BestFree[i] = DirBestFree{be.Uint16(buf[Dir3BlkHdrSize+4*i:]), be.Uint16(buf[Dir3BlkHdrSize+4*i+2:])}
	}
	end := n
	if b.IsBlock() {
		count := be.Uint32(buf[n-DirBlockTailSize:])
		b.Stale = be.Uint32(buf[n-4:])
		maxLeaf := (n - DirBlockTailSize - Dir3DataHdrSize) / DirLeafEntrySize
		if count > uint32(maxLeaf) {
			return nil, Corruptf("%s: leaf count %d, at most %d fit", what, count, maxLeaf)
		}
		end = n - DirBlockTailSize - int(count)*DirLeafEntrySize
		b.Leaf = make([]DirLeafEntry, count)
		for i := range b.Leaf {
			b.Leaf[i] = DirLeafEntry{be.Uint32(buf[end+8*i:]), be.Uint32(buf[end+8*i+4:])}
		}
	}
	for off := Dir3DataHdrSize; off < end; {
		if end-off < dirDataUnusedMin {
			return nil, Corruptf("%s: %d bytes left at offset %d, too few for an entry", what, end-off, off)
		}
		if be.Uint16(buf[off:]) == DirDataFreeTag {
			length := int(be.Uint16(buf[off+2:]))
			if length < dirDataUnusedMin || length%DirDataAlign != 0 || off+length > end {
				return nil, Corruptf("%s: unused region at offset %d has bad length %d (data ends at %d)", what, off, length, end)
			}
			if tag := int(be.Uint16(buf[off+length-2:])); tag != off {
				return nil, Corruptf("%s: unused region at offset %d has tag %d", what, off, tag)
			}
			b.Unused = append(b.Unused, DirDataUnused{Off: off, Length: length})
			off += length
			continue
		}
		if end-off < DirDataEntSize(1, hasFType) {
			return nil, Corruptf("%s: %d bytes left at offset %d, too few for an entry", what, end-off, off)
		}
		namelen := int(buf[off+8])
		if namelen == 0 {
			return nil, Corruptf("%s: entry at offset %d has a zero name length", what, off)
		}
		size := DirDataEntSize(namelen, hasFType)
		if off+size > end {
			return nil, Corruptf("%s: entry at offset %d (%d bytes) runs past the data end %d", what, off, size, end)
		}
		e := DirDataEntry{
			Ino:  be.Uint64(buf[off:]),
			Name: bytes.Clone(buf[off+9 : off+9+namelen]),
			Tag:  be.Uint16(buf[off+size-2:]),
			Off:  off,
		}
		if hasFType {
			e.FType = buf[off+9+namelen]
		}
		if int(e.Tag) != off {
			return nil, Corruptf("%s: entry %q at offset %d has tag %d", what, e.Name, off, e.Tag)
		}
		b.Entries = append(b.Entries, e)
		off += size
	}
	return b, nil
}

func (b *DirDataBlock) what() string {
	if b.IsBlock() {
		return "dir block"
	}
	return "dir data block"
}

// Verify checks the block the way the kernel's verifier and
// __xfs_dir3_data_check do: header identity, entries that name valid
// inodes with valid types and names, no two adjacent unused regions, a
// bestfree table that lists exactly the largest unused regions in
// decreasing length, and for the single-block form a sorted hash index
// whose live entries are exactly the block's entries with their hashes.
func (b *DirDataBlock) Verify(buf []byte, g *Geometry, ino uint64, daddr int64) error {
	what := b.what()
	if b.Hdr.Magic != Dir3BlockMagic && b.Hdr.Magic != Dir3DataMagic {
		return Corruptf("%s at daddr %d: bad magic 0x%08x", what, daddr, b.Hdr.Magic)
	}
	if len(buf) != g.DirBlkSize {
		return Corruptf("%s at daddr %d: %d bytes, directory blocks are %d", what, daddr, len(buf), g.DirBlkSize)
	}
	if err := b.Hdr.verify(what, buf, g, ino, daddr); err != nil {
		return err
	}
	what = fmt.Sprintf("%s at daddr %d", what, daddr)
	end := b.DataEnd(len(buf))
	if maxLeaf := (len(buf) - DirBlockTailSize - Dir3DataHdrSize) / DirLeafEntrySize; b.IsBlock() && len(b.Leaf) >= maxLeaf {
		return Corruptf("%s: %d leaf entries leave no room for data (at most %d)", what, len(b.Leaf), maxLeaf-1)
	}
	for i, e := range b.Entries {
		if err := dirCheckName(e.Name); err != nil {
			return fmt.Errorf("%s: entry at offset %d: %w", what, e.Off, err)
		}
		if !g.ValidIno(e.Ino) {
			return Corruptf("%s: entry %q at offset %d: inode %d is not a valid inode number", what, e.Name, e.Off, e.Ino)
		}
		if e.FType >= dir2FTMax || (!g.HasFType && e.FType != 0) {
			return Corruptf("%s: entry %q at offset %d: bad file type %d", what, e.Name, e.Off, e.FType)
		}
		if int(e.Tag) != e.Off || e.Off < Dir3DataHdrSize || e.Off+DirDataEntSize(len(e.Name), g.HasFType) > end {
			return Corruptf("%s: entry %d %q: offset %d tag %d out of place", what, i, e.Name, e.Off, e.Tag)
		}
	}
	if err := b.checkTiling(end, g.HasFType); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := b.checkBestFree(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if b.IsBlock() {
		if err := b.checkBlockLeaf(g); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// checkTiling makes sure entries and unused regions cover the data area
// exactly once, in order, with no two unused regions side by side (the
// kernel always merges them).
func (b *DirDataBlock) checkTiling(end int, hasFType bool) error {
	off, ei, ui := Dir3DataHdrSize, 0, 0
	lastFree := false
	for off < end {
		switch {
		case ei < len(b.Entries) && b.Entries[ei].Off == off:
			off += DirDataEntSize(len(b.Entries[ei].Name), hasFType)
			ei++
			lastFree = false
		case ui < len(b.Unused) && b.Unused[ui].Off == off:
			if lastFree {
				return Corruptf("unused regions at offset %d and before it are not merged", off)
			}
			if b.Unused[ui].Length < dirDataUnusedMin || b.Unused[ui].Length%DirDataAlign != 0 {
				return Corruptf("unused region at offset %d has bad length %d", off, b.Unused[ui].Length)
			}
			off += b.Unused[ui].Length
			ui++
			lastFree = true
		default:
			return Corruptf("nothing starts at offset %d", off)
		}
	}
	if off != end || ei != len(b.Entries) || ui != len(b.Unused) {
		return Corruptf("entries and unused regions end at offset %d, data area ends at %d", off, end)
	}
	return nil
}

// checkBestFree: empty slots are all-zero and come last, lengths do not
// increase, every used slot names an actual unused region exactly, no slot
// is named twice, and no unused region left out is longer than the last
// slot (or exists at all while a slot is empty).
func (b *DirDataBlock) checkBestFree() error {
	bf := b.BestFree
	seenZero := false
	for i, f := range bf {
		if f.Length == 0 {
			if f.Offset != 0 {
				return Corruptf("bestfree[%d] has offset %d but length 0", i, f.Offset)
			}
			seenZero = true
			continue
		}
		if seenZero {
			return Corruptf("bestfree[%d] is used after an empty slot", i)
		}
		if i > 0 && bf[i-1].Length < f.Length {
			return Corruptf("bestfree[%d] length %d is longer than bestfree[%d] length %d", i, f.Length, i-1, bf[i-1].Length)
		}
		for j := 0; j < i; j++ {
			if bf[j].Offset == f.Offset {
				return Corruptf("bestfree[%d] and bestfree[%d] both name offset %d", j, i, f.Offset)
			}
		}
	}
	var matched [DirDataFDCount]bool
	smallest := bf[DirDataFDCount-1].Length
	for _, u := range b.Unused {
		in := false
		for i, f := range bf {
			if f.Length != 0 && int(f.Offset) == u.Off {
				if int(f.Length) != u.Length {
					return Corruptf("bestfree[%d] says offset %d has length %d, the region is %d", i, f.Offset, f.Length, u.Length)
				}
				matched[i], in = true, true
			}
		}
		if !in && u.Length > int(smallest) {
			return Corruptf("unused region at offset %d (length %d) is missing from the bestfree table (smallest slot %d)", u.Off, u.Length, smallest)
		}
	}
	for i, f := range bf {
		if f.Length != 0 && !matched[i] {
			return Corruptf("bestfree[%d] (offset %d, length %d) names no unused region", i, f.Offset, f.Length)
		}
	}
	return nil
}

// checkBlockLeaf checks the single-block form's hash index.
func (b *DirDataBlock) checkBlockLeaf(g *Geometry) error {
	stale := uint32(0)
	for i, l := range b.Leaf {
		if l.Address == DirNullDataptr {
			stale++
		}
		if i > 0 && l.Hash < b.Leaf[i-1].Hash {
			return Corruptf("leaf entry %d hash 0x%08x sorts before entry %d hash 0x%08x", i, l.Hash, i-1, b.Leaf[i-1].Hash)
		}
	}
	if stale != b.Stale {
		return Corruptf("tail says %d stale leaf entries, found %d", b.Stale, stale)
	}
	if live := len(b.Leaf) - int(stale); live != len(b.Entries) {
		return Corruptf("%d live leaf entries for %d data entries", live, len(b.Entries))
	}
	for _, l := range b.Leaf {
		if l.Address == DirNullDataptr {
			continue
		}
		db, off := DirDataptrSplit(g.DirBlkSize, l.Address)
		e, ok := b.EntryAt(off)
		if db != 0 || !ok {
			return Corruptf("leaf entry address 0x%x (hash 0x%08x) points at no entry", l.Address, l.Hash)
		}
		if h := DAHashName(e.Name); h != l.Hash {
			return Corruptf("leaf entry hash 0x%08x for %q, the name hashes to 0x%08x", l.Hash, e.Name, h)
		}
	}
	// Live addresses are as many as entries and each names an entry; make
	// sure no entry is named twice, so each entry has its own.
	seen := make(map[uint32]bool, len(b.Entries))
	for _, l := range b.Leaf {
		if l.Address != DirNullDataptr {
			if seen[l.Address] {
				return Corruptf("two leaf entries for address 0x%x", l.Address)
			}
			seen[l.Address] = true
		}
	}
	return nil
}

// Encode writes the block into buf (the whole directory block) and stamps
// the CRC. Tags are written from Off, the leaf count from len(Leaf), the
// header pad as zero. Bytes the format leaves undefined (entry padding
// between ftype and tag, the inside of unused regions) are left as they
// are in buf, so a caller that wants them zero zeroes buf first.
func (b *DirDataBlock) Encode(buf []byte, hasFType bool) error {
	n := len(buf)
	if n < 512 || n > dirDataBlockMax || n&(n-1) != 0 {
		return fmt.Errorf("dir data block: encode into %d bytes", n)
	}
	if b.Hdr.Magic != Dir3BlockMagic && b.Hdr.Magic != Dir3DataMagic {
		return fmt.Errorf("dir data block: encode with magic 0x%08x", b.Hdr.Magic)
	}
	if !b.IsBlock() && len(b.Leaf) != 0 {
		return fmt.Errorf("dir data block: %d leaf entries in a data block", len(b.Leaf))
	}
	end := b.DataEnd(n)
	if end < Dir3DataHdrSize {
		return fmt.Errorf("dir block: %d leaf entries do not fit", len(b.Leaf))
	}
	for _, e := range b.Entries {
		if len(e.Name) == 0 || len(e.Name) > DirNameMax {
			return fmt.Errorf("dir data block: entry at %d: name length %d", e.Off, len(e.Name))
		}
		if e.Off < Dir3DataHdrSize || e.Off%DirDataAlign != 0 || e.Off+DirDataEntSize(len(e.Name), hasFType) > end {
			return fmt.Errorf("dir data block: entry %q at offset %d does not fit the data area (ends at %d)", e.Name, e.Off, end)
		}
	}
	for _, u := range b.Unused {
		if u.Off < Dir3DataHdrSize || u.Off%DirDataAlign != 0 || u.Length < dirDataUnusedMin || u.Length%DirDataAlign != 0 || u.Off+u.Length > end {
			return fmt.Errorf("dir data block: unused region %d+%d does not fit the data area (ends at %d)", u.Off, u.Length, end)
		}
	}
	be := binary.BigEndian
	b.Hdr.encode(buf)
	for i, f := range b.BestFree {
		be.PutUint16(buf[Dir3BlkHdrSize+4*i:], f.Offset)
		be.PutUint16(buf[Dir3BlkHdrSize+4*i+2:], f.Length)
	}
	be.PutUint32(buf[Dir3DataHdrSize-4:], 0)
	for i := range b.Entries {
		e := &b.Entries[i]
		size := DirDataEntSize(len(e.Name), hasFType)
		be.PutUint64(buf[e.Off:], e.Ino)
		buf[e.Off+8] = byte(len(e.Name))
		copy(buf[e.Off+9:], e.Name)
		if hasFType {
			buf[e.Off+9+len(e.Name)] = e.FType
		}
		e.Tag = uint16(e.Off)
		be.PutUint16(buf[e.Off+size-2:], e.Tag)
	}
	for _, u := range b.Unused {
		be.PutUint16(buf[u.Off:], DirDataFreeTag)
		be.PutUint16(buf[u.Off+2:], uint16(u.Length))
		be.PutUint16(buf[u.Off+u.Length-2:], uint16(u.Off))
	}
	if b.IsBlock() {
		for i, l := range b.Leaf {
			be.PutUint32(buf[end+8*i:], l.Hash)
			be.PutUint32(buf[end+8*i+4:], l.Address)
		}
		be.PutUint32(buf[n-8:], uint32(len(b.Leaf)))
		be.PutUint32(buf[n-4:], b.Stale)
	}
	StampCRC(buf, Dir3BlkHdrCRCOff)
	b.Hdr.CRC = StoredCRC(buf, Dir3BlkHdrCRCOff)
	b.Hdr.crcOK = true
	return nil
}

// fields renders the header as xfs_db does under prefix (e.g. "bhdr.hdr").
func (h *Dir3BlkHdr) fields(prefix string) Fields {
	return Fields{
		hexField(prefix+".magic", uint64(h.Magic)),
		crcField(prefix+".crc", h.CRC, h.crcOK),
		decField(prefix+".bno", h.Blkno),
		hexField(prefix+".lsn", h.LSN),
		uuidField(prefix+".uuid", h.UUID),
		decField(prefix+".owner", h.Owner),
	}
}

// Fields lists the block as xfs_db prints it after "dblock N": bhdr/bu/
// bleaf/btail for the single-block form, dhdr/du for a data block. For an
// unused region xfs_db also prints a "filetype" read from wherever a name
// would end in the stale bytes; that is not a field of the format and is
// left out.
func (b *DirDataBlock) Fields(hasFType bool) Fields {
	h, u := "dhdr", "du"
	if b.IsBlock() {
		h, u = "bhdr", "bu"
	}
	fs := b.Hdr.fields(h + ".hdr")
	for i, f := range b.BestFree {
		p := fmt.Sprintf("%s.bestfree[%d].", h, i)
		fs = append(fs, hexField(p+"offset", uint64(f.Offset)), hexField(p+"length", uint64(f.Length)))
	}
	ei, ui := 0, 0
	for i := 0; ei < len(b.Entries) || ui < len(b.Unused); i++ {
		p := fmt.Sprintf("%s[%d].", u, i)
		if ui < len(b.Unused) && (ei == len(b.Entries) || b.Unused[ui].Off < b.Entries[ei].Off) {
			x := b.Unused[ui]
			fs = append(fs, hexField(p+"freetag", DirDataFreeTag), hexField(p+"length", uint64(x.Length)),
				hexField(p+"tag", uint64(x.Off)))
			ui++
			continue
		}
		e := b.Entries[ei]
		fs = append(fs, decField(p+"inumber", e.Ino), decField(p+"namelen", uint64(len(e.Name))),
			Field{Name: p + "name", Value: string(e.Name), Text: quoteDB(e.Name)})
		if hasFType {
			fs = append(fs, decField(p+"filetype", uint64(e.FType)))
		}
		fs = append(fs, hexField(p+"tag", uint64(e.Tag)))
		ei++
	}
	if b.IsBlock() {
		for i, l := range b.Leaf {
			p := fmt.Sprintf("bleaf[%d].", i)
			fs = append(fs, hexField(p+"hashval", uint64(l.Hash)), hexField(p+"address", uint64(l.Address)))
		}
		fs = append(fs, decField("btail.count", uint64(len(b.Leaf))), decField("btail.stale", uint64(b.Stale)))
	}
	return fs
}

// dbHexArray is an array of small hex values as xfs_db prints it on one
// line: "name[0-2] = 0:0x18 1:0x330 2:0".
func dbHexArray(name string, vals []uint16) Field {
	var t strings.Builder
	v := make([]any, len(vals))
	for i, x := range vals {
		if i > 0 {
			t.WriteByte(' ')
		}
		fmt.Fprintf(&t, "%d:%s", i, hexField("", uint64(x)).Text)
		v[i] = uint64(x)
	}
	return Field{Name: dbArrayName(name, len(vals)), Value: v, Text: t.String()}
}

// dbArrayName is name[0-(n-1)], or name[0] for one element.
func dbArrayName(name string, n int) string {
	if n == 1 {
		return name + "[0]"
	}
	return fmt.Sprintf("%s[0-%d]", name, n-1)
}
