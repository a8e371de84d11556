package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Directory leaf blocks hold the hash index of a directory: entries of
// (hash of name, data pointer) sorted by hash. A leaf directory has one
// LEAF1 block at DirLeafOffset, which also carries the bests table (the
// longest free region of every data block) at its end; a node directory
// has LEAFN blocks under a dabtree and keeps its bests in free blocks.
const (
	Dir3Leaf1Magic = 0x3df1
	Dir3LeafNMagic = 0x3dff

	Dir3LeafHdrSize  = 64 // blkinfo, count, stale, pad
	DirLeafTailSize  = 4  // bestcount, at the end of a LEAF1 block
	dir3LeafCountOff = DA3BlkInfoSize
	dir3LeafStaleOff = DA3BlkInfoSize + 2
	dir3LeafPadOff   = DA3BlkInfoSize + 4
)

// DirLeafEntry is one hash index entry. A stale entry (left by a removal
// until the block is compacted) has Address DirNullDataptr.
type DirLeafEntry struct {
	Hash, Address uint32
}

// DirLeaf is a decoded LEAF1 or LEAFN block. Bests is only present in the
// LEAF1 form, indexed by data block number.
type DirLeaf struct {
	DA3BlkInfo
	Count, Stale uint16
	Ents         []DirLeafEntry
	Bests        []uint16
}

// IsLeaf1 reports the single-leaf form.
func (l *DirLeaf) IsLeaf1() bool { return l.Magic == Dir3Leaf1Magic }

// DirLeafMaxEnts is the number of leaf entries a leaf block holds.
func DirLeafMaxEnts(blkSize int) int { return (blkSize - Dir3LeafHdrSize) / DirLeafEntrySize }

// DecodeDirLeaf decodes a LEAF1 or LEAFN block. Count and bestcount are
// bounded by the block, and in LEAF1 the entries may not run into the
// bests table.
func DecodeDirLeaf(buf []byte) (*DirLeaf, error) {
	n := len(buf)
	if !daBlockSizeOK(n) {
		return nil, Corruptf("dir leaf: size %d is not a directory block size", n)
	}
	l := &DirLeaf{DA3BlkInfo: decodeDA3BlkInfo(buf)}
	if l.Magic != Dir3Leaf1Magic && l.Magic != Dir3LeafNMagic {
		return nil, Corruptf("dir leaf: bad magic 0x%04x, want 0x%04x or 0x%04x", l.Magic, Dir3Leaf1Magic, Dir3LeafNMagic)
	}
	be := binary.BigEndian
	l.Count = be.Uint16(buf[dir3LeafCountOff:])
	l.Stale = be.Uint16(buf[dir3LeafStaleOff:])
	entsEnd := n
	if l.IsLeaf1() {
		bestcount := be.Uint32(buf[n-DirLeafTailSize:])
		if max := (n - Dir3LeafHdrSize - DirLeafTailSize) / 2; bestcount > uint32(max) {
			return nil, Corruptf("dir leaf1: bestcount %d, at most %d fit", bestcount, max)
		}
		entsEnd = n - DirLeafTailSize - 2*int(bestcount)
		l.Bests = make([]uint16, bestcount)
		for i := range l.Bests {
			l.Bests[i] = be.Uint16(buf[entsEnd+2*i:])
		}
	}
	if Dir3LeafHdrSize+int(l.Count)*DirLeafEntrySize > entsEnd {
		return nil, Corruptf("dir leaf: count %d does not fit before byte %d", l.Count, entsEnd)
	}
	l.Ents = make([]DirLeafEntry, l.Count)
	for i := range l.Ents {
		p := Dir3LeafHdrSize + DirLeafEntrySize*i
		l.Ents[i] = DirLeafEntry{be.Uint32(buf[p:]), be.Uint32(buf[p+4:])}
	}
	return l, nil
}

func (l *DirLeaf) what() string {
	if l.IsLeaf1() {
		return "dir leaf1"
	}
	return "dir leafn"
}

