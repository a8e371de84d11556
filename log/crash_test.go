package log

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/internal/crashdev"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// crashRecoverers are the ways a crashed image is brought back to a
// consistent state: the kernel's log recovery at mount, and (added by the
// recovery work) `xfsimg recover`. Each gets its own copy of every crash
// image, and each result must pass the same checks.
var crashRecoverers = []struct {
	name    string
	recover func(img string) error
}{
	{"kernel", func(img string) error {
		dmesg, err := mountImage(img, nil)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, strings.Join(dmesg, "\n"))
		}
		return nil
	}},
	{"xfsimg", func(img string) error {
		dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true})
		if err != nil {
			return err
		}
		defer dev.Close()
		_, err = Recover(dev, RecoverOptions{})
		return err
	}},
}

// TestCrashSweep records a session of many transactions and checkpoints,
// then builds the image a power loss would leave after each flush, with
// subsets of the unflushed writes that followed it and torn log writes,
// and holds every recovery method to it: the image must recover, pass
// xfs_repair -n, and be exactly the state after a whole number of
// checkpoints (label and every file's mtime name the same checkpoint).
//
// The session starts with the head near the end of a minimal log, so the
// sweep covers records split across the physical end and the flush the
// writer puts between the two parts.
//
// By default a seeded sample of flush points and variants runs (about a
// dozen crash images, seconds); XFSIMG_LONG=1 sweeps every flush point with
// 20 seeded subsets each, plus none, all, and torn log writes.
//
// Torn writes are applied to log writes only. The log is where XFS detects
// them (a CRC per record); a metadata block torn while written in place
// after its checkpoint is durable carries the new LSN in its first sector,
// so recovery skips it as already written and its verifier then fails: the
// kernel makes the same assumption of whole-block metadata writes.
func TestCrashSweep(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	long := os.Getenv("XFSIMG_LONG") == "1"
	for _, v := range []string{"TEST_DIR", "TEST_DEV", "QA_CHECK_FS"} {
		t.Setenv(v, os.TempDir())
	}
	img := oracle.Mkfs(t, 512<<20, "-l", "size=1368b")
	files := populate(t, img)

	// Phase 1, not recorded: move the head close to the end of the log.
	const warm = 60
	dev1, j := openJournal(t, img, Options{})
	session(t, j, files, 1, warm, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	dev1.Close()
	base := filepath.Join(t.TempDir(), "base.img")
	copySparse(t, img, base)

	// Phase 2, recorded: at least 200 transactions in 50 checkpoints.
	const ckpts = 50
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := crashdev.Wrap(dev)
	sb, g := readSuperblock(t, rec)
	// logFlush[k] is the number of flushes done once checkpoint k was
	// durable in the log.
	logFlush := map[int]int{}
	cur := warm
	j, err = Open(rec, sb, g, Options{Hooks: Hooks{AfterLogFlush: func() error {
		logFlush[cur] = rec.Flushes()
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	startCycle := j.w.cycle
	session(t, j, files, warm+1, warm+ckpts, func(k int) { cur = k })
	cur = warm + ckpts + 1 // Close's own checkpoint keeps the state
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	st := j.Stats()
	dev.Close()
	if st.Transactions < 200 || st.Checkpoints < 50 || j.w.cycle == startCycle {
		t.Fatalf("session too small or no wrap: %+v, cycle %d -> %d", st, startCycle, j.w.cycle)
	}
	logStart, logEnd := g.LogDaddr()<<9, (g.LogDaddr()+g.LogBBs())<<9
	isLog := func(o crashdev.Op) bool { return o.Off >= logStart && o.Off < logEnd }

	// stateAt is the checkpoint whose state a crash after k flushes must
	// show at least: the last one durable in the log.
	stateAt := func(k int) int {
		s := warm
		for c, f := range logFlush {
			if f <= k && c > s {
				s = c
			}
		}
		return min(s, warm+ckpts)
	}

	rng := rand.New(rand.NewPCG(0x5eed, 2026))
	nflush := rec.Flushes()
	points := make([]int, 0, nflush+1)
	for k := 0; k <= nflush; k++ {
		points = append(points, k)
	}
	if !long {
		// A sample: a few points of each kind (before a log write, before
		// write-back, between the two halves of a wrapped record), then
		// random ones.
		var sample []int
		kinds := map[string][]int{}
		for _, k := range points {
			win := rec.Window(k)
			switch {
			case len(win) == 0:
				kinds["empty"] = append(kinds["empty"], k)
			case isLog(win[0]) && isLog(win[len(win)-1]) && win[0].Off == logStart:
				kinds["wrapped"] = append(kinds["wrapped"], k)
			case isLog(win[0]):
				kinds["log"] = append(kinds["log"], k)
			default:
				kinds["writeback"] = append(kinds["writeback"], k)
			}
		}
		for _, kind := range []string{"log", "writeback", "wrapped", "empty"} {
			ks := kinds[kind]
			for i := 0; i < 2 && len(ks) > 0; i++ {
				n := rng.IntN(len(ks))
				sample = append(sample, ks[n])
				ks = append(ks[:n], ks[n+1:]...)
			}
			kinds[kind] = ks
		}
		sort.Ints(sample)
		points = sample
	}

	work := filepath.Join(t.TempDir(), "crash.img")
	t0 := time.Now()
	images, ahead := 0, 0
	for _, k := range points {
		win := rec.Window(k)
		for _, v := range crashdev.Variants(win, isLog, variantOptions(long), rng) {
			want := stateAt(k)
			// The next checkpoint may already be complete in the log if
			// its log write landed whole.
			next := false
			for i, o := range win {
				if isLog(o) && v.Keep != nil && v.Keep(i) && (v.Tear == nil || v.Tear.Index != i) {
					next = true
				}
			}
			for _, m := range crashRecoverers {
				copySparse(t, base, work)
				f, err := os.OpenFile(work, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				err = rec.ApplyCrash(f, k, v.Keep, v.Tear)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("crash after flush %d/%d (%d writes pending), %s, recovered by %s", k, nflush, len(win), v.Name, m.name)
				if err := m.recover(work); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if out, ok := oracle.Repair(t, work); !ok {
					t.Fatalf("%s: xfs_repair -n:\n%s", what, out)
				}
				label, mtimes := imageState(t, work, files)
				ok := label == want || (next && label == want+1)
				for _, mt := range mtimes {
					ok = ok && mt == stampBase+int64(label)
				}
				if !ok {
					t.Fatalf("%s: label says checkpoint %d, mtimes %v (base %d); want checkpoint %d%s", what, label, mtimes,
						stampBase, want, map[bool]string{true: " or the next", false: ""}[next])
				}
				images++
				if label == want+1 {
					ahead++
				}
			}
		}
	}
	el := time.Since(t0)
	t.Logf("session: %d transactions, %d checkpoints, %d records, %d flushes; swept %d of %d flush points, %d crash images "+
		"(%d recovered a checkpoint whose log write was not yet flushed) in %v (%v each)",
		st.Transactions, st.Checkpoints, st.Records, nflush, len(points), nflush+1, images, ahead, el.Round(time.Millisecond),
		(el / time.Duration(max(images, 1))).Round(time.Millisecond))
}

// variantOptions are this sweep's crash images per window.
func variantOptions(long bool) crashdev.VariantOptions {
	opt := crashdev.VariantOptions{Subsets: 1, TearAll: true, EdgeCuts: long}
	if long {
		opt.Subsets = 20
	}
	return opt
}
