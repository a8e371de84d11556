package ondisk

import (
	"encoding/binary"
	"fmt"
)

// AGI ("XAGI") is the third sector of every AG: the inode btree roots, the
// inode counters and the heads of the unlinked-inode lists.
const (
	AGIMagic   = 0x58414749
	AGIVersion = 1
	AGICRCOff  = 312
	AGILSNOff  = 320
	agiSize    = 344 // bytes of xfs_agi the format defines

	// AGIUnlinkedBuckets is the number of unlinked-list heads; an inode
	// hangs off bucket agino % AGIUnlinkedBuckets.
	AGIUnlinkedBuckets = 64
)

// AGI mirrors struct xfs_agi. The 4-byte pad after the CRC is not modelled
// (Encode leaves it as it is).
type AGI struct {
	MagicNum   uint32
	VersionNum uint32
	SeqNo      uint32
	Length     uint32
	Count      uint32
	Root       uint32
	Level      uint32
	FreeCount  uint32
	NewIno     uint32
	DirIno     uint32
	Unlinked   [AGIUnlinkedBuckets]uint32
	UUID       UUID
	CRC        uint32
	LSN        uint64
	FreeRoot   uint32
	FreeLevel  uint32
	IBlocks    uint32
	FBlocks    uint32

	crcOK  bool
	crcGot uint32
}

// DecodeAGI decodes an AGI from its sector (the CRC covers all of buf).
func DecodeAGI(buf []byte) (*AGI, error) {
	if len(buf) < agiSize {
		return nil, Corruptf("agi: buffer of %d bytes, want at least %d", len(buf), agiSize)
	}
	be := binary.BigEndian
	a := &AGI{
		MagicNum:   be.Uint32(buf[0:]),
		VersionNum: be.Uint32(buf[4:]),
		SeqNo:      be.Uint32(buf[8:]),
		Length:     be.Uint32(buf[12:]),
		Count:      be.Uint32(buf[16:]),
		Root:       be.Uint32(buf[20:]),
		Level:      be.Uint32(buf[24:]),
		FreeCount:  be.Uint32(buf[28:]),
		NewIno:     be.Uint32(buf[32:]),
		DirIno:     be.Uint32(buf[36:]),
		CRC:        StoredCRC(buf, AGICRCOff),
		LSN:        be.Uint64(buf[AGILSNOff:]),
		FreeRoot:   be.Uint32(buf[328:]),
		FreeLevel:  be.Uint32(buf[332:]),
		IBlocks:    be.Uint32(buf[336:]),
		FBlocks:    be.Uint32(buf[340:]),
	}
	for i := range a.Unlinked {
		a.Unlinked[i] = be.Uint32(buf[40+4*i:])
	}
	copy(a.UUID[:], buf[296:312])
	a.crcGot = Checksum(buf, AGICRCOff)
	a.crcOK = a.crcGot == a.CRC
	return a, nil
}

// Encode writes the AGI into buf (one sector) and stamps the CRC over all of
// buf.
func (a *AGI) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], a.MagicNum)
	be.PutUint32(buf[4:], a.VersionNum)
	be.PutUint32(buf[8:], a.SeqNo)
	be.PutUint32(buf[12:], a.Length)
	be.PutUint32(buf[16:], a.Count)
	be.PutUint32(buf[20:], a.Root)
	be.PutUint32(buf[24:], a.Level)
	be.PutUint32(buf[28:], a.FreeCount)
	be.PutUint32(buf[32:], a.NewIno)
	be.PutUint32(buf[36:], a.DirIno)
	for i, v := range a.Unlinked {
		be.PutUint32(buf[40+4*i:], v)
	}
	copy(buf[296:312], a.UUID[:])
	be.PutUint64(buf[AGILSNOff:], a.LSN)
	be.PutUint32(buf[328:], a.FreeRoot)
	be.PutUint32(buf[332:], a.FreeLevel)
	be.PutUint32(buf[336:], a.IBlocks)
	be.PutUint32(buf[340:], a.FBlocks)
	StampCRC(buf, AGICRCOff)
	a.CRC = StoredCRC(buf, AGICRCOff)
	a.crcGot, a.crcOK = a.CRC, true
}

// CRCOK reports whether the CRC matched when the AGI was decoded (or
// encoded).
func (a *AGI) CRCOK() bool { return a.crcOK }

