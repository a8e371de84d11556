package convert_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// workload is a script of xfs_io commands over files f0..f(files-1), which
// exist empty (or as setup leaves them) before it runs. "open fN" switches
// files; the script starts on f0.
type workload struct {
	name   string
	mkfs   []string // after the defaults
	size   int64    // image size; 0: 512 MiB
	files  int
	setup  string // xfs_io commands through the kernel first, same syntax
	script string
}

// fileResult is what a workload left in one file.
type fileResult struct {
	size    int64
	sum     [32]byte
	extents int
}

// runKernelScript runs script through xfs_io on mnt, translating "open fN".
func runKernelScript(t *testing.T, mnt, script string) {
	t.Helper()
	var sc strings.Builder
	fmt.Fprintf(&sc, "open %s\n", filepath.Join(mnt, "f0"))
	for _, l := range strings.Split(script, "\n") {
		l = strings.TrimSpace(l)
		if f := strings.Fields(l); len(f) == 2 && f[0] == "open" {
			l = "open " + filepath.Join(mnt, f[1])
		} else if len(f) > 0 && f[0] == "pwrite" {
			l = "pwrite -q" + strings.TrimPrefix(l, "pwrite")
		}
		if l != "" {
			sc.WriteString(l + "\n")
		}
	}
	runXfsIO(t, sc.String())
}

// results reads every file's size, contents and extent count.
func results(t *testing.T, img string, files int) []fileResult {
	t.Helper()
	f, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fileResult
	for i := 0; i < files; i++ {
		ip, err := f.Lookup(fmt.Sprintf("/f%d", i), true)
		if err != nil {
			t.Fatal(err)
		}
		exts, err := ip.Extents(bmbt.DataFork)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fileResult{size: ip.Core.Size, sum: contentHash(t, ip), extents: len(exts)})
	}
	return out
}

// mountedSums reads the files through the kernel.
func mountedSums(t *testing.T, img string, files int) [][32]byte {
	t.Helper()
	mnt, umount := mountLoop(t, img, "ro")
	defer umount()
	var out [][32]byte
	for i := 0; i < files; i++ {
		b, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sha256.Sum256(b))
	}
	return out
}

// workloadImage makes the image a workload starts from.
func workloadImage(t *testing.T, w workload) string {
	t.Helper()
	size := w.size
	if size == 0 {
		size = 512 << 20
	}
	img := oracle.Mkfs(t, size, w.mkfs...)
	mnt, umount := mountLoop(t, img)
	for i := 0; i < max(w.files, 1); i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if w.setup != "" {
		runKernelScript(t, mnt, w.setup)
	}
	umount()
	return img
}

// runOurs runs a workload's script with xfsimg on img (a file or device).
func runOurs(t *testing.T, img, script string, opt convert.Options) convert.Stats {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s, err := convert.Open(dev, opt)
	if err != nil {
		t.Fatal(err)
	}
	ino, err := s.Lookup("f0")
	if err != nil {
		t.Fatal(err)
	}
	r := &convert.Runner{S: s, Path: "f0", Ino: ino}
	cmds, err := convert.ParseScript(strings.NewReader(script), int64(s.Geometry().BlockSize), int64(s.Geometry().SectSize))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := r.Run(c); err != nil {
			s.Close()
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s.Stats()
}

// compareWorkload runs w both ways and holds xfsimg's result to the
// kernel's: same sizes and bytes, clean repair and check, the kernel
// reads the same bytes, no more extents.
func compareWorkload(t *testing.T, w workload) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	files := max(w.files, 1)
	img := workloadImage(t, w)
	kimg := filepath.Join(t.TempDir(), "kernel.img")
	oracle.Run(t, "cp", "--sparse=always", img, kimg)

	runOurs(t, img, w.script, convert.Options{})
	mnt, umount := mountLoop(t, kimg)
	runKernelScript(t, mnt, w.script)
	umount()

	oracle.RequireRepairClean(t, img)
	requireCheckClean(t, img)
	ours, theirs := results(t, img, files), results(t, kimg, files)
	for i := range ours {
		o, k := ours[i], theirs[i]
		if o.size != k.size || o.sum != k.sum {
			t.Errorf("f%d: xfsimg size %d sum %x, kernel size %d sum %x", i, o.size, o.sum[:6], k.size, k.sum[:6])
		}
		if o.extents > k.extents {
			t.Errorf("f%d: xfsimg %d extents, kernel %d", i, o.extents, k.extents)
		}
		t.Logf("f%d: size %d, extents xfsimg %d kernel %d", i, o.size, o.extents, k.extents)
	}
	for i, sum := range mountedSums(t, img, files) {
		if sum != ours[i].sum {
			t.Errorf("f%d: the kernel reads other bytes than xfsimg's reader", i)
		}
	}
}

var workloads = []workload{
	{name: "sequential", script: "pwrite -b 64k 0 8m"},
	{name: "small-appends", script: "pwrite -b 1000 0 3m"},
	{name: "overwrite", setup: "pwrite -S 0x11 0 1m\nfsync", script: "pwrite -S 0x22 100k 300k\npwrite -S 0x33 1000 10"},
	{name: "sparse", script: "pwrite 0 4k\npwrite 1m 4k\npwrite 5m 64k\npwrite 100m 1"},
	{name: "extend-truncate", script: "pwrite 0 2m\ntruncate 1m\npwrite -S 1 1m 100k\ntruncate 3m"},
	{name: "punch-dirty", script: "pwrite 0 1m\nfpunch 100k 200k\npwrite -S 7 150k 10k"},
	{name: "fsync-points", script: "pwrite 0 100k\nfsync\npwrite 100k 100k\nfdatasync\npwrite 50k 300k\nsync_range 0 64k"},
	{name: "partial-blocks", setup: "pwrite -S 0x99 0 64k\nfsync", script: "pwrite -S 1 10 100\npwrite -S 2 5000 3000\npwrite -S 3 65000 1000"},
	{name: "interleaved", files: 3, script: "pwrite -S 1 0 64k\nopen f1\npwrite -S 2 0 64k\nopen f2\npwrite -S 3 0 64k\nopen f0\npwrite -S 4 64k 64k\nopen f1\npwrite -S 5 64k 64k"},
	{name: "fzero", setup: "pwrite -S 0x55 0 256k\nfsync", script: "fzero 1000 70000\npwrite 200k 10k\nfzero -k 250k 100k\nfzero 300k 5k"},
	{name: "1k-blocks", mkfs: []string{"-b", "size=1024"}, script: "pwrite -b 3000 0 2m\ntruncate 1000000\npwrite 3m 10k"},
}

func TestWorkloadsAgainstKernel(t *testing.T) {
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) { compareWorkload(t, w) })
	}
}
