package ondisk

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// AGF ("XAGF") is the second sector of every AG: the roots of its free-space
// (and rmap, refcount) btrees, the AGFL ring indices and the free counters.
const (
	AGFMagic   = 0x58414746
	AGFVersion = 1
	AGFLSNOff  = 208
	AGFCRCOff  = 216
	agfSize    = 224 // bytes of xfs_agf the format defines
)

// AGF mirrors struct xfs_agf. The kernel keeps bno/cnt/rmap roots and levels
// in two three-slot arrays; they are named fields here.
type AGF struct {
	MagicNum   uint32
	VersionNum uint32
	SeqNo      uint32
	Length     uint32
	BnoRoot    uint32
	CntRoot    uint32
	RmapRoot   uint32
	BnoLevel   uint32
	CntLevel   uint32
	RmapLevel  uint32
	FLFirst    uint32
	FLLast     uint32
	FLCount    uint32
	FreeBlks   uint32
	Longest    uint32
	BtreeBlks  uint32
	UUID       UUID

	RmapBlocks     uint32
	RefcountBlocks uint32
	RefcountRoot   uint32
	RefcountLevel  uint32
	LSN            uint64
	CRC            uint32

	crcOK  bool   // stored CRC matched the sector at decode time
	crcGot uint32 // CRC computed over the sector at decode time
}

// DecodeAGF decodes an AGF from its sector (g.SectSize bytes; the CRC
// covers all of them). It checks only that the buffer holds the structure;
// Verify does the rest.
func DecodeAGF(buf []byte) (*AGF, error) {
	if len(buf) < agfSize {
		return nil, Corruptf("agf: buffer of %d bytes, want at least %d", len(buf), agfSize)
	}
	be := binary.BigEndian
	a := &AGF{
		MagicNum:       be.Uint32(buf[0:]),
		VersionNum:     be.Uint32(buf[4:]),
		SeqNo:          be.Uint32(buf[8:]),
		Length:         be.Uint32(buf[12:]),
		BnoRoot:        be.Uint32(buf[16:]),
		CntRoot:        be.Uint32(buf[20:]),
		RmapRoot:       be.Uint32(buf[24:]),
		BnoLevel:       be.Uint32(buf[28:]),
		CntLevel:       be.Uint32(buf[32:]),
		RmapLevel:      be.Uint32(buf[36:]),
		FLFirst:        be.Uint32(buf[40:]),
		FLLast:         be.Uint32(buf[44:]),
		FLCount:        be.Uint32(buf[48:]),
		FreeBlks:       be.Uint32(buf[52:]),
		Longest:        be.Uint32(buf[56:]),
		BtreeBlks:      be.Uint32(buf[60:]),
		RmapBlocks:     be.Uint32(buf[80:]),
		RefcountBlocks: be.Uint32(buf[84:]),
		RefcountRoot:   be.Uint32(buf[88:]),
		RefcountLevel:  be.Uint32(buf[92:]),
		LSN:            be.Uint64(buf[AGFLSNOff:]),
		CRC:            StoredCRC(buf, AGFCRCOff),
	}
	copy(a.UUID[:], buf[64:80])
	a.crcGot = Checksum(buf, AGFCRCOff)
	a.crcOK = a.crcGot == a.CRC
	return a, nil
}

