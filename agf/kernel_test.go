package agf_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// freeExt is a free extent as (AG, block, length), the tools' common form.
type freeExt struct {
	agno, agbno, n uint32
}

func sortExts(e []freeExt) []freeExt {
	slices.SortFunc(e, func(a, b freeExt) int {
		if a.agno != b.agno {
			return int(a.agno) - int(b.agno)
		}
		return int(a.agbno) - int(b.agbno)
	})
	return e
}

// statfsFree mounts img read-only and returns the kernel's free block
// count and its fsmap of free space (the bnobt as the kernel reads it).
func kernelFree(t *testing.T, img string, g *ondisk.Geometry) (uint64, []freeExt) {
	t.Helper()
	var st syscall.Statfs_t
	var out string
	oracle.WithMount(t, img, func(dir string) {
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		out = oracle.Run(t, "xfs_io", "-c", "fsmap -d -m", dir)
	}, "ro")
	var exts []freeExt
	bbPerBlock := uint64(g.BlockSize / ondisk.BBSize)
	agBBs := uint64(g.AGBlocks) * bbPerBlock
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Split(line, ",")
		if len(f) < 9 || f[5] != "special_0:1" { // XFS_FMR_OWN_FREE
			continue
		}
		start, err1 := strconv.ParseUint(f[3], 10, 64)
		end, err2 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("fsmap line %q", line)
		}
		agno := start / agBBs
		if (end+1)/agBBs != agno && (end+1)%agBBs != 0 {
			t.Fatalf("fsmap free extent %q crosses an AG", line)
		}
		exts = append(exts, freeExt{uint32(agno), uint32(start % agBBs / bbPerBlock), uint32((end + 1 - start) / bbPerBlock)})
	}
	return st.Bfree, sortExts(exts)
}

// dbFreesp is xfs_db's freesp -d: every bnobt extent and every AGFL block.
func dbFreesp(t *testing.T, img string) []freeExt {
	t.Helper()
	var exts []freeExt
	for _, line := range strings.Split(oracle.DB(t, img, "freesp -d"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] == "agno" {
			continue
		}
		var v [3]uint32
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				t.Fatalf("freesp line %q", line)
			}
			v[i] = uint32(n)
		}
		exts = append(exts, freeExt{v[0], v[1], v[2]})
	}
	return sortExts(exts)
}

// After random allocations and frees, the kernel mounting the image sees
// the model's free space (fsmap reads the bnobt) and the free block count
// the counters imply; xfs_db's freesp lists the same extents and AGFL
// blocks.
func TestKernelAgrees(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for i, name := range []string{"mkfs-4k", "freesp-1k"} {
		t.Run(name, func(t *testing.T) {
			var img string
			if name == "freesp-1k" {
				img = images.Extract(t, name)
			} else {
				img = oracle.Mkfs(t, 300<<20)
			}
			w := openImage(t, img)
			g := w.g
			// The kernel holds back some free blocks from statfs (the
			// AGFL set-aside, per-AG reservations): learn how many on the
			// untouched image.
			sum := func(views []agView) (n uint64) {
				for _, v := range views {
					n += uint64(v.agf.FreeBlks) + uint64(v.agf.FLCount)
				}
				return n
			}
			m := newModel(t, w)
			before := sum(m.check(t, w))
			w.close()
			bfree0, _ := kernelFree(t, img, g)
			withheld := before - bfree0
			w = w.reopen()

			w, m, _ = runRandom(t, w, uint64(2000+i), 20, 50, 0, false)
			views := m.check(t, w)
			w.close()
			oracle.RequireRepairClean(t, img)

			var ours, oursFL []freeExt
			for agno, v := range views {
				for _, r := range v.bno {
					ours = append(ours, freeExt{uint32(agno), r.StartBlock, r.BlockCount})
				}
				for _, b := range v.agfl {
					oursFL = append(oursFL, freeExt{uint32(agno), b, 1})
				}
			}
			ours = sortExts(ours)
			bfree, kexts := kernelFree(t, img, g)
			if !slices.Equal(kexts, ours) {
				t.Errorf("kernel fsmap free space differs: %d extents, ours %d; %s", len(kexts), len(ours), firstExtDiff(kexts, ours))
			}
			if want := sum(views) - withheld; bfree != want {
				t.Errorf("statfs free blocks %d, want %d (%d held back)", bfree, want, withheld)
			}
			if db, want := dbFreesp(t, img), sortExts(append(slices.Clone(ours), oursFL...)); !slices.Equal(db, want) {
				t.Errorf("xfs_db freesp differs: %d extents, ours %d; %s", len(db), len(want), firstExtDiff(db, want))
			}
		})
	}
}

func firstExtDiff(a, b []freeExt) string {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d, %d", len(a), len(b))
}

