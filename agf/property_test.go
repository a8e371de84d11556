package agf_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// longTests scales the property tests up (XFSIMG_LONG=N multiplies the
// operation counts by N).
func longTests() int {
	if n, err := strconv.Atoi(os.Getenv("XFSIMG_LONG")); err == nil && n > 1 {
		return n
	}
	return 1
}

type opStats struct {
	allocs, noSpace, exactMiss, frees, partialFrees, lockOrder int
}

// randomRequest makes a request of a random kind: near a random target,
// by size (target block 0 of an AG), or exact.
func randomRequest(r *rand.Rand, g *ondisk.Geometry, small bool) agf.Request {
	agno := uint32(r.IntN(int(g.AGCount)))
	size := g.AGSize(agno)
	req := agf.Request{MinLen: 1 + uint32(r.IntN(8))}
	if !small && r.IntN(20) == 0 {
		req.MinLen = 1 + uint32(r.IntN(int(size/8)))
	}
	req.MaxLen = req.MinLen + uint32(r.IntN(64))
	if r.IntN(10) == 0 {
		req.MaxLen = req.MinLen + uint32(r.IntN(int(size/4)))
	}
	req.Align = []uint32{0, 1, 1, 1, 2, 4, 8, 16}[r.IntN(8)]
	if r.IntN(5) == 0 {
		req.MinLeft = uint32(r.IntN(200))
	}
	req.Metadata = r.IntN(4) == 0
	switch k := r.IntN(10); {
	case k < 6:
		req.Target = g.FSB(agno, 1+uint32(r.IntN(int(size-1))))
	case k < 8:
		req.Target = g.FSB(agno, 0)
	default:
		req.Target = g.FSB(agno, 1+uint32(r.IntN(int(size-1))))
		req.Exact = true
		req.MaxLen = req.MinLen + uint32(r.IntN(16))
	}
	return req
}

// doAlloc runs one request and checks the answer against the request and
// the model.
func doAlloc(t testing.TB, a *agf.Allocator, m *model, req agf.Request, st *opStats) error {
	g := m.g
	fsb, n, err := a.Alloc(req)
	if errors.Is(err, ondisk.ErrNoSpace) {
		st.noSpace++
		return nil
	}
	if err != nil {
		return fmt.Errorf("%+v: %w", req, err)
	}
	if req.Exact && fsb == ondisk.NullFSBlock {
		if n != 0 {
			return fmt.Errorf("%+v: exact miss with length %d", req, n)
		}
		st.exactMiss++
		return nil
	}
	st.allocs++
	agbno := g.FSBAgbno(fsb)
	switch {
	case n < req.MinLen || n > req.MaxLen:
		return fmt.Errorf("%+v: got %d blocks", req, n)
	case req.Exact && fsb != req.Target:
		return fmt.Errorf("%+v: exact allocation at %d", req, fsb)
	case !req.Exact && req.Align > 1 && agbno%req.Align != 0:
		return fmt.Errorf("%+v: block %d not aligned", req, agbno)
	case uint64(agbno)+uint64(n) > uint64(g.AGSize(g.FSBAgno(fsb))):
		return fmt.Errorf("%+v: [%d, %d] runs off the AG", req, agbno, n)
	}
	return m.take(fsb, n)
}

// doFree frees a random held extent, or a random part of it.
func doFree(r *rand.Rand, a *agf.Allocator, m *model, st *opStats) error {
	if len(m.exts) == 0 {
		return nil
	}
	i := r.IntN(len(m.exts))
	e := m.exts[i]
	m.exts[i] = m.exts[len(m.exts)-1]
	m.exts = m.exts[:len(m.exts)-1]
	off, n := uint32(0), e.n
	if e.n > 2 && r.IntN(3) == 0 {
		off = uint32(r.IntN(int(e.n - 1)))
		n = 1 + uint32(r.IntN(int(e.n-off-1)))
		st.partialFrees++
	}
	if err := a.Free(e.fsb+uint64(off), n); err != nil {
		if errors.Is(err, agf.ErrLockOrder) {
			// The transaction holds a higher AG: free it later.
			st.lockOrder++
			m.exts = append(m.exts, e)
			return nil
		}
		return fmt.Errorf("free [%d+%d, %d] of %+v: %w", e.fsb, off, n, e, err)
	}
	m.give(e.fsb+uint64(off), n)
	if off > 0 {
		m.exts = append(m.exts, ext{e.fsb, off})
	}
	if rest := e.n - off - n; rest > 0 {
		m.exts = append(m.exts, ext{e.fsb + uint64(off+n), rest})
	}
	st.frees++
	return nil
}

// runRandom runs batches of random allocations and frees, each batch one
// transaction, checking the model after each and xfs_repair every
// repairEvery batches. A free in an AG below one the batch already locked
// is refused with ErrLockOrder; the test keeps the extent for later.
func runRandom(t *testing.T, w *wfs, seed uint64, batches, perBatch, repairEvery int, small bool) (*wfs, *model, opStats) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := newModel(t, w)
	var st opStats
	for b := 0; b < batches; b++ {
		if err := randomBatch(t, w, r, m, &st, perBatch, small); err != nil {
			t.Fatalf("seed %d batch %d: %v", seed, b, err)
		}
		m.check(t, w)
		if repairEvery > 0 && (b+1)%repairEvery == 0 && w.img != "" {
			w.close()
			oracle.RequireRepairClean(t, w.img)
			w = w.reopen()
		}
	}
	t.Logf("seed %d: %+v", seed, st)
	return w, m, st
}

