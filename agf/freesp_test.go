package agf

import (
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// AddPacked, the leaf-at-a-time path inspect freesp takes, bins exactly as
// AddOne does, including an empty record and lengths past the last bin.
func TestAddPackedMatchesAddOne(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxLen uint64
		counts []uint32
	}{
		{"empty", 1000, nil},
		{"ones", 1000, []uint32{1, 1, 1}},
		{"bin edges", 1 << 20, []uint32{1, 2, 3, 4, 7, 8, 15, 16, 1023, 1024, 1<<20 - 1}},
		{"past the last bin", 100, []uint32{64, 99, 100, 5000, 1 << 31, 1<<32 - 1}},
		{"damaged empty record", 1000, []uint32{0, 5, 0}},
		{"one-block AG", 1, []uint32{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one, packed := NewHistogram(tc.maxLen), NewHistogram(tc.maxLen)
			recs := make([]byte, len(tc.counts)*ondisk.AllocRecSize)
			for i, c := range tc.counts {
				one.AddOne(ondisk.AllocRec{StartBlock: uint32(i), BlockCount: c})
				binary.BigEndian.PutUint32(recs[i*ondisk.AllocRecSize:], uint32(i))
				binary.BigEndian.PutUint32(recs[i*ondisk.AllocRecSize+4:], c)
			}
			packed.AddPacked(recs)
			if one.Extents != packed.Extents || one.Blocks != packed.Blocks {
				t.Fatalf("totals: AddOne %d/%d, AddPacked %d/%d", one.Extents, one.Blocks, packed.Extents, packed.Blocks)
			}
			for i := range one.Buckets {
				if one.Buckets[i] != packed.Buckets[i] {
					t.Fatalf("bin %d: AddOne %+v, AddPacked %+v", i, one.Buckets[i], packed.Buckets[i])
				}
			}
		})
	}
}