// The near algorithm places a file's first extent where the kernel does:
// the kernel fallocates a new, empty file on a copy of the image; our
// allocator, asked what the kernel's bmap asks (target: the inode's
// block, minlen = maxlen = the length, minleft 1), must answer the same
// block on the same free space. The fragmented 1 KiB fixture gives the
// cntbt last-block scan, the bnobt/cntbt locality search and the
// closeness tie-breaks something to choose between.
func TestNearMatchesKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	base := images.Extract(t, "freesp-1k")
	dirs := []string{"/d0", "/d1", "/d2", "/d3"}
	inos := map[string]uint64{}
	oracle.WithMount(t, base, func(mnt string) {
		for _, d := range dirs {
			p := mnt + d + "/new"
			oracle.Run(t, "touch", p)
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			inos[d] = st.Ino
		}
	})
	for _, d := range dirs {
		for _, n := range []uint32{1, 3, 8, 13, 100, 3000} {
			t.Run(fmt.Sprintf("%s-%d", d[1:], n), func(t *testing.T) {
				img := t.TempDir() + "/k.img"
				oracle.Run(t, "cp", "--sparse=always", base, img)
				var bmap string
				oracle.WithMount(t, img, func(mnt string) {
					p := mnt + d + "/new"
					oracle.Run(t, "xfs_io", "-c", fmt.Sprintf("falloc 0 %dk", n), p)
					bmap = oracle.Run(t, "xfs_io", "-r", "-c", "bmap -v", p)
				})
				// " 0: [0..7]: 1234..1241  2 (100..107)  8 10000"
				var kag, kstart uint64
				extents := 0
				for _, line := range strings.Split(bmap, "\n") {
					f := strings.Fields(line)
					if len(f) < 5 || !strings.HasSuffix(f[0], ":") {
						continue
					}
					if _, err := strconv.Atoi(strings.TrimSuffix(f[0], ":")); err != nil {
						continue
					}
					extents++
					if f[0] == "0:" {
						kag, _ = strconv.ParseUint(f[3], 10, 32)
						off := strings.Trim(f[4], "()")
						kstart, _ = strconv.ParseUint(strings.Split(off, "..")[0], 10, 64)
					}
				}
				if extents != 1 {
					t.Skipf("the kernel needed more than one extent:\n%s", bmap)
				}
				ours := t.TempDir() + "/ours.img"
				oracle.Run(t, "cp", "--sparse=always", base, ours)
				w := openImage(t, ours)
				g := w.g
				ino := inos[d]
				target := g.FSB(g.InoAgno(ino), g.AginoAgbno(g.InoAgino(ino)))
				tx, err := w.j.Begin(log.Reservation{Blocks: int64(n)})
				if err != nil {
					t.Fatal(err)
				}
				fsb, _, err := agf.NewAllocator(tx, g).Alloc(agf.Request{Target: target, MinLen: n, MaxLen: n, MinLeft: 1})
				if err != nil {
					t.Fatal(err)
				}
				tx.Cancel()
				w.close()
				bb := uint64(g.BlockSize / ondisk.BBSize)
				if got, want := [2]uint64{uint64(g.FSBAgno(fsb)), uint64(g.FSBAgbno(fsb))}, [2]uint64{kag, kstart / bb}; got != want {
					t.Errorf("near target ag %d block %d: we chose ag %d block %d, the kernel ag %d block %d\n%s",
						g.FSBAgno(target), g.FSBAgbno(target), got[0], got[1], want[0], want[1], bmap)
				}
			})
		}
	}
}

var errCrash = errors.New("simulated crash")

// newLines is what after has past the last line of before (the kernel's
// ring buffer drops old lines, so counting does not work).
func newLines(before, after []string) []string {
	last := before[len(before)-1]
	for i := len(after) - 1; i >= 0; i-- {
		if after[i] == last {
			return after[i+1:]
		}
	}
	return after
}

func dmesgLines(t *testing.T) []string {
	t.Helper()
	return strings.Split(strings.TrimRight(oracle.Run(t, "dmesg"), "\n"), "\n")
}

// The kernel (and xfsimg's own log.Recover) replays the allocator's
// checkpoints: random allocations and frees, the last few batches'
// checkpoint stopped after it reached the log and before anything was
// written in place. Recovery replays it (partly logged btree blocks over
// their previous versions, new blocks whole, the AGF and AGFL), and the
// free space is then the model's, with every committed transaction in it;
// xfs_repair finds nothing.
func TestKernelReplaysAllocations(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for i, name := range []string{"mkfs-4k", "freesp-1k"} {
		for _, recoverer := range []string{"kernel", "xfsimg"} {
			t.Run(name+"-"+recoverer, func(t *testing.T) {
				var img string
				if name == "freesp-1k" {
					img = images.Extract(t, name)
				} else {
					img = oracle.Mkfs(t, 300<<20)
				}
				crash := false
				w := openImageOpts(t, img, log.Options{Hooks: log.Hooks{AfterLogFlush: func() error {
					if crash {
						return errCrash
					}
					return nil
				}}})
				w, m, _ := runRandom(t, w, uint64(3000+i), 10, 50, 0, false)
				r := rand.New(rand.NewPCG(uint64(4000+i), 5))
				var st opStats
				before := w.j.Stats().Checkpoints
				for b := 0; b < 5; b++ {
					if err := randomBatch(t, w, r, m, &st, 50, false); err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("%+v; %d checkpoints forced by busy extents", st, w.j.Stats().Checkpoints-before)
				crash = true
				if err := w.j.Checkpoint(); !errors.Is(err, errCrash) {
					t.Fatalf("checkpoint: %v, want the simulated crash", err)
				}
				w.dev.(*ondisk.Device).Close()
				if recoverer == "kernel" {
					prev := dmesgLines(t)
					oracle.WithMount(t, img, func(string) {})
					if news := strings.Join(newLines(prev, dmesgLines(t)), "\n"); !strings.Contains(news, "Starting recovery") ||
						!strings.Contains(news, "Ending recovery") {
						t.Fatalf("the kernel did not replay:\n%s", news)
					}
				} else {
					dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
					if err != nil {
						t.Fatal(err)
					}
					rep, err := log.Recover(dev, log.RecoverOptions{})
					dev.Close()
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("recover: %+v", rep.Items)
				}
				oracle.RequireRepairClean(t, img)
				w2 := openImage(t, img)
				m.check(t, w2)
				w2.close()
			})
		}
	}
}
