package log

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Kernel-written dirty logs are the oracle for recovery: the same image is
// recovered once by Recover and once by the kernel (mount, umount), and
// the two must agree on every file and on every metadata block apart from
// LSN and CRC fields, and both pass xfs_repair -n.

func xfsIO(t testing.TB, args ...string) {
	t.Helper()
	oracle.Run(t, "xfs_io", args...)
}

// makeDirty makes an image, runs work on it through the kernel, then
// shuts the file system down without writing metadata back.
func makeDirty(t testing.TB, size int64, mkfs []string, work func(mnt string)) string {
	t.Helper()
	return makeDirtyMount(t, size, mkfs, nil, work)
}

// makeDirtyMount is makeDirty with mount options.
func makeDirtyMount(t testing.TB, size int64, mkfs, mount []string, work func(mnt string)) string {
	t.Helper()
	oracle.Require(t, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, size, mkfs...)
	dir, _ := oracle.Mount(t, img, mount...)
	work(dir)
	xfsIO(t, "-x", "-c", "shutdown -f", dir)
	oracle.Unmount(t, dir)
	return img
}

// richWorkload creates files, directories, symlinks, attributes, a
// fragmented file (a BMBT root in the inode), a big file, renames, links
// and an unlink, with enough fsyncs that the log holds several records.
func richWorkload(t testing.TB) func(string) {
	return func(mnt string) {
		p := func(s string) string { return filepath.Join(mnt, s) }
		xfsIO(t, "-f", "-c", "pwrite -S 0x61 0 64k", "-c", "fsync", p("a"))
		if err := os.Mkdir(p("d"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			if err := os.WriteFile(p(fmt.Sprintf("d/entry-%04d", i)), []byte(strings.Repeat(fmt.Sprint(i), i%7+1)), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		xfsIO(t, "-f", "-c", "pwrite -S 0x62 -b 1m 0 24m", "-c", "fsync", p("big"))
		args := []string{"-f"}
		for i := range 40 {
			args = append(args, "-c", fmt.Sprintf("pwrite -S 0x%02x %d 4k", 0x30+i, i*8192), "-c", "fsync")
		}
		xfsIO(t, append(args, p("frag"))...)
		for i, target := range []string{"short", strings.Repeat("long/", 150)} {
			if err := os.Symlink(target, p(fmt.Sprintf("link%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Setxattr(p("a"), "user.small", []byte("value"), 0); err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			if err := unix.Setxattr(p("big"), fmt.Sprintf("user.attr%02d", i), []byte(strings.Repeat("v", 40)), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(p("x/y/z"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p("a"), p("x/y/z/renamed")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p("big"), p("x/hardlink")); err != nil {
			t.Fatal(err)
		}
		used := inodesUsed(t, mnt)
		if err := os.Remove(p("d/entry-0007")); err != nil {
			t.Fatal(err)
		}
		xfsIO(t, "-c", "truncate 100k", "-c", "fsync", p("frag"))
		waitInodesUsed(t, mnt, used-1) // inactivation done: unlinked lists empty
		xfsIO(t, "-c", "syncfs", mnt)
	}
}

// inodesUsed is the number of inodes in use as statfs counts them.
func inodesUsed(t testing.TB, mnt string) uint64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	return st.Files - st.Ffree
}

// waitInodesUsed waits until removed files have been freed (inactivated),
// which the kernel does in the background after the last close: until
// then they sit on the AGI unlinked lists, which recovery refuses.
func waitInodesUsed(t testing.TB, mnt string, want uint64) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		if inodesUsed(t, mnt) == want {
			return
		}
	}
	t.Fatalf("%d inodes in use after 30 s, want %d", inodesUsed(t, mnt), want)
}

func sha256File(t testing.TB, path string) string {
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
	return hex.EncodeToString(h.Sum(nil))
}

func copyImage(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func recoverImage(t testing.TB, img string, opts RecoverOptions) (*Report, error) {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	return Recover(dev, opts)
}

func dmesg() []string {
	out, _ := exec.Command("dmesg").Output()
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// kernelRecover mounts and unmounts img and returns what the kernel said
// about it.
func kernelRecover(t testing.TB, img string) string {
	t.Helper()
	before := dmesg()
	dir, dev := oracle.Mount(t, img)
	oracle.Unmount(t, dir)
	after := dmesg()
	start := 0
	if last := before[len(before)-1]; last != "" {
		for i := len(after) - 1; i >= 0; i-- {
			if after[i] == last {
				start = i + 1
				break
			}
		}
	}
	var msgs []string
	tag := "XFS (" + filepath.Base(dev) + ")"
	for _, l := range after[start:] {
		if strings.Contains(l, tag) {
			msgs = append(msgs, l)
		}
	}
	return strings.Join(msgs, "\n")
}

func kernelWalk(t testing.TB, img string) []images.File {
	t.Helper()
	dir, _ := oracle.Mount(t, img, "ro")
	files, err := images.KernelWalk(dir)
	if err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, dir)
	return files
}

// checkSameAsKernel recovers img twice, by Recover and by the kernel, and
// compares the results. It returns Recover's report.
func checkSameAsKernel(t *testing.T, img string) *Report {
	t.Helper()
	return checkSameAsKernelMin(t, img, 10)
}

func checkSameAsKernelMin(t *testing.T, img string, minFiles int) *Report {
	t.Helper()
	ours, kern := copyImage(t, img), copyImage(t, img)
	rep, err := recoverImage(t, ours, RecoverOptions{})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if rep.Clean || rep.Transactions == 0 {
		t.Fatalf("Recover found nothing to replay: %+v", rep)
	}
	msgs := kernelRecover(t, kern)
	if !strings.Contains(msgs, "Starting recovery") || strings.Contains(msgs, "Torn write") {
		t.Fatalf("kernel did not recover the log as expected:\n%s", msgs)
	}
	// Our image now has a clean log: the kernel mounts it without recovery.
	if msgs := kernelRecover(t, copyImage(t, ours)); strings.Contains(msgs, "Starting recovery") || !strings.Contains(msgs, "Mounting") {
		t.Fatalf("kernel found the log dirty after Recover:\n%s", msgs)
	}
	oracle.RequireRepairClean(t, ours)
	oracle.RequireRepairClean(t, kern)
	if diffs := compareImageFiles(t, ours, kern); len(diffs) > 0 {
		t.Errorf("%d metadata differences from the kernel's recovery, first:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
	wo, wk := kernelWalk(t, ours), kernelWalk(t, kern)
	if !reflect.DeepEqual(wo, wk) {
		for i := range min(len(wo), len(wk)) {
			if !reflect.DeepEqual(wo[i], wk[i]) {
				t.Fatalf("files differ from the kernel's recovery at %d:\nours:   %+v\nkernel: %+v", i, wo[i], wk[i])
			}
		}
		t.Fatalf("file lists differ: %d files vs %d", len(wo), len(wk))
	}
	if len(wo) < minFiles {
		t.Fatalf("walk found only %d files", len(wo))
	}
	return rep
}

func TestRecoverKernelLogs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mkfs  []string
		mount []string
	}{
		{"default", nil, nil},
		{"1k-blocks", []string{"-b", "size=1024"}, nil},
		{"4k-sectors", []string{"-s", "size=4096", "-l", "sectsize=4096"}, nil},
		{"rmapbt", []string{"-m", "rmapbt=1"}, nil},
		{"1k-inodes", []string{"-i", "size=1024"}, nil},
		{"8k-dirblocks-4-ags", []string{"-n", "size=8192", "-d", "agcount=4"}, nil},
		// 256 KiB log buffers: records with extended headers.
		{"logbsize-256k", nil, []string{"logbsize=256k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := makeDirtyMount(t, 512<<20, tc.mkfs, tc.mount, richWorkload(t))
			rep := checkSameAsKernel(t, img)
			t.Logf("%d records, %d transactions, items %v; %d buffers and %d inodes replayed, %d buffers written",
				rep.Records, rep.Transactions, rep.Items, rep.BufsReplayed, rep.InodesReplayed, rep.BuffersWritten)
			if rep.Items["INODE"] == 0 || rep.Items["BUF"] == 0 || rep.Items["ICREATE"] == 0 {
				t.Errorf("the workload's log lacks inode, buffer or icreate items: %v", rep.Items)
			}
		})
	}
}

// TestRecoverUnlinkedCancels replays a log where inode chunks were freed:
// cancelled buffers, inode items of freed clusters, unlinked-list inode
// buffers.
func TestRecoverUnlinkedCancels(t *testing.T) {
	img := makeDirty(t, 512<<20, nil, func(mnt string) {
		for i := range 20 {
			if err := os.WriteFile(filepath.Join(mnt, fmt.Sprint("keep", i)), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d := filepath.Join(mnt, "d")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			xfsIO(t, "-f", "-c", "pwrite 0 16k", filepath.Join(d, fmt.Sprint(i)))
		}
		xfsIO(t, "-c", "syncfs", mnt)
		used := inodesUsed(t, mnt)
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		waitInodesUsed(t, mnt, used-201)
		xfsIO(t, "-c", "syncfs", mnt)
	})
	rep := checkSameAsKernel(t, img)
	if rep.BufsCancelled+rep.InodesCancelled+rep.ICreatesCancelled == 0 {
		t.Errorf("expected cancelled buffers in the log: %+v", rep)
	}
}

// TestRecoverDryRunWritesNothing: a dry run parses and replays in memory
// only.
func TestRecoverDryRunWritesNothing(t *testing.T) {
	img := makeDirty(t, 512<<20, nil, richWorkload(t))
	sum := sha256File(t, img)
	rep, err := recoverImage(t, img, RecoverOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions == 0 || rep.BuffersWritten == 0 {
		t.Fatalf("dry run reports nothing: %+v", rep)
	}
	if got := sha256File(t, img); got != sum {
		t.Fatal("dry run changed the image")
	}
	rep2, err := recoverImage(t, img, RecoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.BuffersWritten != rep.BuffersWritten || rep2.InodesReplayed != rep.InodesReplayed {
		t.Fatalf("dry run %+v and real run %+v differ", rep, rep2)
	}
	rep3, err := recoverImage(t, img, RecoverOptions{})
	if err != nil || !rep3.Clean {
		t.Fatalf("second recovery: %+v, %v; want a clean log", rep3, err)
	}
}

// failingDev fails every write from the n-th on, and counts writes.
type failingDev struct {
	ondisk.Storage
	n      int
	writes int
}

func (f *failingDev) WriteAt(p []byte, off int64) (int, error) {
	if f.writes++; f.writes > f.n {
		return 0, errors.New("simulated power loss")
	}
	return f.Storage.WriteAt(p, off)
}

// TestRecoverInterrupted: recovery stopped part way through writing back
// (after the first write, half way, before the unmount record) leaves a
// dirty log that both Recover and the kernel replay again to the same
// result: replay is idempotent with the LSNs it stamped.
func TestRecoverInterrupted(t *testing.T) {
	img := makeDirty(t, 512<<20, nil, richWorkload(t))
	count := &failingDev{n: 1 << 30}
	{
		cp := copyImage(t, img)
		dev, err := ondisk.Open(cp, ondisk.OpenOptions{Write: true})
		if err != nil {
			t.Fatal(err)
		}
		count.Storage = dev
		if _, err := Recover(count, RecoverOptions{}); err != nil {
			t.Fatal(err)
		}
		dev.Close()
	}
	if count.writes < 4 {
		t.Fatalf("recovery wrote only %d times", count.writes)
	}
	for _, n := range []int{1, count.writes / 2, count.writes - 1} {
		t.Run(fmt.Sprint("writes=", n), func(t *testing.T) {
			cp := copyImage(t, img)
			dev, err := ondisk.Open(cp, ondisk.OpenOptions{Write: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Recover(&failingDev{Storage: dev, n: n}, RecoverOptions{})
			dev.Close()
			if err == nil {
				t.Fatal("recovery did not fail")
			}
			checkSameAsKernel(t, cp)
		})
	}
}

// TestRecoverTornWrite: a bad CRC in the last record is a torn write; it
// is dropped, as the kernel drops it.
func TestRecoverTornWrite(t *testing.T) {
	rich := richWorkload(t)
	img := makeDirty(t, 512<<20, nil, func(mnt string) {
		rich(mnt)
		// The last record holds only this: the unlink in the rich
		// workload is complete in the records before it.
		xfsIO(t, "-f", "-c", "pwrite 0 4k", "-c", "fsync", filepath.Join(mnt, "last"))
	})
	st := dirtyState(t, img)
	// Flip a byte in the last record's data.
	corruptLog(t, img, st.LastRecord+2, 100)
	var st2 *State
	withArea(t, img, func(a *Area) {
		var err error
		if st2, err = a.FindState(); err != nil {
			t.Fatal(err)
		}
		if err := a.VerifyState(st2); err != nil {
			t.Fatal(err)
		}
	})
	if !st2.Torn || int64(st2.Head.Block()) != st.LastRecord {
		t.Fatalf("torn write not found: %+v (last record at %d)", st2, st.LastRecord)
	}
	ours, kern := copyImage(t, img), copyImage(t, img)
	if _, err := recoverImage(t, ours, RecoverOptions{}); err != nil {
		t.Fatal(err)
	}
	if msgs := kernelRecover(t, kern); !strings.Contains(msgs, "Torn write") {
		t.Fatalf("the kernel saw no torn write:\n%s", msgs)
	}
	oracle.RequireRepairClean(t, ours)
	if diffs := compareImageFiles(t, ours, kern); len(diffs) > 0 {
		t.Errorf("%d metadata differences from the kernel's recovery, first:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
	if wo, wk := kernelWalk(t, ours), kernelWalk(t, kern); !reflect.DeepEqual(wo, wk) {
		t.Fatal("files differ from the kernel's recovery")
	}
}

func dirtyState(t testing.TB, img string) *State {
	t.Helper()
	var st *State
	withArea(t, img, func(a *Area) {
		var err error
		if st, err = a.FindState(); err != nil {
			t.Fatal(err)
		}
	})
	if st.Clean {
		t.Fatal("log is clean")
	}
	return st
}

// corruptLog flips one byte at offset off of log block blk.
func corruptLog(t testing.TB, img string, blk int64, off int) {
	t.Helper()
	var a *Area
	withArea(t, img, func(x *Area) { a = x })
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pos := (a.Start+blk)<<ondisk.BBShift + int64(off)
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}
