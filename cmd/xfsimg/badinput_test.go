package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
)

// expectOneLineError runs xfsimg and checks the failure a user sees: exit
// status 1, exactly one line on stderr that contains want, and no trace of
// a panic.
func expectOneLineError(t *testing.T, want string, args ...string) {
	t.Helper()
	r := runCLI(t, args...)
	lines := strings.Split(strings.TrimRight(r.err, "\n"), "\n")
	if r.code != 1 || len(lines) != 1 || !strings.Contains(r.err, want) ||
		strings.Contains(r.err, "goroutine") || strings.Contains(r.err, "internal error") {
		t.Errorf("xfsimg %s: exit %d, stderr %q; want exit 1 and one line containing %q",
			strings.Join(args, " "), r.code, r.err, want)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// randomBytes is n seeded pseudo-random bytes: an image that is not XFS.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestBadInputs(t *testing.T) {
	random := randomBytes(1<<20, 7)
	cases := []struct {
		name string
		img  func(t *testing.T) string
		args []string // after the image
		want string
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.img") }, nil, "no such file"},
		{"empty file", func(t *testing.T) string { return writeFile(t, "empty.img", nil) }, nil, "too small"},
		{"random bytes", func(t *testing.T) string { return writeFile(t, "random.img", random) }, nil, "not an XFS file system"},
		{"zeros", func(t *testing.T) string { return writeFile(t, "zero.img", make([]byte, 1<<20)) }, nil, "not an XFS file system"},
		{"truncated image", truncatedImage, nil, "truncated"},
		{"path that does not exist", func(t *testing.T) string { return images.Extract(t, "sample") }, []string{"/no/such/file"}, "no such file or directory"},
		{"ls of a file", func(t *testing.T) string { return images.Extract(t, "sample") }, []string{"/README.txt"}, "not a directory"},
		{"AG out of range", func(t *testing.T) string { return images.Extract(t, "sample") }, []string{"agf", "99"}, "AG 99 does not exist"},
		{"unknown inspect target", func(t *testing.T) string { return images.Extract(t, "sample") }, []string{"frobnicate"}, "unknown inspect target"},
		{"inode number out of range", func(t *testing.T) string { return images.Extract(t, "sample") }, []string{"inode", "99999999999"}, "not a valid inode number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := c.img(t)
			cmd := "inspect"
			switch {
			case c.name == "path that does not exist":
				cmd = "cat"
			case c.name == "ls of a file":
				cmd = "ls"
			}
			expectOneLineError(t, c.want, append([]string{cmd, img}, c.args...)...)
		})
	}
}

