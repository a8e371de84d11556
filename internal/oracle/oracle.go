// Package oracle runs the real XFS tools and the Linux kernel from tests:
// mkfs.xfs, xfs_db, xfs_repair, xfs_logprint, xfs_io, loop devices and
// mounts. Our own reader is never the only judge of what we write.
//
// A test that needs something missing here (root, loop devices, xfsprogs)
// skips with the reason, unless XFSIMG_REQUIRE_ORACLES=1, in which case it
// fails: CI sets that so nothing skips silently.
package oracle

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Need names something a test needs from the machine.
type Need int

const (
	Xfsprogs Need = iota // mkfs.xfs, xfs_db, xfs_repair, xfs_logprint, xfs_io
	Root                 // uid 0
	Loop                 // loop devices and the kernel's XFS (implies Root)
)

// Required reports whether missing oracles must fail rather than skip.
func Required() bool { return os.Getenv("XFSIMG_REQUIRE_ORACLES") == "1" }

var (
	probeOnce sync.Once
	missing   map[Need]string
)

func probe() {
	missing = map[Need]string{}
	for _, tool := range []string{"mkfs.xfs", "xfs_db", "xfs_repair", "xfs_logprint", "xfs_io"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing[Xfsprogs] = tool + " not found (apt-get install xfsprogs)"
			break
		}
	}
	if os.Geteuid() != 0 {
		missing[Root] = "not running as root"
		missing[Loop] = "loop devices need root"
		return
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		missing[Loop] = "no /dev/loop-control"
		return
	}
	fs, err := os.ReadFile("/proc/filesystems")
	if err != nil || !bytes.Contains(fs, []byte("xfs")) {
		missing[Loop] = "kernel has no XFS support in /proc/filesystems"
	}
}

// Require skips (or, under XFSIMG_REQUIRE_ORACLES=1, fails) the test when
// the machine lacks any of needs.
func Require(t testing.TB, needs ...Need) {
	t.Helper()
	probeOnce.Do(probe)
	for _, n := range needs {
		reason, ok := missing[n]
		if !ok && n == Loop {
			reason, ok = missing[Root]
		}
		if ok {
			if Required() {
				t.Fatalf("oracle missing with XFSIMG_REQUIRE_ORACLES=1: %s", reason)
			}
			t.Skipf("skipping: %s", reason)
		}
	}
}

// Have reports whether all needs are met, without skipping.
func Have(needs ...Need) bool {
	probeOnce.Do(probe)
	for _, n := range needs {
		if _, ok := missing[n]; ok {
			return false
		}
	}
	return true
}

// Run runs a command and returns its combined output, failing the test on
// a non-zero exit.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RunErr runs a command and returns its output and error.
func RunErr(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// Mkfs makes a sparse image of size bytes in a temporary directory with
// mkfs.xfs and the given extra options, and returns its path.
func Mkfs(t testing.TB, size int64, args ...string) string {
	t.Helper()
	Require(t, Xfsprogs)
	img := filepath.Join(t.TempDir(), "fs.img")
	MkfsAt(t, img, size, args...)
	return img
}

// MkfsAt is Mkfs at a given path.
func MkfsAt(t testing.TB, img string, size int64, args ...string) {
	t.Helper()
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	Run(t, "mkfs.xfs", append(append([]string{"-f", "-q"}, args...), img)...)
}

// DB runs xfs_db read-only with the given commands and returns its output.
func DB(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	Require(t, Xfsprogs)
	args := []string{"-r"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return Run(t, "xfs_db", append(args, img)...)
}

// KV is one "name = value" line of xfs_db output.
type KV struct{ Name, Value string }

// ParseFields splits xfs_db print output into ordered name/value pairs.
func ParseFields(out string) []KV {
	var kvs []KV
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			if n, found := strings.CutSuffix(sc.Text(), " ="); found {
				name, val, ok = n, "", true
			}
		}
		if ok {
			kvs = append(kvs, KV{strings.TrimSpace(name), strings.TrimSpace(val)})
		}
	}
	return kvs
}

// Repair runs xfs_repair -n and returns its output and whether it was clean.
func Repair(t testing.TB, img string) (string, bool) {
	t.Helper()
	Require(t, Xfsprogs)
	out, err := exec.Command("xfs_repair", "-n", "-f", img).CombinedOutput()
	return string(out), err == nil
}

