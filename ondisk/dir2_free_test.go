package ondisk_test

import (
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

func FuzzDecodeDirFree(f *testing.F) {
	ss := fuzzSeeds(f, kindFree)
	g := fuzzGeometry(ss)
	for _, b := range ss {
		f.Add(b.buf)
	}
	syn := make([]byte, 512)
	fr := &ondisk.DirFree{Hdr: ondisk.Dir3BlkHdr{Magic: ondisk.Dir3FreeMagic, Blkno: 8, Owner: 128},
		NUsed: 2, Bests: []uint16{0x28, ondisk.DirNullDataOff, 0x570}}
	if err := fr.Encode(syn); err != nil {
		f.Fatal(err)
	}
	f.Add(syn)
	f.Fuzz(func(t *testing.T, buf []byte) {
		fr, err := ondisk.DecodeDirFree(buf)
		if err != nil {
			return
		}
		_ = fr.Fields().String()
		gg := *g
		gg.DirBlkSize, gg.MetaUUID = len(buf), fr.Hdr.UUID
		c, ok := selfVerify(buf, [][2]int{{60, 64}}, ondisk.Dir3BlkHdrCRCOff, func(c []byte) error {
			fr, err = ondisk.DecodeDirFree(c)
			if err != nil {
				t.Fatalf("decodes with the CRC stamped: %v", err)
			}
			return fr.Verify(c, &gg, fr.Hdr.Owner, int64(fr.Hdr.Blkno))
		})
		if !ok {
			return
		}
		checkRoundTrip(t, "fuzzed free block", c, fr.Encode, freeUndefined(fr, len(c)), ondisk.Dir3BlkHdrCRCOff)
	})
}
