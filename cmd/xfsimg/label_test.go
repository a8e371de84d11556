package main

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// labelGeometries: the log's block size, sector size and stripe unit all
// change how the journal lays out and pads its records.
var labelGeometries = []struct {
	name string
	size int64
	mkfs []string
}{
	{"default", 512 << 20, nil},
	{"1k-blocks", 512 << 20, []string{"-b", "size=1024"}},
	// mkfs refuses -l sectsize=4096 alone for an internal log; -s size=4096
	// gives the log 4096-byte sectors (and a 4096-byte stripe unit).
	{"4k-log-sectors", 512 << 20, []string{"-s", "size=4096"}},
	{"log-su-32k", 512 << 20, []string{"-l", "su=32k"}},
	{"data-and-log-su", 1 << 30, []string{"-d", "su=64k,sw=4", "-l", "su=32k,size=64m"}},
}

var logprintComplaint = regexp.MustCompile(`(?i)\b(bad|error|invalid|unknown|corrupt\w*|mismatch|unexpected)\b`)

// requireLogprintClean runs xfs_logprint in record and transaction views.
func requireLogprintClean(t *testing.T, img string) {
	t.Helper()
	for _, args := range [][]string{{img}, {"-t", img}} {
		out, err := exec.Command("xfs_logprint", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("xfs_logprint %v: %v\n%s", args, err, out)
		}
		if m := logprintComplaint.Find(out); m != nil {
			t.Fatalf("xfs_logprint %v complains (%q):\n%s", args, m, out)
		}
	}
}

// kernelLabel mounts img and returns the label the kernel reports.
func kernelLabel(t *testing.T, img string) string {
	t.Helper()
	var out string
	oracle.WithMount(t, img, func(dir string) { out = oracle.Run(t, "xfs_io", "-c", "label", dir) })
	m := regexp.MustCompile(`label = "(.*)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("xfs_io label: %q", out)
	}
	return m[1]
}

func TestLabelCommand(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, geo := range labelGeometries {
		t.Run(geo.name, func(t *testing.T) {
			img := oracle.Mkfs(t, geo.size, geo.mkfs...)
			var got labelJSON
			cliJSON(t, &got, "label", img)
			if got.Label != "" {
				t.Fatalf("fresh image label %q", got.Label)
			}
			if out := mustCLI(t, "label", img, "xfsimg-test"); out != "new label = \"xfsimg-test\"\n" {
				t.Fatalf("output %q", out)
			}
			requireLogprintClean(t, img)
			oracle.RequireRepairClean(t, img)
			if out := strings.TrimSpace(oracle.Run(t, "blkid", "-p", "-s", "LABEL", "-o", "value", img)); out != "xfsimg-test" {
				t.Fatalf("blkid label %q", out)
			}
			if l := kernelLabel(t, img); l != "xfsimg-test" {
				t.Fatalf("kernel label %q", l)
			}
			oracle.RequireRepairClean(t, img)
			// The kernel's own unmount record follows ours; ours must
			// still be accepted after it, and once more after a change.
			cliJSON(t, &got, "label", img, "twelve-bytes")
			if got.Label != "twelve-bytes" || got.Previous == nil || *got.Previous != "xfsimg-test" ||
				got.Log == nil || got.Log.Checkpoints < 1 {
				t.Fatalf("json %+v", got)
			}
			cliJSON(t, &got, "label", img)
			if got.Label != "twelve-bytes" {
				t.Fatalf("label read back %q", got.Label)
			}
			requireLogprintClean(t, img)
			oracle.RequireRepairClean(t, img)
			if l := kernelLabel(t, img); l != "twelve-bytes" {
				t.Fatalf("kernel label %q", l)
			}
			// "--" clears it, as xfs_admin -L -- does.
			mustCLI(t, "label", img, "--")
			if l := kernelLabel(t, img); l != "" {
				t.Fatalf("kernel label after clearing %q", l)
			}
			for _, sb := range []string{"sb 1", "sb 3"} {
				if out := oracle.DB(t, img, sb, "p fname"); !strings.Contains(out, `fname = "\000\000`) {
					t.Fatalf("%s not cleared: %s", sb, out)
				}
			}
			oracle.RequireRepairClean(t, img)
		})
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// requireOneLineFailure runs xfsimg and wants exit 1, one line on stderr
// containing want, nothing on stdout.
func requireOneLineFailure(t *testing.T, want string, args ...string) {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != 1 || strings.Count(r.err, "\n") != 1 || !strings.Contains(r.err, want) || r.out != "" {
		t.Fatalf("xfsimg %s: exit %d, stdout %q, stderr %q; want one line with %q", strings.Join(args, " "), r.code, r.out, r.err, want)
	}
}

func TestLabelRefusals(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img := oracle.Mkfs(t, 512<<20)
	sum := fileSum(t, img)
	unchanged := func(what string) {
		t.Helper()
		if fileSum(t, img) != sum {
			t.Fatalf("%s: the image changed", what)
		}
	}

	requireOneLineFailure(t, "too long: 13 bytes, at most 12", "label", img, "thirteen-char")
	unchanged("label too long")

	// Mounted: the image file backs the loop device; the device itself is
	// held exclusively by the kernel.
	oracle.WithMount(t, img, func(dir string) {
		dev := strings.TrimSpace(oracle.Run(t, "findmnt", "-n", "-o", "SOURCE", dir))
		requireOneLineFailure(t, "backs loop device "+dev, "label", img, "x")
		requireOneLineFailure(t, "device is busy", "label", dev, "x")
	})

	// A dirty log: written by the kernel, then shut down without
	// unmounting cleanly.
	dirty := oracle.Mkfs(t, 512<<20)
	oracle.WithMount(t, dirty, func(d string) {
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 64k", "-c", "fsync", filepath.Join(d, "f"))
		oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", d)
	})
	dsum := fileSum(t, dirty)
	requireOneLineFailure(t, "log is dirty: run xfsimg recover or mount the file system first", "label", dirty, "x")
	if fileSum(t, dirty) != dsum {
		t.Fatal("dirty log: the image changed")
	}

	// Read-only: root writes through file modes, so make it immutable.
	sum = fileSum(t, img)
	if out, err := exec.Command("chattr", "+i", img).CombinedOutput(); err != nil {
		t.Logf("chattr +i unavailable (%v: %s); read-only case not run", err, out)
	} else {
		defer exec.Command("chattr", "-i", img).Run()
		requireOneLineFailure(t, "cannot open for writing: the file is read-only", "label", img, "x")
		exec.Command("chattr", "-i", img).Run()
		unchanged("read-only file")
	}
}