// Encode writes the AGF into buf (one sector) and stamps the CRC over all of
// buf. Bytes the format leaves spare are not touched.
func (a *AGF) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], a.MagicNum)
	be.PutUint32(buf[4:], a.VersionNum)
	be.PutUint32(buf[8:], a.SeqNo)
	be.PutUint32(buf[12:], a.Length)
	be.PutUint32(buf[16:], a.BnoRoot)
	be.PutUint32(buf[20:], a.CntRoot)
	be.PutUint32(buf[24:], a.RmapRoot)
	be.PutUint32(buf[28:], a.BnoLevel)
	be.PutUint32(buf[32:], a.CntLevel)
	be.PutUint32(buf[36:], a.RmapLevel)
	be.PutUint32(buf[40:], a.FLFirst)
	be.PutUint32(buf[44:], a.FLLast)
	be.PutUint32(buf[48:], a.FLCount)
	be.PutUint32(buf[52:], a.FreeBlks)
	be.PutUint32(buf[56:], a.Longest)
	be.PutUint32(buf[60:], a.BtreeBlks)
	copy(buf[64:80], a.UUID[:])
	be.PutUint32(buf[80:], a.RmapBlocks)
	be.PutUint32(buf[84:], a.RefcountBlocks)
	be.PutUint32(buf[88:], a.RefcountRoot)
	be.PutUint32(buf[92:], a.RefcountLevel)
	be.PutUint64(buf[AGFLSNOff:], a.LSN)
	StampCRC(buf, AGFCRCOff)
	a.CRC = StoredCRC(buf, AGFCRCOff)
	a.crcGot, a.crcOK = a.CRC, true
}

// CRCOK reports whether the CRC matched when the AGF was decoded (or
// encoded).
func (a *AGF) CRCOK() bool { return a.crcOK }

// AGFLBlock is the AG block holding the AGFL sector, the last of the four
// header sectors: btree roots, AGFL entries and inodes lie above it.
func AGFLBlock(g *Geometry) uint32 { return uint32(3 * g.SectSize / g.BlockSize) }

// agCheckRoot reports a root block that is not a data block of the AG.
func agCheckRoot(hdr, name string, root, length uint32, g *Geometry) error {
	if lo := AGFLBlock(g); root <= lo || root >= length {
		return Corruptf("%s: %s %d outside the AG, want %d < %s < %d", hdr, name, root, lo, name, length)
	}
	return nil
}

// agCheckLevel reports a tree height outside 1..max.
func agCheckLevel(hdr, name string, level uint32, max int) error {
	if level < 1 || level > uint32(max) {
		return Corruptf("%s: %s %d, want 1..%d", hdr, name, level, max)
	}
	return nil
}

// Verify checks the AGF of AG agno against the geometry, as the kernel's
// read verifier does plus the root and AGFL-ring consistency checks that
// xfs_repair makes. Whether the rmap and refcount trees exist is taken
// from the AGF itself (their fields are all zero without the feature);
// VerifyFeatures checks that against the superblock.
func (a *AGF) Verify(g *Geometry, agno uint32) error {
	hdr := fmt.Sprintf("agf %d", agno)
	if err := checkAGHeader(hdr, g, agno, agHeader{a.MagicNum, AGFMagic, a.VersionNum, AGFVersion, a.crcOK, a.CRC, a.crcGot, a.UUID, a.SeqNo, a.Length}); err != nil {
		return err
	}
	maxAlloc := AllocMaxLevels(g)
	if err := agCheckLevel(hdr, "bnolevel", a.BnoLevel, maxAlloc); err != nil {
		return err
	}
	if err := agCheckLevel(hdr, "cntlevel", a.CntLevel, maxAlloc); err != nil {
		return err
	}
	if err := agCheckRoot(hdr, "bnoroot", a.BnoRoot, a.Length, g); err != nil {
		return err
	}
	if err := agCheckRoot(hdr, "cntroot", a.CntRoot, a.Length, g); err != nil {
		return err
	}
	if a.hasRmap() {
		if err := agCheckLevel(hdr, "rmaplevel", a.RmapLevel, rmapMaxLevels(g, a.hasRefcount())); err != nil {
			return err
		}
		if err := agCheckRoot(hdr, "rmaproot", a.RmapRoot, a.Length, g); err != nil {
			return err
		}
		if a.RmapBlocks > a.Length {
			return Corruptf("%s: rmapblocks %d, want at most length %d", hdr, a.RmapBlocks, a.Length)
		}
	}
	if a.hasRefcount() {
		if err := agCheckLevel(hdr, "refcntlevel", a.RefcountLevel, refcountMaxLevels(g)); err != nil {
			return err
		}
		if err := agCheckRoot(hdr, "refcntroot", a.RefcountRoot, a.Length, g); err != nil {
			return err
		}
		if a.RefcountBlocks > a.Length {
			return Corruptf("%s: refcntblocks %d, want at most length %d", hdr, a.RefcountBlocks, a.Length)
		}
	}
	size := uint32(g.AGFLSize())
	if a.FLFirst >= size {
		return Corruptf("%s: flfirst %d, want < AGFL size %d", hdr, a.FLFirst, size)
	}
	if a.FLLast >= size {
		return Corruptf("%s: fllast %d, want < AGFL size %d", hdr, a.FLLast, size)
	}
	if a.FLCount > size {
		return Corruptf("%s: flcount %d, want at most AGFL size %d", hdr, a.FLCount, size)
	}
	if n := agflRingLen(a.FLFirst, a.FLLast, a.FLCount, size); n != a.FLCount {
		return Corruptf("%s: flcount %d, but flfirst %d..fllast %d spans %d slots", hdr, a.FLCount, a.FLFirst, a.FLLast, n)
	}
	if a.FreeBlks > a.Length {
		return Corruptf("%s: freeblks %d, want at most length %d", hdr, a.FreeBlks, a.Length)
	}
	if a.Longest > a.FreeBlks {
		return Corruptf("%s: longest %d, want at most freeblks %d", hdr, a.Longest, a.FreeBlks)
	}
	// Blocks of the free-space and rmap trees are neither free nor on the
	// AGFL, so they fit in what free space leaves of the AG.
	if used := uint64(a.FreeBlks) + uint64(a.FLCount); uint64(a.BtreeBlks) > uint64(a.Length)-min(used, uint64(a.Length)) {
		return Corruptf("%s: btreeblks %d, want at most length %d - freeblks %d - flcount %d", hdr, a.BtreeBlks, a.Length, a.FreeBlks, a.FLCount)
	}
	return nil
}

