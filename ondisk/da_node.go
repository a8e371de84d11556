package ondisk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// The dabtree (directory leaf/node space and attribute forks) indexes
// names by hash. Every block in it starts with the same v5 blkinfo:
// sibling links, a 16-bit magic, then the CRC, self address, LSN, UUID
// and owner.
const (
	DA3NodeMagic = 0x3ebe // XFS_DA3_NODE_MAGIC: interior node

	DA3BlkInfoSize   = 56
	DA3BlkInfoCRCOff = 12
	DA3NodeHdrSize   = 64 // blkinfo, count, level, pad
	DANodeEntrySize  = 8  // hashval, before
	// DANodeMaxDepth is XFS_DA_NODE_MAXDEPTH: a dabtree has at most this
	// many levels, so any walk deeper than that is following a cycle.
	DANodeMaxDepth = 5
)

// DA3BlkInfo is struct xfs_da3_blkinfo. Forw and Back are logical block
// numbers (in file system blocks) of the siblings at the same level, 0 for
// none.
type DA3BlkInfo struct {
	Forw, Back uint32
	Magic      uint16
	CRC        uint32
	Blkno      uint64 // disk address of the block's first sector
	LSN        uint64
	UUID       UUID
	Owner      uint64

	crcOK bool // whether the CRC matched the block when decoded or encoded
}

// CRCOK reports whether the CRC matched the block when it was decoded.
func (h *DA3BlkInfo) CRCOK() bool { return h.crcOK }

// DA3Magic returns the 16-bit magic of a dabtree block, which tells node
// blocks from the leaf blocks of the directory or attribute code.
func DA3Magic(buf []byte) uint16 {
	if len(buf) < 10 {
		return 0
	}
	return binary.BigEndian.Uint16(buf[8:])
}

func decodeDA3BlkInfo(buf []byte) DA3BlkInfo {
	be := binary.BigEndian
	h := DA3BlkInfo{
		Forw:  be.Uint32(buf[0:]),
		Back:  be.Uint32(buf[4:]),
		Magic: be.Uint16(buf[8:]),
		CRC:   StoredCRC(buf, DA3BlkInfoCRCOff),
		Blkno: be.Uint64(buf[16:]),
		LSN:   be.Uint64(buf[24:]),
		Owner: be.Uint64(buf[48:]),
		crcOK: VerifyCRC(buf, DA3BlkInfoCRCOff),
	}
	copy(h.UUID[:], buf[32:48])
	return h
}

// encode writes all but the CRC; the pad after the magic is written as 0.
func (h *DA3BlkInfo) encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Forw)
	be.PutUint32(buf[4:], h.Back)
	be.PutUint16(buf[8:], h.Magic)
	be.PutUint16(buf[10:], 0)
	be.PutUint64(buf[16:], h.Blkno)
	be.PutUint64(buf[24:], h.LSN)
	copy(buf[32:48], h.UUID[:])
	be.PutUint64(buf[48:], h.Owner)
}

// verify is xfs_da3_blkinfo_verify plus the owner check done at read time.
func (h *DA3BlkInfo) verify(what string, buf []byte, g *Geometry, ino uint64, daddr int64) error {
	return selfDesc{DA3BlkInfoCRCOff, h.UUID, h.Blkno, h.Owner}.verify(what, buf, g, daddr, ino)
}

// DANodeEntry is one key of an interior node: the largest hash in the
// subtree, and the subtree's logical block number.
type DANodeEntry struct {
	Hash, Before uint32
}

// DANode is an interior dabtree block (struct xfs_da3_intnode). Level 1
// nodes point at leaves.
type DANode struct {
	DA3BlkInfo
	Count, Level uint16
	Ents         []DANodeEntry
}

func daBlockSizeOK(n int) bool { return n >= 512 && n <= 1<<16 && n&(n-1) == 0 }

// DecodeDANode decodes an interior node block. Count is bounded by the
// block before anything is read.
func DecodeDANode(buf []byte) (*DANode, error) {
	if !daBlockSizeOK(len(buf)) {
		return nil, Corruptf("da node: size %d is not a dabtree block size", len(buf))
	}
	n := &DANode{DA3BlkInfo: decodeDA3BlkInfo(buf)}
	if n.Magic != DA3NodeMagic {
		return nil, Corruptf("da node: bad magic 0x%04x, want 0x%04x", n.Magic, DA3NodeMagic)
	}
	be := binary.BigEndian
	n.Count = be.Uint16(buf[56:])
	n.Level = be.Uint16(buf[58:])
	if max := (len(buf) - DA3NodeHdrSize) / DANodeEntrySize; int(n.Count) > max {
		return nil, Corruptf("da node: count %d, at most %d fit in %d bytes", n.Count, max, len(buf))
	}
	n.Ents = make([]DANodeEntry, n.Count)
	for i := range n.Ents {
		p := DA3NodeHdrSize + DANodeEntrySize*i
		n.Ents[i] = DANodeEntry{be.Uint32(buf[p:]), be.Uint32(buf[p+4:])}
	}
	return n, nil
}

