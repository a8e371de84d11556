package log

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// TestRecoverBigLog replays a log with more than 32 MiB between tail and
// head (a 128 MiB log after a burst of file creation), checks the result
// against the kernel's, and compares the time Recover takes with the time
// the kernel's mount takes to recover the same log. It takes about a
// minute: XFSIMG_LONG=1 runs it.
func TestRecoverBigLog(t *testing.T) {
	if os.Getenv("XFSIMG_LONG") != "1" {
		t.Skip("XFSIMG_LONG=1 runs the 32 MiB log test")
	}
	files := 100000
	img := makeDirty(t, 2<<30, []string{"-l", "size=128m"}, func(mnt string) {
		for d := range 100 {
			dir := filepath.Join(mnt, fmt.Sprintf("d%03d", d))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range files / 100 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-with-a-longer-name-%06d", i)), []byte(fmt.Sprint(d, "/", i)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		xfsIO(t, "-c", "syncfs", mnt)
	})
	st := dirtyState(t, img)
	var a *Area
	withArea(t, img, func(x *Area) { a = x })
	used := a.distance(int64(st.Tail.Block()), int64(st.Head.Block())) * ondisk.BBSize
	t.Logf("log: tail %d head %d: %.1f MiB between them", st.Tail.Block(), st.Head.Block(), float64(used)/(1<<20))
	if used < 32<<20 {
		t.Fatalf("only %d MiB of log between tail and head", used>>20)
	}

	ours, kern := copyImage(t, img), copyImage(t, img)
	dropCache(t, ours)
	dropCache(t, kern)
	start := time.Now()
	rep, err := recoverImage(t, ours, RecoverOptions{})
	tOurs := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	dev := oracle.Attach(t, kern)
	dir := t.TempDir()
	start = time.Now()
	if out, err := oracle.RunErr("mount", "-t", "xfs", dev, dir); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	tKern := time.Since(start)
	oracle.Unmount(t, dir)
	t.Logf("Recover %v (%d records, %d transactions, %d inode items, %d buffers / %.1f MiB written, %d log reads, %d metadata reads); kernel mount %v; ratio %.2f",
		tOurs.Round(time.Millisecond), rep.Records, rep.Transactions, rep.InodesReplayed, rep.BuffersWritten,
		float64(rep.BytesWritten)/(1<<20), rep.LogReads, rep.BufferReads, tKern.Round(time.Millisecond), tOurs.Seconds()/tKern.Seconds())
	if tOurs > tKern {
		t.Errorf("Recover took %v, the kernel's mount %v", tOurs, tKern)
	}
	oracle.RequireRepairClean(t, ours)
	oracle.RequireRepairClean(t, kern)
	if diffs := compareImageFiles(t, ours, kern); len(diffs) > 0 {
		t.Errorf("%d metadata differences from the kernel's recovery, first:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
	wo, wk := kernelWalk(t, ours), kernelWalk(t, kern)
	if len(wo) != len(wk) || len(wo) < files {
		t.Fatalf("%d files after Recover, %d after the kernel", len(wo), len(wk))
	}
	for i := range wo {
		if wo[i].Path != wk[i].Path || wo[i].SHA256 != wk[i].SHA256 || wo[i].Inode != wk[i].Inode || wo[i].Size != wk[i].Size {
			t.Fatalf("file %d differs:\n%+v\n%+v", i, wo[i], wk[i])
		}
	}
}

// dropCache writes img out and drops it from the page cache, so that both
// recoveries start cold.
func dropCache(t testing.TB, img string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}