// Verify checks what xfs_dir3_leaf_verify checks, with the owner: magic,
// identity, a count within the block (and clear of the bests table),
// hashes in order and a stale count that matches the stale entries.
func (l *DirLeaf) Verify(buf []byte, g *Geometry, ino uint64, daddr int64) error {
	if l.Magic != Dir3Leaf1Magic && l.Magic != Dir3LeafNMagic {
		return Corruptf("dir leaf at daddr %d: bad magic 0x%04x", daddr, l.Magic)
	}
	what := l.what()
	if len(buf) != g.DirBlkSize {
		return Corruptf("%s at daddr %d: %d bytes, directory blocks are %d", what, daddr, len(buf), g.DirBlkSize)
	}
	if err := l.DA3BlkInfo.verify(what, buf, g, ino, daddr); err != nil {
		return err
	}
	if int(l.Count) != len(l.Ents) || int(l.Count) > DirLeafMaxEnts(len(buf)) {
		return Corruptf("%s at daddr %d: count %d, %d entries decoded, at most %d fit", what, daddr, l.Count, len(l.Ents), DirLeafMaxEnts(len(buf)))
	}
	if l.IsLeaf1() {
		if Dir3LeafHdrSize+len(l.Ents)*DirLeafEntrySize > len(buf)-DirLeafTailSize-2*len(l.Bests) {
			return Corruptf("%s at daddr %d: %d entries overlap %d bests", what, daddr, len(l.Ents), len(l.Bests))
		}
	} else if len(l.Bests) != 0 {
		return Corruptf("%s at daddr %d: bests in a leafn block", what, daddr)
	}
	stale := 0
	for i, e := range l.Ents {
		if e.Address == DirNullDataptr {
			stale++
		}
		if i > 0 && e.Hash < l.Ents[i-1].Hash {
			return Corruptf("%s at daddr %d: entry %d hash 0x%08x sorts before entry %d hash 0x%08x", what, daddr, i, e.Hash, i-1, l.Ents[i-1].Hash)
		}
	}
	if stale != int(l.Stale) {
		return Corruptf("%s at daddr %d: header says %d stale entries, found %d", what, daddr, l.Stale, stale)
	}
	return nil
}

// Encode writes the leaf into buf (the whole block) and stamps the CRC.
// Count is taken from len(Ents) and, for LEAF1, bestcount from len(Bests).
// The gap between the entries and the bests is left as it is.
func (l *DirLeaf) Encode(buf []byte) error {
	n := len(buf)
	if !daBlockSizeOK(n) {
		return fmt.Errorf("dir leaf: encode into %d bytes", n)
	}
	if l.Magic != Dir3Leaf1Magic && l.Magic != Dir3LeafNMagic {
		return fmt.Errorf("dir leaf: encode with magic 0x%04x", l.Magic)
	}
	entsEnd := n
	if l.IsLeaf1() {
		entsEnd = n - DirLeafTailSize - 2*len(l.Bests)
	} else if len(l.Bests) != 0 {
		return fmt.Errorf("dir leafn: %d bests, only leaf1 blocks have them", len(l.Bests))
	}
	if len(l.Ents) > 0xffff || Dir3LeafHdrSize+len(l.Ents)*DirLeafEntrySize > entsEnd {
		return fmt.Errorf("%s: %d entries and %d bests do not fit %d bytes", l.what(), len(l.Ents), len(l.Bests), n)
	}
	l.Count = uint16(len(l.Ents))
	l.DA3BlkInfo.encode(buf)
	be := binary.BigEndian
	be.PutUint16(buf[dir3LeafCountOff:], l.Count)
	be.PutUint16(buf[dir3LeafStaleOff:], l.Stale)
	be.PutUint32(buf[dir3LeafPadOff:], 0)
	for i, e := range l.Ents {
		p := Dir3LeafHdrSize + DirLeafEntrySize*i
		be.PutUint32(buf[p:], e.Hash)
		be.PutUint32(buf[p+4:], e.Address)
	}
	if l.IsLeaf1() {
		for i, b := range l.Bests {
			be.PutUint16(buf[entsEnd+2*i:], b)
		}
		be.PutUint32(buf[n-DirLeafTailSize:], uint32(len(l.Bests)))
	}
	StampCRC(buf, DA3BlkInfoCRCOff)
	l.CRC = StoredCRC(buf, DA3BlkInfoCRCOff)
	l.crcOK = true
	return nil
}

// Fields lists the leaf as xfs_db prints it: lhdr, for LEAF1 the bests on
// one line, lents, and for LEAF1 the tail.
func (l *DirLeaf) Fields() Fields {
	fs := l.DA3BlkInfo.fields("lhdr.info")
	fs = append(fs, decField("lhdr.count", uint64(l.Count)), decField("lhdr.stale", uint64(l.Stale)))
	if l.IsLeaf1() && len(l.Bests) > 0 {
		fs = append(fs, dbHexArray("lbests", l.Bests))
	}
	for i, e := range l.Ents {
		p := fmt.Sprintf("lents[%d].", i)
		fs = append(fs, hexField(p+"hashval", uint64(e.Hash)), hexField(p+"address", uint64(e.Address)))
	}
	if l.IsLeaf1() {
		fs = append(fs, decField("ltail.bestcount", uint64(len(l.Bests))))
	}
	return fs
}
