// Package crashcheck recovers a crash image the two ways a crash test
// holds xfsimg to, and requires the result clean. The crash images come
// from package crashdev; this is what each of them goes through after.
package crashcheck

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/crashdev"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/refcount"
)

// By names a recoverer.
const (
	Kernel = "kernel"         // a loop mount and unmount: the kernel's log recovery
	Xfsimg = "xfsimg recover" // what xfsimg recover does
)

// Record keeps a copy of img as it is now (the base that Build starts
// from, in a directory of the test's) and opens img for writing with
// every write recorded; the caller closes dev.
func Record(t testing.TB, img string) (base string, dev *ondisk.Device, rec *crashdev.Recorder) {
	t.Helper()
	base = filepath.Join(t.TempDir(), "base.img")
	oracle.Run(t, "cp", "--sparse=always", img, base)
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	return base, dev, crashdev.Wrap(dev)
}

// Build makes work a copy of base (the image before the first recorded
// write) with what a crash after flush point k leaves: keep chooses the
// window's writes that made it, tear tears one (see crashdev.ApplyCrash).
func Build(t testing.TB, rec *crashdev.Recorder, base, work string, k int, keep func(int) bool, tear *crashdev.Tear) {
	t.Helper()
	oracle.Run(t, "cp", "--sparse=always", base, work)
	f, err := os.OpenFile(work, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := rec.ApplyCrash(f, k, keep, tear); err != nil {
		t.Fatal(err)
	}
}

// Recover brings the crash image img back by the kernel or by xfsimg
// (by is Kernel or Xfsimg). For the kernel, mounted, if not nil, runs
// while the image is mounted. Then xfs_repair -n and xfsimg check must both
// find it clean: repair -n skips its free-space rebuild, so a leaked block
// is for check to find. what names the image in failures.
func Recover(t testing.TB, img, by, what string, mounted func(mnt string)) {
	t.Helper()
	switch by {
	case Kernel:
		mnt, _ := oracle.Mount(t, img)
		if mounted != nil {
			mounted(mnt)
		}
		oracle.Unmount(t, mnt)
	case Xfsimg:
		d, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		err = RecoverLikeXfsimg(d)
		d.Close()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	default:
		t.Fatalf("crashcheck: unknown recoverer %q", by)
	}
	if out, ok := oracle.Repair(t, img); !ok {
		t.Fatalf("%s: xfs_repair -n:\n%s", what, out)
	}
	if r := checktest.Run(t, img); !r.Clean() {
		t.Fatalf("%s: xfsimg check: %s", what, checktest.Text(r))
	}
}

// RecoverLikeXfsimg is what xfsimg recover does: replay the log, then, if
// it was dirty, free the COW staging extents the crash left, as the
// kernel does after it recovers a dirty log.
func RecoverLikeXfsimg(d *ondisk.Device) error {
	rep, err := log.Recover(d, log.RecoverOptions{})
	if err != nil || rep.Clean {
		return err
	}
	_, err = refcount.RecoverCowOnDevice(d)
	return err
}
