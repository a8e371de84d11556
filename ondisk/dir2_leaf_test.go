package ondisk_test

import (
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

func FuzzDecodeDirLeaf(f *testing.F) {
	var ss []*dirBlock
	for _, k := range []string{kindLeaf1, kindLeafN} {
		ss = append(ss, fuzzSeeds(f, k)...)
	}
	g := fuzzGeometry(ss)
	for _, b := range ss {
		f.Add(b.buf)
	}
	syn := make([]byte, 512)
	l := &ondisk.DirLeaf{DA3BlkInfo: ondisk.DA3BlkInfo{Magic: ondisk.Dir3Leaf1Magic, Blkno: 8, Owner: 128},
		Ents: []ondisk.DirLeafEntry{{Hash: 0x2e, Address: 8}, {Hash: 0x172e, Address: 10}, {Hash: 0x172e}}, Stale: 1,
		Bests: []uint16{0x100}}
	if err := l.Encode(syn); err != nil {
		f.Fatal(err)
	}
	f.Add(syn)
	f.Fuzz(func(t *testing.T, buf []byte) {
		l, err := ondisk.DecodeDirLeaf(buf)
		if err != nil {
			return
		}
		if len(l.Ents) <= 64 { // Fields is costly; it only formats what decoded
			_ = l.Fields().String()
		}
		gg := *g
		gg.DirBlkSize, gg.MetaUUID = len(buf), l.UUID
		c, ok := selfVerify(buf, [][2]int{{10, 12}, {60, 64}}, ondisk.DA3BlkInfoCRCOff, func(c []byte) error {
			l, err = ondisk.DecodeDirLeaf(c)
			if err != nil {
				t.Fatalf("decodes with the CRC stamped: %v", err)
			}
			return l.Verify(c, &gg, l.Owner, int64(l.Blkno))
		})
		if !ok {
			return
		}
		checkRoundTrip(t, "fuzzed leaf", c, l.Encode, leafUndefined(l, len(c)), ondisk.DA3BlkInfoCRCOff)
	})
}
