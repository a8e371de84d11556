package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// convertImage makes an image with /f (1 MiB written, size 1 MiB + 100), a
// directory /d and a symlink /l, through the kernel.
func convertImage(t *testing.T) string {
	t.Helper()
	img := oracle.Mkfs(t, 512<<20)
	oracle.WithMount(t, img, func(d string) {
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite -q -S 0x5a 0 1048676", "-c", "fsync", filepath.Join(d, "f"))
		oracle.Run(t, "mkdir", filepath.Join(d, "d"))
		oracle.Run(t, "ln", "-s", "f", filepath.Join(d, "l"))
	})
	return img
}

// TestConvertCommand runs a script and -c commands through the CLI and
// checks the result with the kernel: sizes, unwritten flags, zeroed bytes,
// the preallocation flag and times; the JSON summary adds up.
func TestConvertCommand(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop, oracle.Root)
	img := convertImage(t)
	script := filepath.Join(t.TempDir(), "ops")
	os.WriteFile(script, []byte("# grow, with a hole\nfalloc 4m 2m\n\nfpunch 4100 10000 # zero the edges\n"), 0o644)
	before := time.Now().Add(-time.Second)
	var got convertJSON
	cliJSON(t, &got, "convert", img, "/f", "-f", script, "-c", "falloc -k 8m 1m", "-c", "truncate 7m")
	if got.Ops != 4 || got.ExtentsCreated != 2 || got.ExtentsRemoved != 1 || got.BlocksAlloc != 768 || got.BlocksFreed != 1 || got.Transactions < 4 || got.Checkpoints < 1 || got.LogBytes == 0 {
		t.Fatalf("summary %+v", got)
	}
	oracle.RequireRepairClean(t, img)

	f, err := xfs.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := f.Lookup("/f", false)
	if err != nil {
		t.Fatal(err)
	}
	if ip.Core.Flags&ondisk.DiFlagPrealloc == 0 {
		t.Error("prealloc flag not set")
	}
	if mt := ip.Core.Mtime.Time(); mt.Before(before) || ip.Core.Ctime != ip.Core.Mtime {
		t.Errorf("mtime %v ctime %v, want now", mt, ip.Core.Ctime.Time())
	}
	f.Close()

	oracle.WithMount(t, img, func(d string) {
		p := filepath.Join(d, "f")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != 7<<20 {
			t.Errorf("size %d, want 7 MiB", st.Size())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range b {
			want := byte(0)
			if i < 4100 || (i >= 14100 && i < 1048676) {
				want = 0x5a
			}
			if c != want {
				t.Fatalf("byte %d is %#x, want %#x", i, c, want)
			}
		}
		fm := oracle.Run(t, "xfs_io", "-r", "-c", "fiemap -v", p)
		// [8k, 12k) punched: a hole between the written head and the
		// rest; [4m, 6m) unwritten; a truncate up frees nothing, so the
		// -k preallocation at 8m is still there past EOF.
		if !regexp.MustCompile(`\[16\.\.23\]:\s+hole`).MatchString(fm) || !strings.Contains(fm, "[8192..12287]") ||
			!strings.Contains(fm, "[16384..18431]") || strings.Count(fm, "0x80") < 2 {
			t.Errorf("fiemap:\n%s", fm)
		}
	})
}

// TestConvertRefusals: one line, exit 1, image unchanged, for every way a
// conversion cannot go ahead.
func TestConvertRefusals(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop, oracle.Root)
	img := convertImage(t)
	sum := fileSum(t, img)
	unchanged := func(what string) {
		t.Helper()
		if fileSum(t, img) != sum {
			t.Fatalf("%s: the image changed", what)
		}
	}
	for _, c := range []struct {
		want string
		args []string
	}{
		{"no such file or directory", []string{"convert", img, "/nope", "-c", "truncate 0"}},
		{"not a regular file", []string{"convert", img, "/d", "-c", "truncate 0"}},
		{"no space left on device", []string{"convert", img, "/f", "-c", "falloc 0 1g"}},
		{"no space left on device", []string{"convert", img, "/f", "-c", "falloc -k 10m 600m"}},
		{"unknown command", []string{"convert", img, "/f", "-c", "pread 0 4k"}},
		{"creating files is not implemented yet", []string{"convert", img, "/f", "-c", "open /nope"}},
		{"non-numeric offset argument -- -1", []string{"convert", img, "/f", "-c", "fpunch -1 4k"}},
		{"option -p is not supported", []string{"convert", img, "/f", "-c", "falloc -p 0 4k"}},
		{"invalid argument", []string{"convert", img, "/f", "-c", "falloc 0 0"}},
		{"no commands", []string{"convert", img, "/f"}},
	} {
		requireOneLineFailure(t, c.want, c.args...)
		unchanged(strings.Join(c.args[2:], " "))
	}
	// The symlink is followed, as xfs_io's open would.
	mustCLI(t, "convert", img, "/l", "-c", "falloc -k 2m 4k")
	oracle.RequireRepairClean(t, img)

	// A dirty log.
	dirty := oracle.Mkfs(t, 512<<20)
	oracle.WithMount(t, dirty, func(d string) {
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 64k", "-c", "fsync", filepath.Join(d, "f"))
		oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", d)
	})
	dsum := fileSum(t, dirty)
	requireOneLineFailure(t, "log is dirty", "convert", dirty, "/f", "-c", "truncate 0")
	if fileSum(t, dirty) != dsum {
		t.Fatal("dirty log: the image changed")
	}
	// Features convert does not write.
	striped := oracle.Mkfs(t, 1<<30, "-d", "su=64k,sw=2")
	oracle.WithMount(t, striped, func(d string) { oracle.Run(t, "touch", filepath.Join(d, "f")) })
	ssum := fileSum(t, striped)
	requireOneLineFailure(t, "stripe-aligned allocation", "convert", striped, "/f", "-c", "falloc 0 4k")
	if fileSum(t, striped) != ssum {
		t.Fatal("striped: the image changed")
	}
}