func truncatedImage(t *testing.T) string {
	img := images.Extract(t, "sample")
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestForeignImages: file systems we do not read get a clear refusal.
func TestForeignImages(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	t.Run("ext4", func(t *testing.T) {
		if _, err := oracle.RunErr("mkfs.ext4", "-V"); err != nil {
			if oracle.Required() {
				t.Fatal("mkfs.ext4 missing (apt-get install e2fsprogs)")
			}
			t.Skip("mkfs.ext4 missing")
		}
		img := filepath.Join(t.TempDir(), "ext4.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 64<<20); err != nil {
			t.Fatal(err)
		}
		oracle.Run(t, "mkfs.ext4", "-q", "-F", img)
		expectOneLineError(t, "not an XFS file system", "inspect", img)
	})
	t.Run("v4", func(t *testing.T) {
		img := oracle.Mkfs(t, 512<<20, "-m", "crc=0")
		expectOneLineError(t, "version 4 (non-CRC) file systems are not supported yet", "inspect", img)
	})
}

// corrupt copies a fixture and changes it with xfs_db -x write commands.
func corrupt(t *testing.T, fixture string, cmds ...string) string {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs)
	img := images.Extract(t, fixture)
	args := []string{"-x"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	oracle.Run(t, "xfs_db", append(args, img)...)
	return img
}

func TestDamagedImages(t *testing.T) {
	t.Run("bad AGF CRC", func(t *testing.T) {
		// xfs_db write -c leaves the CRC as it was, so it no longer matches.
		img := corrupt(t, "sample", "agf 1", "write -c freeblks 12345")
		expectOneLineError(t, "agf 1", "inspect", img)
		r := runCLI(t, "inspect", img)
		if !strings.Contains(r.err, "CRC") {
			t.Errorf("stderr %q does not name the CRC", r.err)
		}
		// The damaged header is still shown, then the failure reported.
		r = runCLI(t, "inspect", img, "agf", "1")
		if r.code != 1 || !strings.Contains(r.out, "freeblks") || !strings.Contains(r.out, "(bad)") {
			t.Errorf("inspect agf 1 on a bad CRC: exit %d, out %q", r.code, r.out)
		}
		// The other AGs still read.
		if !strings.Contains(r.out, "12345") {
			t.Errorf("the damaged value is not shown")
		}
	})
	t.Run("btree pointer loop", func(t *testing.T) {
		// freesp-1k has two-level free-space btrees: point the root's
		// second child back at the root itself.
		img := corrupt(t, "freesp-1k", "agf 0", "addr bnoroot", "write ptrs[2] "+bnoRoot(t, "freesp-1k"))
		expectOneLineError(t, "bnobt", "inspect", img, "freesp")
	})
	t.Run("bad inode CRC", func(t *testing.T) {
		img := corrupt(t, "sample", "inode 131", "write -c core.size 1")
		expectOneLineError(t, "inode 131", "cat", img, "/README.txt")
	})
}

func bnoRoot(t *testing.T, fixture string) string {
	t.Helper()
	img := images.Extract(t, fixture)
	for _, kv := range oracle.ParseFields(oracle.DB(t, img, "agf 0", "p bnoroot")) {
		return kv.Value
	}
	t.Fatal("no bnoroot")
	return ""
}

// TestBadImagesEveryCommand holds every command that opens an image to the
// same rule on images that are not XFS, or not whole: one line on stderr
// that names the image, exit 1 (2 for check, whose 1 means problems
// found), no panic, and not a byte of the image changed, by the commands
// that write too.
func TestBadImagesEveryCommand(t *testing.T) {
	random := randomBytes(1<<20, 9)
	imgs := []struct {
		name string
		img  func(t *testing.T) string
	}{
		{"empty", func(t *testing.T) string { return writeFile(t, "empty.img", nil) }},
		{"random", func(t *testing.T) string { return writeFile(t, "random.img", random) }},
		{"zeros", func(t *testing.T) string { return writeFile(t, "zero.img", make([]byte, 1<<20)) }},
		{"truncated", truncatedImage},
	}
	host := writeFile(t, "host", []byte("data"))
	cmds := []struct {
		args []string // IMAGE goes after the first
		code int
	}{
		{[]string{"inspect"}, 1},
		{[]string{"inspect", "sb"}, 1},
		{[]string{"inspect", "agf", "0"}, 1},
		{[]string{"inspect", "inode", "/README.txt"}, 1},
		{[]string{"inspect", "bmap", "/README.txt"}, 1},
		{[]string{"inspect", "freesp"}, 1},
		{[]string{"inspect", "log"}, 1},
		{[]string{"ls", "/"}, 1},
		{[]string{"cat", "/README.txt"}, 1},
		{[]string{"readlink", "/link"}, 1},
		{[]string{"check"}, 2},
		{[]string{"recover"}, 1},
		{[]string{"recover", "--dry-run"}, 1},
		{[]string{"label"}, 1},
		{[]string{"label", "new"}, 1},
		{[]string{"write", "--from", host}, 1},
		{[]string{"convert", "-c", "pwrite 0 4k"}, 1},
	}
	for _, im := range imgs {
		t.Run(im.name, func(t *testing.T) {
			img := im.img(t)
			before, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cmds {
				args := append([]string{c.args[0], img}, c.args[1:]...)
				if c.args[0] == "write" || c.args[0] == "convert" {
					// PATH comes right after IMAGE.
					args = append([]string{c.args[0], img, "/README.txt"}, c.args[1:]...)
				}
				res := runCLI(t, args...)
				lines := strings.Split(strings.TrimRight(res.err, "\n"), "\n")
				if res.code != c.code || len(lines) != 1 || !strings.Contains(res.err, img) ||
					strings.Contains(res.err, "goroutine") || strings.Contains(res.err, "panic") {
					t.Errorf("xfsimg %s: exit %d, stderr %q; want exit %d and one line naming the image",
						strings.Join(args, " "), res.code, res.err, c.code)
				}
				if after, err := os.ReadFile(img); err != nil || !bytes.Equal(after, before) {
					t.Fatalf("xfsimg %s changed the image (%v)", strings.Join(args, " "), err)
				}
			}
		})
	}
}
