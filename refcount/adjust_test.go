package refcount_test

import (
	"slices"
	"testing"

	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The shared-extent layout every Adjust case starts from, made by the
// kernel: a and b share a's 64 blocks (S..S+64, count 2), c (1 MiB, all
// hole but one piece) shares a's blocks S+4..S+8 at file block 4 (count
// 3 there), and e owns 64 blocks T..T+64 alone but carries the reflink
// flag (it once shared them).
const adjustSetup = `
xfs_io -f -c 'pwrite -S 0x61 0 256k' -c fsync $M/a >/dev/null
cp --reflink=always $M/a $M/b
xfs_io -f -c 'truncate 1m' -c "reflink $M/a 16k 16k 16k" $M/c >/dev/null
xfs_io -f -c 'pwrite -S 0x65 0 256k' -c fsync $M/e >/dev/null
cp --reflink=always $M/e $M/e2
rm $M/e2
`

// op is one change a test makes in its own transaction: unmap file
// blocks [off, off+n) of file (dropping their counts), or map n blocks of
// src from its block srcOff at file block off of file (raising them).
type op struct {
	file      string
	off, n    uint64
	src       string
	srcOff    uint64
	wantFreed uint32 // blocks the unmap must free (count reached 0)
}

// rec is an expected record relative to S (base "a") or T (base "e").
type rec struct {
	base     string
	off, n   uint32
	refcount uint32
}

func TestAdjustKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	files := []string{"a", "b", "c", "e"}
	base, inos, data := kernelSetup(t, adjustSetup, files...)
	cases := []struct {
		name string
		ops  []op
		want []rec
	}{
		{"initial", nil, []rec{{"a", 0, 4, 2}, {"a", 4, 4, 3}, {"a", 8, 56, 2}}},
		{"split both edges, middle drops to 1", []op{{file: "b", off: 10, n: 10}},
			[]rec{{"a", 0, 4, 2}, {"a", 4, 4, 3}, {"a", 8, 2, 2}, {"a", 20, 44, 2}}},
		{"center merge", []op{{file: "c", off: 4, n: 4}},
			[]rec{{"a", 0, 64, 2}}},
		{"decrease merges left", []op{{file: "c", off: 4, n: 2}},
			[]rec{{"a", 0, 6, 2}, {"a", 6, 2, 3}, {"a", 8, 56, 2}}},
		{"records reaching 1 disappear", []op{{file: "b", off: 0, n: 64}},
			[]rec{{"a", 4, 4, 2}}},
		{"count 0 is freed", []op{{file: "b", off: 0, n: 64}, {file: "a", off: 0, n: 8, wantFreed: 4}},
			nil},
		{"increase a gap to 2, then merge left", []op{{file: "c", off: 32, n: 8, src: "e", srcOff: 0}, {file: "c", off: 40, n: 8, src: "e", srcOff: 8}},
			[]rec{{"a", 0, 4, 2}, {"a", 4, 4, 3}, {"a", 8, 56, 2}, {"e", 0, 16, 2}}},
		{"increase across records splits edges", []op{{file: "c", off: 100, n: 4, src: "a", srcOff: 2}},
			[]rec{{"a", 0, 2, 2}, {"a", 2, 2, 3}, {"a", 4, 2, 4}, {"a", 6, 2, 3}, {"a", 8, 56, 2}}},
		{"increase merges right", []op{{file: "c", off: 100, n: 4, src: "a", srcOff: 0}},
			[]rec{{"a", 0, 8, 3}, {"a", 8, 56, 2}}},
		{"increase merges center", []op{{file: "c", off: 100, n: 4, src: "a", srcOff: 0}, {file: "c", off: 104, n: 56, src: "a", srcOff: 8}},
			[]rec{{"a", 0, 64, 3}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := copyImage(t, base)
			w := openImage(t, img)
			g := w.g
			start := map[string]uint64{}
			for _, f := range []string{"a", "e"} {
				ext := w.extents(inos[f])
				if len(ext) != 1 || ext[0].BlockCount != 64 {
					t.Fatalf("%s: want one extent of 64 blocks, have %v", f, ext)
				}
				start[f] = ext[0].StartBlock
			}
			agno := g.FSBAgno(start["a"])
			if g.FSBAgno(start["e"]) != agno {
				t.Fatalf("a and e in different AGs")
			}
			want := map[string][]byte{}
			for f, b := range data {
				want[f] = slices.Clone(b)
			}
			bs := uint64(g.BlockSize)
			free0 := dbAGF(t, img, agno)["freeblks"]
			var freed uint32
			for _, o := range tc.ops {
				w.do(func(x *txn) error {
					if o.src == "" {
						if err := x.unmapShared(inos[o.file], o.off, o.n); err != nil {
							return err
						}
						freed += o.wantFreed
						clear(want[o.file][o.off*bs : (o.off+o.n)*bs])
						return nil
					}
					if err := x.mapShared(inos[o.file], o.off, start[o.src]+o.srcOff, o.n); err != nil {
						return err
					}
					copy(want[o.file][o.off*bs:(o.off+o.n)*bs], data[o.src][o.srcOff*bs:])
					return nil
				})
			}
			w.close()
			var wantRecs []ondisk.RefcountRec
			for _, r := range tc.want {
				wantRecs = append(wantRecs, ondisk.RefcountRec{StartBlock: g.FSBAgbno(start[r.base]) + r.off, BlockCount: r.n, RefCount: r.refcount})
			}
			if got := dbRefcounts(t, img, agno); !slices.Equal(got, wantRecs) {
				t.Errorf("xfs_db refcount records\n got %s\nwant %s", recsString(got), recsString(wantRecs))
			}
			if got := dbAGF(t, img, agno)["freeblks"]; got != free0+uint64(freed) {
				t.Errorf("agf freeblks %d, want %d + %d freed", got, free0, freed)
			}
			oracle.RequireRepairClean(t, img)
			checktest.RequireClean(t, img)
			got := kernelRead(t, img, files...)
			for _, f := range files {
				sameBytes(t, "kernel read of "+f, got[f], want[f])
			}
		})
	}
}