// randomBatch runs perBatch random allocations and frees in one
// transaction.
func randomBatch(t testing.TB, w *wfs, r *rand.Rand, m *model, st *opStats, perBatch int, small bool) error {
	return w.tx(w.j.FreeBlocks()-int64(w.g.AGCount)*8, func(a *agf.Allocator) error {
		for k := 0; k < perBatch; k++ {
			if r.IntN(100) < 40 {
				if err := doFree(r, a, m, st); err != nil {
					return err
				}
				continue
			}
			if err := doAlloc(t, a, m, randomRequest(r, w.g, small), st); err != nil {
				return err
			}
		}
		return nil
	})
}

// Random allocations and frees of every kind on several geometries.
func TestRandomAllocFree(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	geos := []struct {
		name    string
		fixture string
		mkfs    []string
	}{
		{name: "4k-default"},
		{name: "freesp-1k", fixture: "freesp-1k"},
		{name: "multi-ag", fixture: "multi-ag"}, // 16 AGs, 4 KiB sectors
		{name: "4k-inode1k", mkfs: []string{"-i", "size=1024", "-d", "agcount=3"}},
		{name: "1k-agcount2", mkfs: []string{"-b", "size=1024", "-d", "agcount=2"}},
	}
	for i, geo := range geos {
		t.Run(geo.name, func(t *testing.T) {
			var img string
			if geo.fixture != "" {
				img = images.Extract(t, geo.fixture)
			} else {
				img = oracle.Mkfs(t, 300<<20, geo.mkfs...)
			}
			w := openImage(t, img)
			n := longTests()
			w, _, _ = runRandom(t, w, uint64(1000+i), 40*n, 50, 10, false)
			w.close()
			oracle.RequireRepairClean(t, img)
		})
	}
}

// The fragmented 1 KiB fixture's two-level trees grow to three levels
// when every other block of its one big free extent in AG 0 is allocated,
// and shrink back (joins, root collapse) when the blocks are freed in
// random order. The model holds after every transaction; xfs_repair at the
// peak and at the end.
func TestTreesGrowAndShrink(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	img := images.Extract(t, "freesp-1k")
	w := openImage(t, img)
	m := newModel(t, w)
	g := w.g
	views := m.check(t, w)
	v := views[0]
	if v.agf.BnoLevel != 2 || v.agf.CntLevel != 2 {
		t.Fatalf("fixture trees at levels %d/%d, want 2", v.agf.BnoLevel, v.agf.CntLevel)
	}
	var big ondisk.AllocRec
	for _, r := range v.bno {
		if r.BlockCount > big.BlockCount {
			big = r
		}
	}
	const perTx = 1000
	next := big.StartBlock + 1
	grown := false
	for !grown {
		if err := w.tx(perTx, func(a *agf.Allocator) error {
			for k := 0; k < perTx; k++ {
				fsb, n, err := a.Alloc(agf.Request{Target: g.FSB(0, next), MinLen: 1, MaxLen: 1, Exact: true})
				if err != nil {
					return err
				}
				if fsb != g.FSB(0, next) || n != 1 {
					return fmt.Errorf("exact allocation at %d: got %d+%d", next, fsb, n)
				}
				if err := m.take(fsb, n); err != nil {
					return err
				}
				next += 2
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		v = m.check(t, w)[0]
		grown = v.agf.BnoLevel == 3 && v.agf.CntLevel == 3
		if next > big.StartBlock+big.BlockCount-2*perTx {
			t.Fatalf("trees still at levels %d/%d with %d extents", v.agf.BnoLevel, v.agf.CntLevel, len(v.bno))
		}
	}
	t.Logf("three levels at %d free extents, %d tree blocks, AGFL %d", len(v.bno), len(v.treeBlocks), len(v.agfl))
	w.close()
	oracle.RequireRepairClean(t, img)
	w = w.reopen()

	r := rand.New(rand.NewPCG(7, 11))
	r.Shuffle(len(m.exts), func(i, j int) { m.exts[i], m.exts[j] = m.exts[j], m.exts[i] })
	for len(m.exts) > 0 {
		if err := w.tx(0, func(a *agf.Allocator) error {
			for k := 0; k < perTx && len(m.exts) > 0; k++ {
				e := m.exts[len(m.exts)-1]
				m.exts = m.exts[:len(m.exts)-1]
				if err := a.Free(e.fsb, e.n); err != nil {
					return err
				}
				m.give(e.fsb, e.n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		v = m.check(t, w)[0]
	}
	if v.agf.BnoLevel != 2 || v.agf.CntLevel != 2 {
		t.Fatalf("after freeing everything the trees are at levels %d/%d, want 2", v.agf.BnoLevel, v.agf.CntLevel)
	}
	t.Logf("back to %d free extents, %d tree blocks, AGFL %d", len(v.bno), len(v.treeBlocks), len(v.agfl))
	w.close()
	oracle.RequireRepairClean(t, img)
}