// RequireRepairClean fails the test unless xfs_repair -n finds nothing.
func RequireRepairClean(t testing.TB, img string) {
	t.Helper()
	if out, ok := Repair(t, img); !ok {
		t.Fatalf("xfs_repair -n %s found problems:\n%s", img, out)
	}
}

var (
	loopMu   sync.Mutex
	attached = map[string]bool{}   // loop devices this process attached
	mountDev = map[string]string{} // mount point -> loop device
)

// Attach binds img to a free loop device and detaches it, by its own name,
// when the test ends (unless Detach or Unmount did already).
func Attach(t testing.TB, img string) string {
	t.Helper()
	Require(t, Loop)
	dev := strings.TrimSpace(Run(t, "losetup", "-f", "--show", img))
	loopMu.Lock()
	attached[dev] = true
	loopMu.Unlock()
	t.Cleanup(func() { detach(t, dev) })
	return dev
}

// Detach detaches a loop device Attach attached, now.
func Detach(t testing.TB, dev string) {
	t.Helper()
	detach(t, dev)
}

func detach(t testing.TB, dev string) {
	loopMu.Lock()
	was := attached[dev]
	delete(attached, dev)
	loopMu.Unlock()
	if !was {
		return
	}
	if err := DetachErr(dev); err != nil {
		t.Error(err)
	}
}

// DetachErr runs losetup -d on dev and waits until the kernel has let the
// device go, for helpers that report errors instead of failing a test.
// The kernel defers a detach while anything (udev probing after the
// unmount, say) still holds the device open, and until it happens the
// image still backs it: xfsimg refuses to write such an image, so a test
// that detaches and then writes would fail on a loaded machine.
func DetachErr(dev string) error {
	backing := filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file")
	was, _ := os.ReadFile(backing)
	if out, err := RunErr("losetup", "-d", dev); err != nil {
		return fmt.Errorf("losetup -d %s: %v: %s", dev, err, out)
	}
	// Another test may attach the freed device at once: only our image
	// backing it counts as still attached.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if now, err := os.ReadFile(backing); err != nil || !bytes.Equal(now, was) {
			return nil
		}
	}
	return fmt.Errorf("%s still attached 10 s after losetup -d", dev)
}

// Mount attaches img and mounts it (with extra mount options, e.g. "ro");
// cleanup unmounts and detaches. It returns the mount point and the device.
func Mount(t testing.TB, img string, opts ...string) (dir, dev string) {
	t.Helper()
	dev = Attach(t, img)
	dir = t.TempDir()
	args := []string{"-t", "xfs"}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	if out, err := RunErr("mount", append(args, dev, dir)...); err != nil {
		t.Fatalf("mount %s (%s): %v: %s\n%s", dev, img, err, out, DmesgTail(20))
	}
	loopMu.Lock()
	mountDev[dir] = dev
	loopMu.Unlock()
	t.Cleanup(func() {
		if IsMounted(dir) {
			if out, err := RunErr("umount", dir); err != nil {
				t.Errorf("umount %s: %v: %s", dir, err, out)
			}
		}
	})
	return dir, dev
}

// Unmount unmounts a directory mounted by Mount before the test ends and
// detaches its loop device, so that the image is free for xfsimg to
// write (it refuses images that back a loop device).
func Unmount(t testing.TB, dir string) {
	t.Helper()
	Run(t, "umount", dir)
	loopMu.Lock()
	dev, ok := mountDev[dir]
	delete(mountDev, dir)
	loopMu.Unlock()
	if ok {
		detach(t, dev)
	}
}

// WithMount mounts img (with extra mount options), runs fn on the mount
// point, then unmounts and detaches at once: when it returns, the image is
// free for xfsimg to write. If fn fails the test, cleanup does the rest.
func WithMount(t testing.TB, img string, fn func(dir string), opts ...string) {
	t.Helper()
	dir, _ := Mount(t, img, opts...)
	fn(dir)
	Unmount(t, dir)
}

// IsMounted reports whether dir is a mount point.
func IsMounted(dir string) bool {
	_, err := RunErr("mountpoint", "-q", dir)
	return err == nil
}

// DmesgTail returns the last n lines of the kernel log, for failure reports.
func DmesgTail(n int) string {
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		return fmt.Sprintf("(dmesg: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
