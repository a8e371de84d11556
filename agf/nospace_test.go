package agf_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Requests no AG can satisfy fail with ErrNoSpace, and after Cancel and
// Close the image is byte for byte what it was.
func TestNoSpaceLeavesImageUnchanged(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	for _, name := range []string{"mkfs-4k", "freesp-1k"} {
		t.Run(name, func(t *testing.T) {
			var img string
			if name == "freesp-1k" {
				img = images.Extract(t, name)
			} else {
				img = oracle.Mkfs(t, 300<<20)
			}
			before := fileHash(t, img)
			w := openImage(t, img)
			f := w.reader()
			var longest, free uint32
			for agno := uint32(0); agno < w.g.AGCount; agno++ {
				v := readAG(t, f, agno)
				longest = max(longest, v.agf.Longest)
				free += v.agf.FreeBlks
			}
			g := w.g
			tx, err := w.j.Begin(log.Reservation{Blocks: w.j.FreeBlocks() - int64(g.AGCount)*8})
			if err != nil {
				t.Fatal(err)
			}
			a := agf.NewAllocator(tx, g)
			for _, req := range []agf.Request{
				{Target: g.FSB(0, 100), MinLen: longest + 1, MaxLen: longest + 1},         // longer than any free extent
				{Target: g.FSB(1, 0), MinLen: longest + 1, MaxLen: 2 * longest},           // by size
				{Target: g.FSB(0, 100), MinLen: free + 1, MaxLen: free + 1},               // more than all free space
				{Target: g.FSB(2, 10), MinLen: 1, MaxLen: 10, MinLeft: free},              // nothing may be left over
				{Target: g.FSB(0, 100), MinLen: longest, MaxLen: longest, Align: longest}, // alignment slop does not fit
			} {
				if _, _, err := a.Alloc(req); !errors.Is(err, ondisk.ErrNoSpace) {
					t.Errorf("%+v: got %v, want ErrNoSpace", req, err)
				}
			}
			tx.Cancel()
			w.close()
			if after := fileHash(t, img); after != before {
				t.Fatal("the image changed")
			}
		})
	}
}

