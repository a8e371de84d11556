package ondisk

import (
	"encoding/binary"
	"fmt"
)

// AGFL ("XAFL") is the fourth sector of every AG: a ring of blocks kept in
// reserve so that free-space btree splits never need to allocate.
const (
	AGFLMagic = 0x5841464c
	// AGFLHeaderSize is the AGFL header (magic, seqno, uuid, lsn, crc) before
	// the ring of block numbers.
	AGFLHeaderSize = 36
	AGFLCRCOff     = 32
	AGFLLSNOff     = 24
)

// AGFL mirrors struct xfs_agfl and the block ring after it. Bno has one slot
// per 4 bytes of the sector after the header (g.AGFLSize()).
type AGFL struct {
	MagicNum uint32
	SeqNo    uint32
	UUID     UUID
	LSN      uint64
	CRC      uint32
	Bno      []uint32

	crcOK  bool
	crcGot uint32
}

// DecodeAGFL decodes an AGFL from its sector; the ring fills the rest of buf.
func DecodeAGFL(buf []byte) (*AGFL, error) {
	if len(buf) < AGFLHeaderSize+4 {
		return nil, Corruptf("agfl: buffer of %d bytes, want at least %d", len(buf), AGFLHeaderSize+4)
	}
	be := binary.BigEndian
	a := &AGFL{
		MagicNum: be.Uint32(buf[0:]),
		SeqNo:    be.Uint32(buf[4:]),
		LSN:      be.Uint64(buf[AGFLLSNOff:]),
		CRC:      StoredCRC(buf, AGFLCRCOff),
		Bno:      make([]uint32, (len(buf)-AGFLHeaderSize)/4),
	}
	copy(a.UUID[:], buf[8:24])
	for i := range a.Bno {
		a.Bno[i] = be.Uint32(buf[AGFLHeaderSize+4*i:])
	}
	a.crcGot = Checksum(buf, AGFLCRCOff)
	a.crcOK = a.crcGot == a.CRC
	return a, nil
}

// Encode writes the AGFL into buf (one sector) and stamps the CRC over all
// of buf. Slots beyond len(Bno) are left as they are; Bno entries that do
// not fit in buf are dropped.
func (a *AGFL) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], a.MagicNum)
	be.PutUint32(buf[4:], a.SeqNo)
	copy(buf[8:24], a.UUID[:])
	be.PutUint64(buf[AGFLLSNOff:], a.LSN)
	for i, b := range a.Bno {
		off := AGFLHeaderSize + 4*i
		if off+4 > len(buf) {
			break
		}
		be.PutUint32(buf[off:], b)
	}
	StampCRC(buf, AGFLCRCOff)
	a.CRC = StoredCRC(buf, AGFLCRCOff)
	a.crcGot, a.crcOK = a.CRC, true
}

// CRCOK reports whether the CRC matched when the AGFL was decoded (or
// encoded).
func (a *AGFL) CRCOK() bool { return a.crcOK }

// Verify checks the AGFL of AG agno as the kernel's verifier does: every
// slot, active or stale, is null or a block of the AG.
func (a *AGFL) Verify(g *Geometry, agno uint32) error {
	hdr := fmt.Sprintf("agfl %d", agno)
	if a.MagicNum != AGFLMagic {
		return Corruptf("%s: magic 0x%08x, want 0x%08x", hdr, a.MagicNum, uint32(AGFLMagic))
	}
	if !a.crcOK {
		return Corruptf("%s: bad CRC 0x%08x, contents sum to 0x%08x", hdr, a.CRC, a.crcGot)
	}
	if a.UUID != g.MetaUUID {
		return Corruptf("%s: uuid %s, want %s", hdr, a.UUID, g.MetaUUID)
	}
	if a.SeqNo != agno {
		return Corruptf("%s: seqno %d, want %d", hdr, a.SeqNo, agno)
	}
	if agno >= g.AGCount {
		return Corruptf("%s: AG number out of range, want < %d", hdr, g.AGCount)
	}
	if want := g.AGFLSize(); len(a.Bno) != want {
		return Corruptf("%s: %d slots, want %d", hdr, len(a.Bno), want)
	}
	length := g.AGSize(agno)
	for i, b := range a.Bno {
		if b != NullAGBlock && b >= length {
			return Corruptf("%s: bno[%d] = %d, want null or a block < length %d", hdr, i, b, length)
		}
	}
	return nil
}

// Active returns the blocks on the free list in ring order, from flfirst to
// fllast wrapping round the end, as described by agf. The ring must be
// consistent: indices inside the ring, flcount equal to their distance, and
// every active slot a distinct block of the AG above the headers.
func (a *AGFL) Active(agf *AGF) ([]uint32, error) {
	hdr := fmt.Sprintf("agfl %d", agf.SeqNo)
	size := uint32(len(a.Bno))
	if size == 0 {
		return nil, Corruptf("%s: no slots", hdr)
	}
	if agf.FLFirst >= size || agf.FLLast >= size || agf.FLCount > size {
		return nil, Corruptf("%s: flfirst %d, fllast %d, flcount %d, want indices < %d and count <= %d",
			hdr, agf.FLFirst, agf.FLLast, agf.FLCount, size, size)
	}
	if n := agflRingLen(agf.FLFirst, agf.FLLast, agf.FLCount, size); n != agf.FLCount {
		return nil, Corruptf("%s: flcount %d, but flfirst %d..fllast %d spans %d slots", hdr, agf.FLCount, agf.FLFirst, agf.FLLast, n)
	}
	out := make([]uint32, 0, agf.FLCount)
	seen := make(map[uint32]uint32, agf.FLCount)
	for k, i := uint32(0), agf.FLFirst; k < agf.FLCount; k, i = k+1, (i+1)%size {
		b := a.Bno[i]
		if b == NullAGBlock || b == 0 || b >= agf.Length {
			return nil, Corruptf("%s: active slot bno[%d] = %d, want a block 0 < bno < length %d", hdr, i, b, agf.Length)
		}
		if j, dup := seen[b]; dup {
			return nil, Corruptf("%s: block %d on the free list twice (bno[%d] and bno[%d])", hdr, b, j, i)
		}
		seen[b] = i
		out = append(out, b)
	}
	return out, nil
}

// Fields lists the AGFL as `xfs_db -c 'agfl N' -c p` prints it: the ring as
// "bno[0-N] = 0:null 1:6 ...", where slots holding 0 are left out.
func (a *AGFL) Fields() Fields {
	return Fields{
		hexField("magicnum", uint64(a.MagicNum)),
		xdbNull32("seqno", a.SeqNo),
		uuidField("uuid", a.UUID),
		hexField("lsn", a.LSN),
		crcField("crc", a.CRC, a.crcOK),
		xdbArray32("bno", a.Bno, true, false),
	}
}