// agValidAgino reports whether agino can name an inode of an AG of length
// blocks: its block must be a data block of that AG.
func agValidAgino(g *Geometry, length, agino uint32) bool {
	if g.AGInoLog < 32 && agino>>g.AGInoLog != 0 {
		return false
	}
	agbno := g.AginoAgbno(agino)
	return agbno > AGFLBlock(g) && agbno < length
}

// Verify checks the AGI of AG agno, as the kernel's read verifier does plus
// the root, counter and unlinked-bucket checks xfs_repair makes. The finobt
// fields are checked only when the file system has a finobt, the block
// counters only with INOBTCNT.
func (a *AGI) Verify(g *Geometry, agno uint32, sb *Superblock) error {
	hdr := fmt.Sprintf("agi %d", agno)
	if err := checkAGHeader(hdr, g, agno, agHeader{a.MagicNum, AGIMagic, a.VersionNum, AGIVersion, a.crcOK, a.CRC, a.crcGot, a.UUID, a.SeqNo, a.Length}); err != nil {
		return err
	}
	maxLevels := InobtMaxLevels(g)
	if err := agCheckLevel(hdr, "level", a.Level, maxLevels); err != nil {
		return err
	}
	if err := agCheckRoot(hdr, "root", a.Root, a.Length, g); err != nil {
		return err
	}
	if maxIno := uint64(a.Length) << g.InoPBLog; uint64(a.Count) > maxIno {
		return Corruptf("%s: count %d, want at most %d inodes in %d blocks", hdr, a.Count, maxIno, a.Length)
	}
	if a.FreeCount > a.Count {
		return Corruptf("%s: freecount %d, want at most count %d", hdr, a.FreeCount, a.Count)
	}
	if a.NewIno != NullAGIno && !agValidAgino(g, a.Length, a.NewIno) {
		return Corruptf("%s: newino %d is not an inode of the AG's data blocks", hdr, a.NewIno)
	}
	for i, ino := range a.Unlinked {
		if ino == NullAGIno {
			continue
		}
		if !agValidAgino(g, a.Length, ino) {
			return Corruptf("%s: unlinked[%d] = %d is not an inode of the AG's data blocks", hdr, i, ino)
		}
		if int(ino%AGIUnlinkedBuckets) != i {
			return Corruptf("%s: unlinked[%d] = %d, want an inode with agino %% %d == %d", hdr, i, ino, AGIUnlinkedBuckets, i)
		}
	}
	if sb.HasFinobt() {
		if err := agCheckLevel(hdr, "free_level", a.FreeLevel, maxLevels); err != nil {
			return err
		}
		if err := agCheckRoot(hdr, "free_root", a.FreeRoot, a.Length, g); err != nil {
			return err
		}
	}
	if sb.HasInobtCnt() {
		// A tree of height h has at least h blocks.
		if a.IBlocks < a.Level || a.IBlocks > a.Length {
			return Corruptf("%s: ino_blocks %d, want level %d..length %d", hdr, a.IBlocks, a.Level, a.Length)
		}
		if sb.HasFinobt() && (a.FBlocks < a.FreeLevel || a.FBlocks > a.Length) {
			return Corruptf("%s: fino_blocks %d, want free_level %d..length %d", hdr, a.FBlocks, a.FreeLevel, a.Length)
		}
	}
	return nil
}

// Fields lists the AGI as `xfs_db -c 'agi N' -c p` prints it: the pad after
// the CRC is not shown, unlinked shows only the non-null buckets.
func (a *AGI) Fields(sb *Superblock) Fields {
	_ = sb
	return Fields{
		hexField("magicnum", uint64(a.MagicNum)),
		decField("versionnum", uint64(a.VersionNum)),
		xdbNull32("seqno", a.SeqNo),
		xdbNull32("length", a.Length),
		xdbNull32("count", a.Count),
		xdbNull32("root", a.Root),
		decField("level", uint64(a.Level)),
		xdbNull32("freecount", a.FreeCount),
		xdbNull32("newino", a.NewIno),
		xdbNull32("dirino", a.DirIno),
		xdbArray32("unlinked", a.Unlinked[:], false, true),
		uuidField("uuid", a.UUID),
		crcField("crc", a.CRC, a.crcOK),
		hexField("lsn", a.LSN),
		xdbNull32("free_root", a.FreeRoot),
		decField("free_level", uint64(a.FreeLevel)),
		decField("ino_blocks", uint64(a.IBlocks)),
		decField("fino_blocks", uint64(a.FBlocks)),
	}
}
