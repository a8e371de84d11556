package log

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Geometries the journal must write: the log's block size, sector size and
// stripe unit all change how records are laid out and padded.
var journalGeometries = []struct {
	name string
	size int64
	mkfs []string
}{
	{"default", 512 << 20, nil},
	{"1k-blocks", 512 << 20, []string{"-b", "size=1024"}},
	{"4k-log-sectors", 512 << 20, []string{"-s", "size=4096"}}, // -l sectsize=4096 alone is refused for an internal log
	{"log-su-32k", 512 << 20, []string{"-l", "su=32k"}},
	{"data-and-log-su", 1 << 30, []string{"-d", "su=64k,sw=4", "-l", "su=32k,size=64m"}},
	{"log-su-256k", 512 << 20, []string{"-l", "su=256k"}}, // h_size 256 KiB: extended headers
}

// mountLabel mounts img and returns the label the kernel reports and what
// it logged about the mount.
func mountLabel(t *testing.T, img string) (string, mountResult) {
	t.Helper()
	var label string
	res := kmount(t, img, func(dir string) {
		out := oracle.Run(t, "xfs_io", "-c", "label", dir)
		m := regexp.MustCompile(`label = "(.*)"`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("xfs_io label: %q", out)
		}
		label = m[1]
	})
	if res.err != nil {
		t.Fatalf("%v\n%s", res.err, strings.Join(res.dmesg, "\n"))
	}
	return label, res
}

func TestLabelKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, geo := range journalGeometries {
		t.Run(geo.name, func(t *testing.T) {
			img := oracle.Mkfs(t, geo.size, geo.mkfs...)
			dev, j := openJournal(t, img, Options{})
			if err := j.SetLabel("xfsimg-lbl"); err != nil {
				t.Fatal(err)
			}
			// One checkpoint: log bytes against regions, op headers and
			// record headers; padding to the stripe unit is required where
			// there is one, padding to 512 bytes must stay under 5%.
			c := j.Stats()
			ratio := float64(c.LogBytes) / float64(c.OpBytes+c.HeaderBytes)
			t.Logf("label checkpoint: %d log bytes for %d region bytes, %d op header bytes, %d record header bytes (x%.3f; roundoff %d)",
				c.LogBytes, c.RegionBytes, c.OpBytes-c.RegionBytes, c.HeaderBytes, ratio, j.w.roundoff)
			if j.w.roundoff == 512 && ratio > 1.05 {
				t.Errorf("label checkpoint takes %.1f%% more log than required", (ratio-1)*100)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			st := j.Stats()
			dev.Close()
			t.Logf("%s: %+v", geo.name, st)
			oracle.RequireLogprintClean(t, img)
			oracle.RequireRepairClean(t, img)
			for _, sec := range []string{"sb 1", "sb 2", "sb 3"} {
				if out := oracle.DB(t, img, sec, "p fname"); !strings.Contains(out, `"xfsimg-lbl`) {
					t.Errorf("%s label: %s", sec, out)
				}
			}
			label, res := mountLabel(t, img)
			if label != "xfsimg-lbl" {
				t.Fatalf("kernel shows label %q", label)
			}
			if hasLine(res.dmesg, "Starting recovery") || hasLine(res.dmesg, "Torn write") || hasLine(res.dmesg, "orruption") {
				t.Fatalf("a clean log was recovered or rejected:\n%s", strings.Join(res.dmesg, "\n"))
			}
			oracle.RequireRepairClean(t, img)
		})
	}
}