// VerifyFeatures checks that the rmap and refcount fields are in use exactly
// when the superblock has the rmapbt and reflink features.
func (a *AGF) VerifyFeatures(sb *Superblock) error {
	hdr := fmt.Sprintf("agf %d", a.SeqNo)
	if a.hasRmap() != sb.HasRmapbt() {
		return Corruptf("%s: rmap fields in use (root %d, level %d, blocks %d) = %v, want %v (rmapbt feature)",
			hdr, a.RmapRoot, a.RmapLevel, a.RmapBlocks, a.hasRmap(), sb.HasRmapbt())
	}
	if a.hasRefcount() != sb.HasReflink() {
		return Corruptf("%s: refcount fields in use (root %d, level %d, blocks %d) = %v, want %v (reflink feature)",
			hdr, a.RefcountRoot, a.RefcountLevel, a.RefcountBlocks, a.hasRefcount(), sb.HasReflink())
	}
	return nil
}

func (a *AGF) hasRmap() bool { return a.RmapRoot != 0 || a.RmapLevel != 0 || a.RmapBlocks != 0 }

func (a *AGF) hasRefcount() bool {
	return a.RefcountRoot != 0 || a.RefcountLevel != 0 || a.RefcountBlocks != 0
}

// agflRingLen is the number of slots from first to last inclusive, going
// round the ring; an empty list (count 0) spans none whatever the indices,
// as in the kernel's xfs_agfl_needs_reset.
func agflRingLen(first, last, count, size uint32) uint32 {
	switch {
	case count == 0:
		return 0
	case last >= first:
		return last - first + 1
	default:
		return size - first + last + 1
	}
}

