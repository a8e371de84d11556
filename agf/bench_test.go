package agf_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Benchmarks of one allocation (and the free that undoes it, so that the
// free space stays the same), each in its own transaction, in an AG whose
// free space is n one-block extents: 1 KiB blocks, every other block of a
// run of 2n freed through Free, on an in-memory image. The cost should
// grow with the height of the trees, log n. The metadata variants leave
// out busy-extent trimming (the blocks each iteration frees are busy for
// file data until two checkpoints have passed; a data allocation by size
// walks past them all, as the kernel's does, so its cost follows the
// number of recent frees rather than the free space).

var (
	benchOnce sync.Once
	benchBase []byte // the mkfs'd image
	benchErr  error
)

func benchImage(b *testing.B) []byte {
	benchOnce.Do(func() {
		oracle.Require(b, oracle.Xfsprogs)
		dir, err := os.MkdirTemp("", "agfbench")
		if err != nil {
			benchErr = err
			return
		}
		defer os.RemoveAll(dir)
		img := dir + "/b.img"
		oracle.MkfsAt(b, img, 500<<20, "-b", "size=1024", "-d", "agcount=2")
		benchBase, benchErr = os.ReadFile(img)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchBase
}

type benchFS struct {
	w     *wfs
	start uint32 // first block of the fragmented run in AG 0
	n     int    // free extents made
}

var benchFSs = map[int]*benchFS{}

// fragmented returns an in-memory file system whose AG 0 has n one-block
// free extents (and a handful mkfs left).
func fragmented(b *testing.B, n int) *benchFS {
	if f := benchFSs[n]; f != nil {
		return f
	}
	data := append([]byte(nil), benchImage(b)...)
	w := openStorage(b, ondisk.NewMemDevice(data))
	g := w.g
	v := readAG(b, w.reader(), 0)
	var fsb uint64
	if err := w.tx(int64(v.agf.Longest), func(a *agf.Allocator) error {
		var err error
		fsb, _, err = a.Alloc(agf.Request{Target: g.FSB(0, 1), MinLen: uint32(2 * n), MaxLen: uint32(2 * n), Metadata: true})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; {
		if err := w.tx(0, func(a *agf.Allocator) error {
			for k := 0; k < 2000 && i < n; k, i = k+1, i+1 {
				if err := a.Free(fsb+uint64(2*i), 1); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	// Let the frees settle so that file data may use them: a transaction
	// that locks the AG dates them, two checkpoints put them in place.
	tx, err := w.j.Begin(log.Reservation{Blocks: 1})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := agf.NewAllocator(tx, g).Alloc(agf.Request{Target: g.FSB(0, 1), MinLen: 1, MaxLen: 1}); err != nil {
		b.Fatal(err)
	}
	tx.Cancel()
	for k := 0; k < 2; k++ {
		bumpCheckpointB(b, w)
	}
	v = readAG(b, w.reader(), 0)
	// The AGFL refills took a few of the one-block extents.
	if len(v.bno) < n*97/100 {
		b.Fatalf("%d free extents, want %d", len(v.bno), n)
	}
	f := &benchFS{w: w, start: g.FSBAgbno(fsb), n: n}
	benchFSs[n] = f
	b.Logf("ag 0: %d free extents, bnobt/cntbt levels %d/%d", len(v.bno), v.agf.BnoLevel, v.agf.CntLevel)
	return f
}

func bumpCheckpointB(b *testing.B, w *wfs) {
	tx, err := w.j.Begin(log.Reservation{})
	if err != nil {
		b.Fatal(err)
	}
	sb, err := tx.ReadBuf(0, w.g.SectSize, log.BufSB)
	if err != nil {
		b.Fatal(err)
	}
	tx.LogBuf(sb, 0, 128)
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := w.j.Checkpoint(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAlloc(b *testing.B) {
	modes := []struct {
		name string
		req  func(f *benchFS, r *rand.Rand) agf.Request
	}{
		// Near a random block of the run, for file data.
		{"near", func(f *benchFS, r *rand.Rand) agf.Request {
			return agf.Request{Target: f.w.g.FSB(0, f.start+uint32(r.IntN(2*f.n))), MinLen: 1, MaxLen: 1}
		}},
		// The same for a btree block (no busy-extent trimming).
		{"near-metadata", func(f *benchFS, r *rand.Rand) agf.Request {
			return agf.Request{Target: f.w.g.FSB(0, f.start+uint32(r.IntN(2*f.n))), MinLen: 1, MaxLen: 1, Metadata: true}
		}},
		// Exactly at a random free block of the run.
		{"exact-metadata", func(f *benchFS, r *rand.Rand) agf.Request {
			return agf.Request{Target: f.w.g.FSB(0, f.start+2*uint32(r.IntN(f.n))), MinLen: 1, MaxLen: 1, Exact: true, Metadata: true}
		}},
		// By size, anywhere in the AG (target block 0).
		{"size-metadata", func(f *benchFS, r *rand.Rand) agf.Request {
			return agf.Request{Target: f.w.g.FSB(0, 0), MinLen: 1, MaxLen: 1, Metadata: true}
		}},
	}
	for _, mode := range modes {
		for _, n := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/%dk", mode.name, n/1000), func(b *testing.B) {
				f := fragmented(b, n)
				w := f.w
				r := rand.New(rand.NewPCG(uint64(n), 1))
				misses := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					req := mode.req(f, r)
					if err := w.tx(1, func(a *agf.Allocator) error {
						fsb, length, err := a.Alloc(req)
						if err != nil {
							return err
						}
						if fsb == ondisk.NullFSBlock {
							// An exact target an AGFL refill took.
							misses++
							return nil
						}
						return a.Free(fsb, length)
					}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if misses > b.N/10 {
					b.Fatalf("%d of %d exact allocations missed", misses, b.N)
				}
			})
		}
	}
}
