package convert_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/crashcheck"
	"github.com/xfsimg/xfsimg/internal/crashdev"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// crashState is every file's mapping and size.
type crashState []string

func readState(t *testing.T, img string, names []string) crashState {
	t.Helper()
	f, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out crashState
	for _, n := range names {
		ip, err := f.Lookup(n, true)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s size %d map %v", n, ip.Core.Size, ourMap(t, f, ip.Ino)))
	}
	return out
}

// TestCrashSweep records a 1,000-command convert session (1 KiB blocks,
// fragmented free space, a BMBT growing to 3 levels, small checkpoints)
// and builds the image a power loss would leave after each flush, with
// subsets of the writes that followed it and torn log writes. Each must
// recover through the kernel (a mount replays the log) and through
// xfsimg's own recovery (log.Recover, xfsimg recover), pass xfs_repair
// -n and xfsimg check, and hold the files exactly as the last checkpoint whose log write is
// durable left them (or the next, when its log write landed whole):
// nothing committed is lost, nothing half done shows.
//
// A seeded sample of crash points by default; XFSIMG_LONG=1 sweeps every
// flush point with more subsets.
func TestCrashSweep(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	long := os.Getenv("XFSIMG_LONG") == "1"
	g := geometry{name: "1k-frag", size: 400 << 20, mkfs: []string{"-b", "size=1024", "-d", "agcount=4"},
		files: 3, window: 40 << 20, fragment: 30 << 20, stripes: 450}
	img := kernelFixture(t, g)
	names := []string{"f0", "f1", "f2"}
	base, dev, rec := crashcheck.Record(t, img)
	// Flush counts when each checkpoint is durable in the log, and when it
	// is in place.
	var logFlush, inPlace []int
	s, err := convert.Open(rec, convert.Options{Log: log.Options{
		CheckpointBytes: 8 << 10,
		Hooks: log.Hooks{
			AfterLogFlush:       func() error { logFlush = append(logFlush, rec.Flushes()); return nil },
			AfterWritebackFlush: func() error { inPlace = append(inPlace, rec.Flushes()); return nil },
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var inos []uint64
	for _, n := range names {
		ino, err := s.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		inos = append(inos, ino)
	}
	ops := genOps(g, 1024, 1000, 4242)
	for i, op := range ops {
		c, err := convert.ParseCommand(op.cmd, 0, 1024, 512)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run(inos[op.file], c); err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	dev.Close()
	nflush := rec.Flushes()
	t.Logf("session: %d commands, %d transactions (%d follow-ups with frees the AG lock order deferred), %d checkpoints, %d flushes",
		st.Ops, st.Transactions, st.FollowUps, st.Checkpoints, nflush)
	if len(logFlush) < 20 {
		t.Fatalf("only %d checkpoints: the sweep needs more", len(logFlush))
	}
	g2 := s.Geometry()
	logStart, logEnd := g2.LogDaddr()<<9, (g2.LogDaddr()+g2.LogBBs())<<9
	isLog := func(o crashdev.Op) bool { return o.Off >= logStart && o.Off < logEnd }

	work := filepath.Join(t.TempDir(), "crash.img")
	build := func(k int, keep func(int) bool, tear *crashdev.Tear) {
		t.Helper()
		crashcheck.Build(t, rec, base, work, k, keep, tear)
	}
	// The state after checkpoint c: its write-back is flushed, so the
	// image holds it in place whatever the log says.
	states := make([]crashState, len(inPlace))
	stateOf := func(c int) crashState {
		if c < 0 {
			return readState(t, base, names)
		}
		if states[c] == nil {
			build(inPlace[c], nil, nil)
			states[c] = readState(t, work, names)
		}
		return states[c]
	}
	// durableAt is the last checkpoint whose log write is durable after k
	// flushes (-1: none).
	durableAt := func(k int) int {
		c := -1
		for i, f := range logFlush {
			if f <= k {
				c = i
			}
		}
		return c
	}

	rng := rand.New(rand.NewPCG(0xc0ffee, 5))
	points := sweepPoints(nflush, long, 12, rng)
	t0 := time.Now()
	images := 0
	for _, k := range points {
		win := rec.Window(k)
		for _, v := range crashdev.Variants(win, isLog, variantOptions(long), rng) {
			want := durableAt(k)
			next := false
			for i, o := range win {
				if isLog(o) && v.Keep != nil && v.Keep(i) && (v.Tear == nil || v.Tear.Index != i) {
					next = true
				}
			}
			for _, by := range []string{crashcheck.Kernel, crashcheck.Xfsimg} {
				what := fmt.Sprintf("crash after flush %d/%d (%d writes pending), %s, recovered by %s", k, nflush, len(win), v.Name, by)
				build(k, v.Keep, v.Tear)
				crashcheck.Recover(t, work, by, what, nil)
				got := readState(t, work, names)
				ok := slices.Equal(got, stateOf(want))
				if !ok && next && want+1 < len(inPlace) {
					ok = slices.Equal(got, stateOf(want+1))
				}
				if !ok {
					t.Fatalf("%s: recovered state is not checkpoint %d's (or the next)\n got  %s\n want %s", what, want,
						strings.Join(got, "\n      "), strings.Join(stateOf(want), "\n      "))
				}
				images++
			}
		}
	}
	t.Logf("swept %d of %d flush points, %d recovered crash images (kernel and xfsimg recover), each clean, in %v",
		len(points), nflush+1, images, time.Since(t0).Round(time.Millisecond))
}

// sweepPoints is the flush points a sweep crashes at: all of 0..nflush
// when long, else a seeded choice of at most n of them, in order.
func sweepPoints(nflush int, long bool, n int, rng *rand.Rand) []int {
	points := make([]int, 0, nflush+1)
	for k := 0; k <= nflush; k++ {
		points = append(points, k)
	}
	if !long {
		rng.Shuffle(len(points), func(i, j int) { points[i], points[j] = points[j], points[i] })
		points = points[:min(len(points), n)]
		slices.Sort(points)
	}
	return points
}

// variantOptions are this sweep's crash images per window.
func variantOptions(long bool) crashdev.VariantOptions {
	opt := crashdev.VariantOptions{Subsets: 1, TearAll: long, EdgeCuts: false}
	if long {
		opt.Subsets = 6
	}
	return opt
}