// Fields lists the AGF as `xfs_db -c 'agf N' -c p` prints it. xfs_db prints
// the same fields for every v5 feature set; sb is accepted so callers treat
// all AG headers alike.
func (a *AGF) Fields(sb *Superblock) Fields {
	_ = sb
	return Fields{
		hexField("magicnum", uint64(a.MagicNum)),
		decField("versionnum", uint64(a.VersionNum)),
		xdbNull32("seqno", a.SeqNo),
		xdbNull32("length", a.Length),
		xdbNull32("bnoroot", a.BnoRoot),
		xdbNull32("cntroot", a.CntRoot),
		xdbNonZero32("rmaproot", a.RmapRoot),
		xdbNonZero32("refcntroot", a.RefcountRoot),
		decField("bnolevel", uint64(a.BnoLevel)),
		decField("cntlevel", uint64(a.CntLevel)),
		decField("rmaplevel", uint64(a.RmapLevel)),
		decField("refcntlevel", uint64(a.RefcountLevel)),
		decField("rmapblocks", uint64(a.RmapBlocks)),
		decField("refcntblocks", uint64(a.RefcountBlocks)),
		decField("flfirst", uint64(a.FLFirst)),
		decField("fllast", uint64(a.FLLast)),
		decField("flcount", uint64(a.FLCount)),
		decField("freeblks", uint64(a.FreeBlks)),
		decField("longest", uint64(a.Longest)),
		decField("btreeblks", uint64(a.BtreeBlks)),
		uuidField("uuid", a.UUID),
		hexField("lsn", a.LSN),
		crcField("crc", a.CRC, a.crcOK),
	}
}

// xfs_db renderings the shared helpers in fields.go do not cover. They
// follow db/fprint.c: C's "%#x" prints zero as "0", null-able AG numbers
// print "null" when all ones, and "nonzero" fields print nothing for 0.

// xdbNull32 is a 32-bit AG block, AG inode or AG number: "null" when all ones.
func xdbNull32(name string, v uint32) Field { return nullField(name, uint64(v), uint64(NullAGBlock)) }

// xdbNonZero32 is xfs_db's "agblocknz": an empty value when zero.
func xdbNonZero32(name string, v uint32) Field {
	if v == 0 {
		return Field{Name: name, Value: nil, Text: ""}
	}
	return xdbNull32(name, v)
}

// xdbArray32 renders an array of 32-bit AG numbers the way fp_num does: each
// printed entry as "i:v" ("null" for all ones), entries separated by one
// space; skipZero and skipNull drop entries without leaving their index
// (but the separator after the previous entry stays). The JSON value has one
// slot per entry, nil for null.
func xdbArray32(name string, vals []uint32, skipZero, skipNull bool) Field {
	var b strings.Builder
	value := make([]any, len(vals))
	for i, v := range vals {
		if v == NullAGBlock {
			value[i] = nil
		} else {
			value[i] = uint64(v)
		}
		if (skipZero && v == 0) || (skipNull && v == NullAGBlock) {
			continue
		}
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(':')
		if v == NullAGBlock {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatUint(uint64(v), 10))
		}
		if i < len(vals)-1 {
			b.WriteByte(' ')
		}
	}
	n := fmt.Sprintf("%s[0-%d]", name, len(vals)-1)
	if len(vals) == 1 {
		n = name + "[0]"
	}
	return Field{Name: n, Value: value, Text: b.String()}
}

// agHeader is what the AGF and AGI share at their start: each verifier
// checks it the same way.
type agHeader struct {
	magic, wantMagic     uint32
	version, wantVersion uint32
	crcOK                bool
	crc, crcGot          uint32
	uuid                 UUID
	seqno, length        uint32
}

func checkAGHeader(hdr string, g *Geometry, agno uint32, h agHeader) error {
	if h.magic != h.wantMagic {
		return Corruptf("%s: magic 0x%08x, want 0x%08x", hdr, h.magic, h.wantMagic)
	}
	if h.version != h.wantVersion {
		return Corruptf("%s: versionnum %d, want %d", hdr, h.version, h.wantVersion)
	}
	if !h.crcOK {
		return Corruptf("%s: bad CRC 0x%08x, contents sum to 0x%08x", hdr, h.crc, h.crcGot)
	}
	if h.uuid != g.MetaUUID {
		return Corruptf("%s: uuid %s, want %s", hdr, h.uuid, g.MetaUUID)
	}
	if h.seqno != agno {
		return Corruptf("%s: seqno %d, want %d", hdr, h.seqno, agno)
	}
	if agno >= g.AGCount {
		return Corruptf("%s: AG number out of range, want < %d", hdr, g.AGCount)
	}
	if want := g.AGSize(agno); h.length != want {
		return Corruptf("%s: length %d, want %d", hdr, h.length, want)
	}
	return nil
}
