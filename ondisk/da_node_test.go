package ondisk_test

import (
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

func FuzzDecodeDANode(f *testing.F) {
	ss := fuzzSeeds(f, kindNode)
	g := fuzzGeometry(ss)
	for _, b := range ss {
		f.Add(b.buf)
	}
	syn := make([]byte, 512)
	n := &ondisk.DANode{DA3BlkInfo: ondisk.DA3BlkInfo{Magic: ondisk.DA3NodeMagic, Blkno: 8, Owner: 128}, Level: 1,
		Ents: []ondisk.DANodeEntry{{Hash: 0x100, Before: 1 << 23}, {Hash: 0x200, Before: 1<<23 + 1}}}
	if err := n.Encode(syn); err != nil {
		f.Fatal(err)
	}
	f.Add(syn)
	f.Fuzz(func(t *testing.T, buf []byte) {
		n, err := ondisk.DecodeDANode(buf)
		if err != nil {
			return
		}
		_ = n.Fields().String()
		gg := *g
		gg.MetaUUID = n.UUID
		c, ok := selfVerify(buf, [][2]int{{10, 12}, {60, 64}}, ondisk.DA3BlkInfoCRCOff, func(c []byte) error {
			n, err = ondisk.DecodeDANode(c)
			if err != nil {
				t.Fatalf("decodes with the CRC stamped: %v", err)
			}
			return n.Verify(c, &gg, n.Owner, int64(n.Blkno))
		})
		if !ok {
			return
		}
		checkRoundTrip(t, "fuzzed node", c, n.Encode, nodeUndefined(n, len(c)), ondisk.DA3BlkInfoCRCOff)
	})
}
