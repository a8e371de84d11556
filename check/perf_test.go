package check_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// Perf image: a 4 GiB file system holding 100,000 inodes made by the
// kernel (1000 directories of 100 small files, a few large and fragmented
// files), kept in a cache directory so that it is built once.
const (
	perfImageSize = 4 << 30
	perfDirs      = 1000
	perfPerDir    = 100
)

// perfCacheDir is where the perf image is kept: $XFSIMG_CACHE, else the
// user cache directory.
func perfCacheDir(t testing.TB) string {
	if d := os.Getenv("XFSIMG_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "xfsimg")
}

// perfImage returns the path of the perf image, building it when missing.
func perfImage(t testing.TB) string {
	t.Helper()
	dir := perfCacheDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, fmt.Sprintf("check-perf-%dk.img", perfDirs*perfPerDir/1000))
	if _, err := os.Stat(img); err == nil {
		return img
	}
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	tmp := img + ".building"
	oracle.MkfsAt(t, tmp, perfImageSize)
	mnt, _ := oracle.Mount(t, tmp)
	start := time.Now()
	populatePerf(t, mnt)
	oracle.Unmount(t, mnt)
	if err := os.Rename(tmp, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", img, time.Since(start))
	return img
}

// populatePerf writes the perf image's files through the kernel, a few
// directories at a time.
func populatePerf(t testing.TB, mnt string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16<<10)
			for d := range next {
				dir := filepath.Join(mnt, fmt.Sprintf("d%03d/sub%02d", d/40, d%40))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					errs <- err
					return
				}
				for i := 0; i < perfPerDir; i++ {
					size := (d*perfPerDir + i) % 13 * 1000
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d", i)), buf[:size], 0o644); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for d := 0; d < perfDirs; d++ {
		next <- d
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite -q -b 4m 0 256m", filepath.Join(mnt, fmt.Sprintf("big%d", i)))
	}
	args := []string{"-f"}
	for i := 0; i < 3000; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q %d 4k", i*8192))
	}
	oracle.Run(t, "xfs_io", append(args, filepath.Join(mnt, "frag"))...)
}

// median runs fn n times and returns the median duration.
func median(n int, fn func()) time.Duration {
	var ds []time.Duration
	for range n {
		st := time.Now()
		fn()
		ds = append(ds, time.Since(st))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// TestCheckPerformance (XFSIMG_LONG=1): on the perf image, xfsimg check
// (the command, as a user runs it) takes no longer than xfs_repair -n,
// measured alternately in the same run.
func TestCheckPerformance(t *testing.T) {
	if os.Getenv("XFSIMG_LONG") != "1" {
		t.Skip("XFSIMG_LONG=1 runs this (builds a 4 GiB image once)")
	}
	oracle.Require(t, oracle.Xfsprogs)
	img := perfImage(t)
	f, err := xfs.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := check.Run(f, check.Options{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	requireClean(t, "perf image", r)
	if r.Stats.Inodes < 100000 {
		t.Fatalf("perf image has %d inodes, want at least 100000", r.Stats.Inodes)
	}
	bin := filepath.Join(t.TempDir(), "xfsimg")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/xfsimg/xfsimg/cmd/xfsimg").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(name string, args ...string) func() {
		return func() {
			if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s %v: %v\n%s", name, args, err, out)
			}
		}
	}
	ours := run(bin, "check", img)
	theirs := run("xfs_repair", "-n", "-f", img)
	ours()
	theirs() // warm both
	var a, b []time.Duration
	for range 5 {
		a = append(a, median(1, ours))
		b = append(b, median(1, theirs))
	}
	slices.Sort(a)
	slices.Sort(b)
	ratio := float64(a[2]) / float64(b[2])
	t.Logf("%d inodes, %d directories, %d extents: xfsimg check %v, xfs_repair -n %v, ratio %.2f",
		r.Stats.Inodes, r.Stats.Directories, r.Stats.Extents, a[2], b[2], ratio)
	if ratio > 1 {
		t.Errorf("xfsimg check is slower than xfs_repair -n: ratio %.2f", ratio)
	}
}