// fragmentAG allocates AG agno's free space in chunks of 100 blocks, then
// frees the last 20 of each, leaving only extents shorter than 100 blocks.
func fragmentAG(t *testing.T, w *wfs, m *model, agno uint32) {
	t.Helper()
	g := w.g
	var chunks []uint64
	for done := false; !done; {
		if err := w.tx(100*100, func(a *agf.Allocator) error {
			for k := 0; k < 100; k++ {
				fsb, n, err := a.Alloc(agf.Request{Target: g.FSB(agno, 0), MinLen: 100, MaxLen: 100})
				if errors.Is(err, ondisk.ErrNoSpace) {
					// Holding this AG, the last one cannot wrap.
					done = true
					return nil
				}
				if err != nil {
					return err
				}
				if g.FSBAgno(fsb) != agno {
					done = true
					return a.Free(fsb, n)
				}
				chunks = append(chunks, fsb)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.tx(0, func(a *agf.Allocator) error {
		for i, fsb := range chunks {
			if i == len(chunks)-1 {
				// Its tail would join what is left at the AG's end.
				return m.take(fsb, 100)
			}
			if err := a.Free(fsb+80, 20); err != nil {
				return err
			}
			if err := m.take(fsb, 80); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v := readAG(t, w.reader(), agno); v.agf.Longest >= 100 || v.agf.FreeBlks < 100 {
		t.Fatalf("ag %d: longest %d, freeblks %d after fragmenting", agno, v.agf.Longest, v.agf.FreeBlks)
	}
}

// A request the target AG cannot satisfy lands in the next AG that can,
// wrapping past the last AG; a transaction that holds a higher AG never
// goes back to a lower one.
func TestAllocAcrossAGs(t *testing.T) {
	img := oracle.Mkfs(t, 300<<20) // 4 AGs
	w := openImage(t, img)
	m := newModel(t, w)
	g := w.g
	fragmentAG(t, w, m, 1)
	fragmentAG(t, w, m, 3)
	m.check(t, w)
	type step struct {
		req    agf.Request
		wantAG uint32
	}
	run := func(steps ...step) {
		t.Helper()
		if err := w.tx(1000, func(a *agf.Allocator) error {
			for _, s := range steps {
				fsb, n, err := a.Alloc(s.req)
				if err != nil {
					return err
				}
				if got := g.FSBAgno(fsb); got != s.wantAG {
					t.Errorf("%+v: AG %d, want %d", s.req, got, s.wantAG)
				}
				if err := m.take(fsb, n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// AG 1 is too fragmented for 100 blocks: AG 2 takes it.
	run(step{agf.Request{Target: g.FSB(1, 500), MinLen: 100, MaxLen: 100}, 2})
	// AG 3 cannot either: wrap round to AG 0.
	run(step{agf.Request{Target: g.FSB(3, 500), MinLen: 100, MaxLen: 100}, 0})
	// Small requests stay in the target AG.
	run(step{agf.Request{Target: g.FSB(1, 500), MinLen: 1, MaxLen: 4}, 1})
	// Holding AG 2, a request aimed at AG 0 stays at AG 2 or above, and
	// one AG 3 cannot satisfy does not wrap below AG 2.
	run(
		step{agf.Request{Target: g.FSB(2, 100), MinLen: 1, MaxLen: 1}, 2},
		step{agf.Request{Target: g.FSB(0, 100), MinLen: 1, MaxLen: 1}, 2},
		step{agf.Request{Target: g.FSB(3, 100), MinLen: 100, MaxLen: 100}, 2},
	)
	// Holding AG 3 (it can take small requests), a request for 100 blocks
	// finds no AG at or above 3 and fails rather than lock AG 0.
	if err := w.tx(1000, func(a *agf.Allocator) error {
		fsb, n, err := a.Alloc(agf.Request{Target: g.FSB(3, 100), MinLen: 1, MaxLen: 1})
		if err != nil {
			return err
		}
		if err := m.take(fsb, n); err != nil {
			return err
		}
		if _, _, err := a.Alloc(agf.Request{Target: g.FSB(0, 100), MinLen: 100, MaxLen: 100}); !errors.Is(err, ondisk.ErrNoSpace) {
			t.Errorf("holding AG 3, a request AG 3 cannot take: %v, want ErrNoSpace", err)
		}
		// Freeing in AG 0 would take its lock out of order.
		if err := a.Free(g.FSB(0, 100), 1); !errors.Is(err, agf.ErrLockOrder) {
			t.Errorf("free below a held AG: %v, want ErrLockOrder", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Exact allocations: in an AG the transaction holds, even below its
	// highest, they go ahead; in a lower AG it does not hold they fail.
	if err := w.tx(1000, func(a *agf.Allocator) error {
		fsb2, n2, err := a.Alloc(agf.Request{Target: g.FSB(2, 3000), MinLen: 1, MaxLen: 1})
		if err != nil {
			return err
		}
		if err := m.take(fsb2, n2); err != nil {
			return err
		}
		fsb3, n3, err := a.Alloc(agf.Request{Target: g.FSB(3, 100), MinLen: 1, MaxLen: 1})
		if err != nil || g.FSBAgno(fsb3) != 3 {
			t.Fatalf("small request in AG 3: %d, %v", fsb3, err)
		}
		if err := m.take(fsb3, n3); err != nil {
			return err
		}
		fsb, n, err := a.Alloc(agf.Request{Target: fsb2 + 1, MinLen: 1, MaxLen: 1, Exact: true})
		if err != nil || fsb != fsb2+1 {
			t.Errorf("exact in held AG 2 below AG 3: %d, %v", fsb, err)
		} else if err := m.take(fsb, n); err != nil {
			return err
		}
		if fsb, _, err := a.Alloc(agf.Request{Target: g.FSB(0, 5000), MinLen: 1, MaxLen: 1, Exact: true}); err != nil || fsb != ondisk.NullFSBlock {
			t.Errorf("exact in AG 0 below held AG 3: %d, %v", fsb, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.check(t, w)
	w.close()
	oracle.RequireRepairClean(t, img)
}

// Transactions in different AGs run at once; a transaction that holds AG 3
// and asks for space near AG 1 must stay at AG 3 or above, or two of them
// could deadlock against the ones that lock AG 1 then AG 3. Run with
// -race.
func TestConcurrentAGs(t *testing.T) {
	img := oracle.Mkfs(t, 300<<20)
	w := openImage(t, img)
	m := newModel(t, w)
	g := w.g
	const rounds = 150
	var mu sync.Mutex // guards m
	worker := func(first, second uint32, wantSecondMin uint32) error {
		var held []ext
		for i := 0; i < rounds; i++ {
			err := w.tx(16, func(a *agf.Allocator) error {
				for k, agno := range []uint32{first, second} {
					fsb, n, err := a.Alloc(agf.Request{Target: g.FSB(agno, 1000+uint32(i)), MinLen: 1, MaxLen: 2})
					if err != nil {
						return err
					}
					if k == 1 && g.FSBAgno(fsb) < wantSecondMin {
						t.Errorf("holding AG %d, allocation went to AG %d", first, g.FSBAgno(fsb))
					}
					mu.Lock()
					err = m.take(fsb, n)
					mu.Unlock()
					if err != nil {
						return err
					}
					held = append(held, ext{fsb, n})
				}
				// Free the oldest extents that keep the lock order.
				for len(held) > 4 && g.FSBAgno(held[0].fsb) >= max(first, second) {
					e := held[0]
					if err := a.Free(e.fsb, e.n); err != nil {
						return err
					}
					mu.Lock()
					m.give(e.fsb, e.n)
					mu.Unlock()
					held = held[1:]
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		mu.Lock()
		m.exts = append(m.exts, held...)
		mu.Unlock()
		return nil
	}
	errs := make(chan error, 3)
	go func() { errs <- worker(1, 3, 3) }()
	go func() { errs <- worker(3, 1, 3) }()
	go func() { errs <- worker(0, 2, 2) }()
	timeout := time.After(60 * time.Second)
	for i := 0; i < 3; i++ {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("workers did not finish: deadlock?")
		}
	}
	// The model's blocks list was built by three writers; check it whole.
	m.check(t, w)
	w.close()
	oracle.RequireRepairClean(t, img)
}