// Stopped after the log flush, before anything is written in place: the
// kernel must replay the checkpoint.
func TestKernelReplaysCheckpoint(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, geo := range journalGeometries {
		t.Run(geo.name, func(t *testing.T) {
			img := oracle.Mkfs(t, geo.size, geo.mkfs...)
			dev, j := openJournal(t, img, Options{Hooks: Hooks{AfterLogFlush: func() error { return errHook }}})
			if err := j.SetLabel("replayed"); err == nil {
				t.Fatal("hook did not stop the checkpoint")
			}
			dev.Close()
			if out := oracle.DB(t, img, "sb 0", "p fname"); strings.Contains(out, "replayed") {
				t.Fatalf("label in place before recovery: %s", out)
			}
			oracle.RequireLogprintClean(t, img)
			// xfsimg recover on a copy must give the kernel's blocks.
			ours := copyImage(t, img)
			if rep, err := recoverImage(t, ours, RecoverOptions{}); err != nil || rep.Clean {
				t.Fatalf("Recover: %+v, %v", rep, err)
			}
			label, res := mountLabel(t, img)
			if !hasLine(res.dmesg, "Starting recovery") || hasLine(res.dmesg, "Torn write") {
				t.Fatalf("kernel did not replay cleanly:\n%s", strings.Join(res.dmesg, "\n"))
			}
			if label != "replayed" {
				t.Fatalf("label after recovery %q", label)
			}
			oracle.RequireRepairClean(t, img)
			oracle.RequireRepairClean(t, ours)
			if diffs := compareImageFiles(t, ours, img); len(diffs) > 0 {
				t.Errorf("%d metadata differences between xfsimg recover and the kernel's replay, first:\n%s",
					len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
			}
		})
	}
}

// Many transactions in many checkpoints through a minimal log that wraps at
// least twice; the last checkpoint is stopped before write-back, so the
// kernel must replay a checkpoint from a wrapped log.
func TestSessionWrapsMinimalLog(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	// mkfs.xfs refuses logs under 64 MiB unless it runs under fstests
	// (TEST_DIR, TEST_DEV and QA_CHECK_FS set); then its minimum for this
	// geometry is 1368 blocks.
	for _, v := range []string{"TEST_DIR", "TEST_DEV", "QA_CHECK_FS"} {
		t.Setenv(v, os.TempDir())
	}
	img := oracle.Mkfs(t, 512<<20, "-l", "size=1368b")
	if out := oracle.DB(t, img, "sb 0", "p logblocks"); !strings.Contains(out, "1368") {
		t.Fatalf("log size: %s", out)
	}
	files := populate(t, img)
	// Run at least 200 checkpoints, then stop the first checkpoint whose
	// records cross the physical end of the log right after its log flush.
	const min = 200
	dev, j := openJournal(t, img, Options{})
	startCycle := j.w.cycle
	var cycleBefore uint32
	n := 0
	j.opt.Hooks.AfterDataFlush = func() error { cycleBefore = j.w.cycle; return nil }
	// Per checkpoint: log bytes over what the format requires (regions,
	// op headers, record headers); the rest is padding to 512 bytes.
	var prev Stats
	worst := 0.0
	j.opt.Hooks.AfterLogWrite = func() error {
		s := j.Stats()
		need := float64(s.OpBytes - prev.OpBytes + s.HeaderBytes - prev.HeaderBytes)
		worst = max(worst, float64(s.LogBytes-prev.LogBytes)/need)
		prev = s
		return nil
	}
	j.opt.Hooks.AfterLogFlush = func() error {
		if n >= min && j.w.cycle != cycleBefore {
			return errHook
		}
		return nil
	}
	session(t, j, files, 1, 3*min, func(k int) { n = k })
	st := j.Stats()
	wraps := j.w.cycle - startCycle
	dev.Close()
	t.Logf("%d transactions, %d checkpoints, %d records (%d across the end), %d log bytes, log wrapped %d times; stopped checkpoint %d before write-back",
		st.Transactions, st.Checkpoints, st.Records, j.w.splits, st.LogBytes, wraps, n)
	t.Logf("log bytes / (regions + op headers + record headers): %.4f overall, %.4f worst checkpoint; regions %d, op headers %d, record headers %d, padding %d",
		float64(st.LogBytes)/float64(st.OpBytes+st.HeaderBytes), worst, st.RegionBytes, st.OpBytes-st.RegionBytes, st.HeaderBytes, st.PadBytes)
	if worst > 1.05 {
		t.Errorf("a checkpoint took %.1f%% more log than its regions and headers", (worst-1)*100)
	}
	if st.Transactions < 200 || st.Checkpoints < 50 || wraps < 2 || j.Err() == nil {
		t.Fatalf("session too small or never stopped: %+v, %d wraps, err %v", st, wraps, j.Err())
	}
	if l, _ := imageState(t, img, files); l != n-1 {
		t.Fatalf("label in place says checkpoint %d before recovery, want %d", l, n-1)
	}
	oracle.RequireLogprintClean(t, img)
	label, res := mountLabel(t, img)
	if !hasLine(res.dmesg, "Starting recovery") || hasLine(res.dmesg, "Torn write") {
		t.Fatalf("kernel did not replay cleanly:\n%s", strings.Join(res.dmesg, "\n"))
	}
	if label != labelOf(n) {
		t.Fatalf("label after recovery %q, want %q", label, labelOf(n))
	}
	l, mt := imageState(t, img, files)
	for i, m := range mt {
		if m != stampBase+int64(n) {
			t.Fatalf("inode %d mtime %d after recovery, want %d (label %d)", files.all()[i], m, stampBase+n, l)
		}
	}
	oracle.RequireRepairClean(t, img)
}

// The record CRC and the test decoder, held to records the kernel wrote: a
// dirty log left by a shutdown.
func TestRecordCRCMatchesKernel(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img := oracle.Mkfs(t, 512<<20)
	res := kmount(t, img, func(dir string) {
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 64k", "-c", "fsync", dir+"/f")
		oracle.Run(t, "mkdir", dir+"/d")
		oracle.Run(t, "xfs_io", "-c", "fsync", dir+"/d")
		oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", dir)
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	a := openArea(t, img)
	st, err := a.FindState()
	if err != nil || st.Clean {
		t.Fatalf("state %+v, %v; want a dirty log", st, err)
	}
	recs := readTestRecords(t, a, int64(st.Tail.Block()), st.Tail.Cycle())
	if len(recs) == 0 {
		t.Fatal("no records from the tail")
	}
	for _, r := range recs {
		if !r.crcOK {
			t.Fatalf("kernel record at %d: CRC %08x does not match ours", r.blk, r.h.CRC)
		}
	}
	trs, err := parseTestTrans(recs)
	if err != nil {
		t.Fatal(err)
	}
	committed := 0
	for _, tr := range trs {
		if tr.committed {
			committed++
			if _, err := splitTestItems(tr.regions); err != nil {
				t.Fatal(err)
			}
		}
	}
	if committed == 0 {
		t.Fatalf("%d records, no committed transaction", len(recs))
	}
	t.Logf("%d kernel records, %d committed checkpoints, CRCs all match", len(recs), committed)
}

// After xfs_repair rewrites a log whose cycle had passed 1, the log is full
// of cycle-1 header blocks after the head (libxfs_log_clear); the writer
// must find the head by search and continue in the right cycle.
func TestWriteAfterRepairClearedLog(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, v := range []string{"TEST_DIR", "TEST_DEV", "QA_CHECK_FS"} {
		t.Setenv(v, os.TempDir())
	}
	img := oracle.Mkfs(t, 512<<20, "-l", "size=1368b")
	files := populate(t, img)
	dev, j := openJournal(t, img, Options{})
	session(t, j, files, 1, 200, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if j.w.cycle < 2 {
		t.Fatalf("log cycle %d; the test needs a wrapped log", j.w.cycle)
	}
	oracle.Run(t, "xfs_repair", img)
	rdev, err := ondisk.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sb, g := readSuperblock(t, rdev)
	a := NewArea(rdev, g, sb.UUID)
	st, err := a.FindState()
	if err != nil || !st.Clean {
		t.Fatalf("after xfs_repair: %+v %v", st, err)
	}
	last, err := a.ReadBlocks(a.BBs-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	rdev.Close()
	t.Logf("after xfs_repair: head %d/%d, last block cycle %d", st.Head.Cycle(), st.Head.Block(), cycleOf(last))
	if st.Head.Cycle() < 2 || cycleOf(last) != st.Head.Cycle()-1 {
		t.Fatalf("xfs_repair did not leave a cycle-%d log filled with cycle-%d blocks", st.Head.Cycle(), st.Head.Cycle()-1)
	}
	dev, j = openJournal(t, img, Options{})
	if err := j.SetLabel("after-rep"); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	oracle.RequireLogprintClean(t, img)
	oracle.RequireRepairClean(t, img)
	if label, _ := mountLabel(t, img); label != "after-rep" {
		t.Fatalf("label %q", label)
	}
	// And once more with the checkpoint left for the kernel to replay.
	dev, j = openJournal(t, img, Options{Hooks: Hooks{AfterLogFlush: func() error { return errHook }}})
	if err := j.SetLabel("replay-rep"); err == nil {
		t.Fatal("hook did not stop the checkpoint")
	}
	dev.Close()
	label, res := mountLabel(t, img)
	if label != "replay-rep" || !hasLine(res.dmesg, "Starting recovery") || hasLine(res.dmesg, "Torn write") {
		t.Fatalf("label %q after recovery:\n%s", label, strings.Join(res.dmesg, "\n"))
	}
	oracle.RequireRepairClean(t, img)
}
