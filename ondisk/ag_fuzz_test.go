package ondisk

import (
	"bytes"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// agFuzzImage returns a superblock, geometry and the image path of a mkfs'd
// file system for fuzz seeds, or a made-up geometry (and no image) when
// xfsprogs is missing, so the fuzz targets still run on synthetic seeds.
func agFuzzImage(f *testing.F, args ...string) (*Superblock, *Geometry, string) {
	f.Helper()
	if !oracle.Have(oracle.Xfsprogs) {
		sb := &Superblock{MagicNum: SBMagic, BlockSize: 4096, BlockLog: 12, SectSize: 512, SectLog: 9,
			AGBlocks: 32768, AGCount: 4, AGBlkLog: 15, DBlocks: 131072, InodeSize: 512, InodeLog: 9,
			InoPBlock: 8, InoPBLog: 3, VersionNum: 5,
			FeaturesROCompat: ROCompatFinobt | ROCompatReflink | ROCompatInobtCnt, FeaturesIncompat: IncompatSpinodes}
		sb.UUID[0] = 1
		return sb, NewGeometry(sb), ""
	}
	img := oracle.Mkfs(f, agImageSize, args...)
	sb, err := DecodeSuperblock(agReadAt(f, img, 0, 512))
	if err != nil {
		f.Fatal(err)
	}
	if sb.SectSize > 512 {
		sb, _ = DecodeSuperblock(agReadAt(f, img, 0, int(sb.SectSize)))
	}
	return sb, NewGeometry(sb), img
}

// agAddSectorSeeds adds sector s of every AG of the image, plus a synthetic
// one built by encode when there is no image.
func agAddSectorSeeds(f *testing.F, g *Geometry, img string, daddr func(uint32) int64, synth func() []byte) {
	f.Helper()
	if img == "" {
		f.Add(synth())
		return
	}
	for agno := range g.AGCount {
		f.Add(agReadAt(f, img, daddr(agno)<<BBShift, g.SectSize))
	}
}

// agSameExceptCRC reports whether a and b differ at most in the 4 bytes at off.
func agSameExceptCRC(a, b []byte, off int) bool {
	return len(a) == len(b) && bytes.Equal(a[:off], b[:off]) && bytes.Equal(a[off+4:], b[off+4:])
}

func FuzzDecodeAGF(f *testing.F) {
	sb, g, img := agFuzzImage(f)
	agAddSectorSeeds(f, g, img, g.AGFDaddr, func() []byte {
		b := make([]byte, 512)
		(&AGF{MagicNum: AGFMagic, VersionNum: 1, SeqNo: 1, Length: g.AGBlocks, BnoRoot: 1, CntRoot: 2,
			BnoLevel: 1, CntLevel: 1, FLFirst: 1, FLLast: 4, FLCount: 4, FreeBlks: 100, Longest: 50,
			UUID: g.MetaUUID, RefcountRoot: 5, RefcountLevel: 1, RefcountBlocks: 1}).Encode(b)
		return b
	})
	f.Add(make([]byte, agfSize-1))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAGF(data)
		if err != nil {
			if len(data) >= agfSize {
				t.Fatalf("DecodeAGF(%d bytes): %v", len(data), err)
			}
			return
		}
		verr := a.Verify(g, a.SeqNo)
		_ = a.VerifyFeatures(sb)
		_ = a.Fields(sb).String()
		out := bytes.Clone(data)
		a.Encode(out)
		if !a.CRCOK() || !agSameExceptCRC(out, data, AGFCRCOff) {
			t.Fatalf("Encode(Decode(b)) changed bytes other than the CRC")
		}
		if verr == nil && !bytes.Equal(out, data) {
			t.Fatalf("a verified AGF does not re-encode to its bytes")
		}
		again, _ := DecodeAGF(out)
		if *again != *a {
			t.Fatalf("decode after encode: %+v, want %+v", again, a)
		}
	})
}

func FuzzDecodeAGI(f *testing.F) {
	sb, g, img := agFuzzImage(f)
	agAddSectorSeeds(f, g, img, g.AGIDaddr, func() []byte {
		b := make([]byte, 512)
		a := &AGI{MagicNum: AGIMagic, VersionNum: 1, SeqNo: 1, Length: g.AGBlocks, Root: 3, Level: 1,
			NewIno: NullAGIno, DirIno: NullAGIno, UUID: g.MetaUUID, FreeRoot: 4, FreeLevel: 1, IBlocks: 1, FBlocks: 1}
		for i := range a.Unlinked {
			a.Unlinked[i] = NullAGIno
		}
		a.Encode(b)
		return b
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAGI(data)
		if err != nil {
			if len(data) >= agiSize {
				t.Fatalf("DecodeAGI(%d bytes): %v", len(data), err)
			}
			return
		}
		verr := a.Verify(g, a.SeqNo, sb)
		_ = a.Fields(sb).String()
		out := bytes.Clone(data)
		a.Encode(out)
		if !agSameExceptCRC(out, data, AGICRCOff) {
			t.Fatalf("Encode(Decode(b)) changed bytes other than the CRC")
		}
		if verr == nil && !bytes.Equal(out, data) {
			t.Fatalf("a verified AGI does not re-encode to its bytes")
		}
		again, _ := DecodeAGI(out)
		if *again != *a {
			t.Fatalf("decode after encode: %+v, want %+v", again, a)
		}
	})
}

