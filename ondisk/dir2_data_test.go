package ondisk_test

import (
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// fuzzGeometry is the seed image's geometry, or a synthetic one.
func fuzzGeometry(seeds []*dirBlock) *ondisk.Geometry {
	if len(seeds) > 0 {
		return seeds[0].g
	}
	return synthGeometry()
}

// selfVerify restamps the CRC of a fuzzed block after zeroing its header
// pads, and verifies it against its own identity (uuid, owner, blkno), so
// that fuzzing reaches the structural checks instead of stopping at the
// CRC. It returns the normalised buffer and whether it verified.
func selfVerify(buf []byte, pads [][2]int, crcOff int, verify func(c []byte) error) ([]byte, bool) {
	c := zeroRanges(buf, pads)
	ondisk.StampCRC(c, crcOff)
	return c, verify(c) == nil
}

func FuzzDecodeDirDataBlock(f *testing.F) {
	var ss []*dirBlock
	for _, k := range []string{kindBlock, kindData} {
		ss = append(ss, fuzzSeeds(f, k)...)
	}
	g := fuzzGeometry(ss)
	for _, b := range ss {
		f.Add(b.buf, true)
	}
	// A synthetic empty data block: header and one unused region.
	syn := make([]byte, 512)
	d := &ondisk.DirDataBlock{Hdr: ondisk.Dir3BlkHdr{Magic: ondisk.Dir3DataMagic, Blkno: 8, Owner: 128},
		BestFree: [3]ondisk.DirBestFree{{Offset: 64, Length: 448}}, Unused: []ondisk.DirDataUnused{{Off: 64, Length: 448}}}
	if err := d.Encode(syn, false); err != nil {
		f.Fatal(err)
	}
	f.Add(syn, false)
	f.Fuzz(func(t *testing.T, buf []byte, hasFType bool) {
		d, err := ondisk.DecodeDirDataBlock(buf, hasFType)
		if err != nil {
			return
		}
		if len(d.Entries)+len(d.Unused)+len(d.Leaf) <= 64 { // Fields is costly; it only formats what decoded
			_ = d.Fields(hasFType).String()
		}
		gg := *g
		gg.DirBlkSize, gg.HasFType, gg.MetaUUID = len(buf), hasFType, d.Hdr.UUID
		c, ok := selfVerify(buf, [][2]int{{60, 64}}, ondisk.Dir3BlkHdrCRCOff, func(c []byte) error {
			d, err = ondisk.DecodeDirDataBlock(c, hasFType)
			if err != nil {
				t.Fatalf("decodes with the CRC stamped: %v", err)
			}
			return d.Verify(c, &gg, d.Hdr.Owner, int64(d.Hdr.Blkno))
		})
		if !ok {
			return
		}
		checkRoundTrip(t, "fuzzed data block", c, func(b []byte) error { return d.Encode(b, hasFType) },
			dataUndefined(d, hasFType), ondisk.Dir3BlkHdrCRCOff)
	})
}

// A fuzzer found this: eight bytes left at the end of the data area that
// are not an unused region must be refused before the name length (at
// byte 8 of an entry) is read past the block.
func TestDecodeDirDataBlockShortTail(t *testing.T) {
	buf := make([]byte, 512)
	d := &ondisk.DirDataBlock{Hdr: ondisk.Dir3BlkHdr{Magic: ondisk.Dir3DataMagic, Blkno: 8, Owner: 128},
		BestFree: [3]ondisk.DirBestFree{{Offset: 64, Length: 440}}, Unused: []ondisk.DirDataUnused{{Off: 64, Length: 440}}}
	if err := d.Encode(buf, true); err != nil {
		t.Fatal(err)
	}
	buf[504] = 1 // the last 8 bytes: not a free tag, "namelen" would be at 512
	_, err := ondisk.DecodeDirDataBlock(buf, true)
	mustCorrupt(t, "8 stray bytes at the end", err)
	_, err = ondisk.DecodeDirDataBlock(buf, false)
	mustCorrupt(t, "8 stray bytes at the end, no ftype", err)
}