// Verify checks the node like xfs_da3_node_verify, plus owner and key
// order: level 1..DANodeMaxDepth, a non-empty entry list that fits the
// block, hashes that do not decrease.
func (n *DANode) Verify(buf []byte, g *Geometry, ino uint64, daddr int64) error {
	if n.Magic != DA3NodeMagic {
		return Corruptf("da node at daddr %d: bad magic 0x%04x", daddr, n.Magic)
	}
	if err := n.DA3BlkInfo.verify("da node", buf, g, ino, daddr); err != nil {
		return err
	}
	if n.Level == 0 || n.Level > DANodeMaxDepth {
		return Corruptf("da node at daddr %d: level %d, want 1..%d", daddr, n.Level, DANodeMaxDepth)
	}
	max := (len(buf) - DA3NodeHdrSize) / DANodeEntrySize
	if n.Count == 0 || int(n.Count) > max || int(n.Count) != len(n.Ents) {
		return Corruptf("da node at daddr %d: count %d, want 1..%d", daddr, n.Count, max)
	}
	for i := 1; i < len(n.Ents); i++ {
		if n.Ents[i].Hash < n.Ents[i-1].Hash {
			return Corruptf("da node at daddr %d: entry %d hash 0x%08x sorts before entry %d hash 0x%08x", daddr, i, n.Ents[i].Hash, i-1, n.Ents[i-1].Hash)
		}
	}
	return nil
}

// Encode writes the node into buf (the whole block) and stamps the CRC.
// Count is taken from len(Ents). Bytes past the last entry are left as
// they are.
func (n *DANode) Encode(buf []byte) error {
	if !daBlockSizeOK(len(buf)) {
		return fmt.Errorf("da node: encode into %d bytes", len(buf))
	}
	if max := (len(buf) - DA3NodeHdrSize) / DANodeEntrySize; len(n.Ents) > max {
		return fmt.Errorf("da node: %d entries, at most %d fit", len(n.Ents), max)
	}
	n.Count = uint16(len(n.Ents))
	n.DA3BlkInfo.encode(buf)
	be := binary.BigEndian
	be.PutUint16(buf[56:], n.Count)
	be.PutUint16(buf[58:], n.Level)
	be.PutUint32(buf[60:], 0)
	for i, e := range n.Ents {
		p := DA3NodeHdrSize + DANodeEntrySize*i
		be.PutUint32(buf[p:], e.Hash)
		be.PutUint32(buf[p+4:], e.Before)
	}
	StampCRC(buf, DA3BlkInfoCRCOff)
	n.CRC = StoredCRC(buf, DA3BlkInfoCRCOff)
	n.crcOK = true
	return nil
}

// fields renders the blkinfo as xfs_db does under prefix (e.g. "nhdr.info").
func (h *DA3BlkInfo) fields(prefix string) Fields {
	return Fields{
		decField(prefix+".hdr.forw", uint64(h.Forw)),
		decField(prefix+".hdr.back", uint64(h.Back)),
		hexField(prefix+".hdr.magic", uint64(h.Magic)),
		crcField(prefix+".crc", h.CRC, h.crcOK),
		decField(prefix+".bno", h.Blkno),
		hexField(prefix+".lsn", h.LSN),
		uuidField(prefix+".uuid", h.UUID),
		decField(prefix+".owner", h.Owner),
	}
}

// Fields lists the node as xfs_db prints it: the keys as one multi-line
// "nbtree" value of [hashval,before] pairs.
func (n *DANode) Fields() Fields {
	fs := n.DA3BlkInfo.fields("nhdr.info")
	fs = append(fs, decField("nhdr.count", uint64(n.Count)), decField("nhdr.level", uint64(n.Level)))
	if len(n.Ents) == 0 {
		return fs
	}
	var t strings.Builder
	t.WriteString("[hashval,before] ")
	v := make([]any, len(n.Ents))
	for i, e := range n.Ents {
		fmt.Fprintf(&t, "\n%d:[%s,%d]", i, hexField("", uint64(e.Hash)).Text, e.Before)
		if i+1 < len(n.Ents) {
			t.WriteByte(' ')
		}
		v[i] = map[string]uint64{"hashval": uint64(e.Hash), "before": uint64(e.Before)}
	}
	return append(fs, Field{Name: dbArrayName("nbtree", len(n.Ents)), Value: v, Text: t.String()})
}