func FuzzDecodeAGFL(f *testing.F) {
	_, g, img := agFuzzImage(f)
	var seeds [][]byte
	if img != "" {
		for agno := range g.AGCount {
			seeds = append(seeds, agReadAt(f, img, g.AGFLDaddr(agno)<<BBShift, g.SectSize))
		}
	} else {
		b := make([]byte, 512)
		a := &AGFL{MagicNum: AGFLMagic, SeqNo: 1, UUID: g.MetaUUID, Bno: make([]uint32, g.AGFLSize())}
		for i := range a.Bno {
			a.Bno[i] = NullAGBlock
		}
		a.Bno[1], a.Bno[2], a.Bno[3], a.Bno[4] = 6, 7, 8, 9
		a.Encode(b)
		seeds = append(seeds, b)
	}
	for _, s := range seeds {
		f.Add(s, uint32(1), uint32(4), uint32(4), g.AGBlocks)
		f.Add(s, uint32(117), uint32(2), uint32(5), g.AGBlocks)
	}
	f.Fuzz(func(t *testing.T, data []byte, first, last, count, length uint32) {
		a, err := DecodeAGFL(data)
		if err != nil {
			if len(data) >= AGFLHeaderSize+4 {
				t.Fatalf("DecodeAGFL(%d bytes): %v", len(data), err)
			}
			return
		}
		if want := (len(data) - AGFLHeaderSize) / 4; len(a.Bno) != want {
			t.Fatalf("%d slots from %d bytes, want %d", len(a.Bno), len(data), want)
		}
		verr := a.Verify(g, a.SeqNo)
		_ = a.Fields().String()
		agf := &AGF{SeqNo: a.SeqNo, FLFirst: first, FLLast: last, FLCount: count, Length: length}
		if act, err := a.Active(agf); err == nil {
			if uint32(len(act)) != count {
				t.Fatalf("Active returned %d blocks, want flcount %d", len(act), count)
			}
			for _, b := range act {
				if b == NullAGBlock || b >= length {
					t.Fatalf("Active returned block %d of an AG of %d", b, length)
				}
			}
		}
		out := bytes.Clone(data)
		a.Encode(out)
		if !agSameExceptCRC(out, data, AGFLCRCOff) {
			t.Fatalf("Encode(Decode(b)) changed bytes other than the CRC")
		}
		if verr == nil && !bytes.Equal(out, data) {
			t.Fatalf("a verified AGFL does not re-encode to its bytes")
		}
	})
}

func FuzzDecodeBtreeBlock(f *testing.F) {
	sb, g, img := agFuzzImage(f, "-m", "rmapbt=1")
	if img != "" {
		for agno := range g.AGCount {
			agf, _ := DecodeAGF(agReadAt(f, img, g.AGFDaddr(agno)<<BBShift, g.SectSize))
			agi, _ := DecodeAGI(agReadAt(f, img, g.AGIDaddr(agno)<<BBShift, g.SectSize))
			for _, root := range []uint32{agf.BnoRoot, agf.CntRoot, agf.RmapRoot, agf.RefcountRoot, agi.Root, agi.FreeRoot} {
				blk := agReadAt(f, img, g.AGBDaddr(agno, root)<<BBShift, g.BlockSize)
				f.Add(blk, false)
				// The same block as a node, so keys and pointers render.
				node := bytes.Clone(blk)
				node[5] = 1
				f.Add(node, false)
			}
		}
	}
	// A long-form block of 3 records.
	long := make([]byte, 4096)
	h := &BtreeBlock{Magic: BmapMagic, NumRecs: 3, LeftSib: NullFSBlock, RightSib: NullFSBlock, Blkno: 800,
		UUID: g.MetaUUID, Owner: 131, Long: true}
	h.Encode(long)
	for i := range 3 {
		off := BtreeRecOff(true, BmbtRecSize, i)
		long[off+7] = byte(i * 2)
		long[off+15] = 1
	}
	StampBtreeCRC(long, true)
	f.Add(long, true)
	f.Fuzz(func(t *testing.T, data []byte, long bool) {
		h, err := DecodeBtreeBlock(data, long)
		if err != nil {
			if len(data) >= BtreeHeaderSize(long) {
				t.Fatalf("DecodeBtreeBlock(%d bytes): %v", len(data), err)
			}
			return
		}
		c := BlockCheck{Magic: h.Magic, Daddr: int64(h.Blkno), Owner: h.Owner, UUID: g.MetaUUID, Level: -1,
			MaxRecs: AllocMaxRecs(len(data), h.Level == 0), MinRecs: 1, Geo: g}
		verr := h.Verify(data, c)
		_ = h.Fields(data, sb).String()
		sparseOff := *sb
		sparseOff.FeaturesIncompat &^= IncompatSpinodes
		_ = h.Fields(data, &sparseOff).String()
		out := bytes.Clone(data)
		h.Encode(out)
		if !bytes.Equal(out, data) {
			t.Fatalf("Encode(Decode(b)) changed the header")
		}
		if verr == nil {
			StampBtreeCRC(out, long)
			if !bytes.Equal(out, data) {
				t.Fatalf("a verified block changed when its CRC was re-stamped")
			}
		}
	})
}
