package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
)

// testImage is an image with the kernel's description of its contents.
type testImage struct {
	name  string
	path  string
	files []images.File
}

// freshGeometries are made with mkfs.xfs and populated through the kernel
// by each run, beside the committed fixtures.
var freshGeometries = []struct {
	name string
	mkfs []string
}{
	{"fresh-default", nil},
	{"fresh-1k", []string{"-b", "size=1024"}},
	{"fresh-7ag-4ksect", []string{"-d", "agcount=7", "-s", "size=4096"}},
	{"fresh-1kinode-8kdir", []string{"-i", "size=1024", "-n", "size=8192"}},
}

// populate fills a mounted file system through the kernel with a bit of
// everything the read path handles.
func populate(t *testing.T, mnt string) {
	t.Helper()
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(mnt, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mnt, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		dir string
		n   int
	}{{"small", 3}, {"medium", 40}, {"big", 500}} {
		for i := 0; i < d.n; i++ {
			write(fmt.Sprintf("%s/file-%04d-with-a-longer-name", d.dir, i), []byte(fmt.Sprintf("%s %d\n", d.dir, i)))
		}
	}
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	write("large", big)
	write("empty", nil)
	// Fragmented: one block every other block, so every block is its own
	// extent and the map is a BMBT.
	args := []string{"-f"}
	for i := 0; i < 300; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -S 0x%02x %d 1k", i%251, i*8192))
	}
	oracle.Run(t, "xfs_io", append(args, filepath.Join(mnt, "frag"))...)
	oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 64k", "-c", "pwrite 100m 4k", "-c", "truncate 150m", filepath.Join(mnt, "sparse"))
	oracle.Run(t, "xfs_io", "-f", "-c", "falloc 0 1m", "-c", "pwrite -S 0xab 256k 8k", filepath.Join(mnt, "prealloc"))
	if err := os.Symlink("small/file-0001-with-a-longer-name", filepath.Join(mnt, "short-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 120)+"target", filepath.Join(mnt, "long-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(mnt, "large"), filepath.Join(mnt, "medium", "hardlink-to-large")); err != nil {
		t.Fatal(err)
	}
}

// testImages returns the committed fixtures and freshly made images.
func testImages(t *testing.T) []testImage {
	t.Helper()
	oracle.Require(t, oracle.Loop, oracle.Xfsprogs)
	var out []testImage
	for _, name := range images.Names() {
		m, err := images.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, testImage{name: name, path: images.Extract(t, name), files: m.Files})
	}
	for _, g := range freshGeometries {
		img := oracle.Mkfs(t, 600<<20, g.mkfs...)
		mnt, _ := oracle.Mount(t, img)
		populate(t, mnt)
		oracle.Unmount(t, mnt)
		ro, _ := oracle.Mount(t, img, "ro")
		files, err := images.KernelWalk(ro)
		if err != nil {
			t.Fatal(err)
		}
		oracle.Unmount(t, ro)
		out = append(out, testImage{name: g.name, path: img, files: files})
	}
	return out
}

// TestReadPathAgainstOracles is the read path's acceptance test: on every
// fixture and on fresh kernel-made images, every header field equals
// xfs_db's, every extent map equals xfs_db bmap, free space totals equal the
// AGF counters, and every file's bytes and every directory's entries equal
// what the kernel shows.
func TestReadPathAgainstOracles(t *testing.T) {
	for _, img := range testImages(t) {
		t.Run(img.name, func(t *testing.T) {
			t.Run("headers", func(t *testing.T) { checkHeaders(t, img.path) })
			t.Run("bmap", func(t *testing.T) { checkBmaps(t, img) })
			t.Run("freesp", func(t *testing.T) { checkFreesp(t, img.path) })
			t.Run("cat", func(t *testing.T) { checkCat(t, img) })
			t.Run("ls", func(t *testing.T) { checkLs(t, img) })
		})
	}
}

// compareFields checks our "name = value" lines against xfs_db's.
func compareFields(t *testing.T, what, ours, theirs string) {
	t.Helper()
	got, want := parseFieldLines(ours), parseFieldLines(theirs)
	if len(want) == 0 {
		t.Fatalf("%s: xfs_db printed no fields:\n%s", what, theirs)
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d fields, xfs_db prints %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s: field %d: got %s = %q, xfs_db %s = %q", what, i, got[i][0], got[i][1], want[i][0], want[i][1])
		}
	}
}

func agCount(t *testing.T, img string) int {
	t.Helper()
	var sb map[string]any
	cliJSON(t, &sb, "inspect", img, "sb")
	return int(sb["agcount"].(float64))
}

func checkHeaders(t *testing.T, img string) {
	compareFields(t, "sb", mustCLI(t, "inspect", img, "sb"), oracle.DB(t, img, "sb 0", "p"))
	for ag := 0; ag < agCount(t, img); ag++ {
		for _, h := range []string{"agf", "agi", "agfl"} {
			what := fmt.Sprintf("%s %d", h, ag)
			compareFields(t, what, mustCLI(t, "inspect", img, h, strconv.Itoa(ag)), oracle.DB(t, img, what, "p"))
		}
	}
}

var dbBmapLine = regexp.MustCompile(`^(data|attr) offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)$`)

// xfsDBBmaps asks xfs_db for the maps of many inodes in one run. Each
// inode's output starts with its core.nextents line, which separates them.
func xfsDBBmaps(t *testing.T, img string, inos []uint64) map[uint64][]string {
	t.Helper()
	out := map[uint64][]string{}
	for start := 0; start < len(inos); start += 400 {
		batch := inos[start:min(start+400, len(inos))]
		var cmds []string
		for _, ino := range batch {
			cmds = append(cmds, fmt.Sprintf("inode %d", ino), "p core.nextents", "bmap") // both forks
		}
		i := -1
		for _, line := range strings.Split(oracle.DB(t, img, cmds...), "\n") {
			switch {
			case strings.HasPrefix(line, "core.nextents"):
				i++
			case dbBmapLine.MatchString(line):
				m := dbBmapLine.FindStringSubmatch(line)
				out[batch[i]] = append(out[batch[i]], strings.Join(m[1:], " "))
			}
		}
		if i != len(batch)-1 {
			t.Fatalf("xfs_db printed %d inodes of %d", i+1, len(batch))
		}
	}
	return out
}

func checkBmaps(t *testing.T, img testImage) {
	seen := map[uint64]bool{}
	var inos []uint64
	for _, f := range img.files {
		if !seen[f.Inode] {
			seen[f.Inode] = true
			inos = append(inos, f.Inode)
		}
	}
	want := xfsDBBmaps(t, img.path, inos)
	for _, ino := range inos {
		var got []string
		for _, fork := range []string{"data", "attr"} {
			var exts []bmapJSON
			args := []string{"inspect", img.path, "bmap", strconv.FormatUint(ino, 10)}
			if fork == "attr" {
				args = append(args, "--attr")
			}
			cliJSON(t, &exts, args...)
			for _, e := range exts {
				got = append(got, fmt.Sprintf("%s %d %d %d %d", fork, e.StartOff, e.StartBlock, e.BlockCount, e.ExtentFlag))
			}
		}
		if strings.Join(got, "\n") != strings.Join(want[ino], "\n") {
			t.Errorf("inode %d: bmap\n%s\nxfs_db bmap\n%s", ino, strings.Join(got, "\n"), strings.Join(want[ino], "\n"))
		}
	}
}

var dbFreespRow = regexp.MustCompile(`^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+$`)

func checkFreesp(t *testing.T, img string) {
	var fs freespJSON
	cliJSON(t, &fs, "inspect", img, "freesp")
	var freeblks, flcount uint64
	for ag := 0; ag < agCount(t, img); ag++ {
		for _, kv := range oracle.ParseFields(oracle.DB(t, img, fmt.Sprintf("agf %d", ag), "p freeblks flcount")) {
			v, _ := strconv.ParseUint(kv.Value, 10, 64)
			switch kv.Name {
			case "freeblks":
				freeblks += v
			case "flcount":
				flcount += v
			}
		}
	}
	if !fs.Agree || fs.Bnobt.Blocks != freeblks || fs.Cntbt.Blocks != freeblks || fs.Freeblks != freeblks {
		t.Errorf("freesp: bnobt %d, cntbt %d blocks, AGF freeblks %d (ours %d), agree %v",
			fs.Bnobt.Blocks, fs.Cntbt.Blocks, freeblks, fs.Freeblks, fs.Agree)
	}
	if fs.Histogram.Blocks != freeblks+flcount {
		t.Errorf("freesp histogram holds %d blocks, AGF freeblks+flcount is %d", fs.Histogram.Blocks, freeblks+flcount)
	}
	var rows []string
	for _, line := range strings.Split(oracle.DB(t, img, "freesp"), "\n") {
		if m := dbFreespRow.FindStringSubmatch(line); m != nil {
			rows = append(rows, strings.Join(m[1:], " "))
		}
	}
	var ours []string
	for _, b := range fs.Histogram.Buckets {
		ours = append(ours, fmt.Sprintf("%d %d %d %d", b.From, b.To, b.Extents, b.Blocks))
	}
	if strings.Join(rows, "\n") != strings.Join(ours, "\n") {
		t.Errorf("freesp histogram\n%s\nxfs_db freesp\n%s", strings.Join(ours, "\n"), strings.Join(rows, "\n"))
	}
}

func checkCat(t *testing.T, img testImage) {
	n := 0
	for _, f := range img.files {
		if f.Type != images.TypeFile {
			continue
		}
		h := &countingHash{h: sha256.New()}
		if r := runCLITo(t, h, "cat", img.path, f.Path); r.code != 0 {
			t.Fatalf("cat %s: exit %d: %s", f.Path, r.code, r.err)
		}
		if got := hex.EncodeToString(h.h.Sum(nil)); got != f.SHA256 || h.n != f.Size {
			t.Errorf("%s: cat gives %d bytes sha256 %s; kernel %d bytes %s", f.Path, h.n, got, f.Size, f.SHA256)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no regular files to read")
	}
}

func checkLs(t *testing.T, img testImage) {
	for _, f := range img.files {
		if f.Type != images.TypeDir {
			continue
		}
		var got []lsEntry
		cliJSON(t, &got, "ls", img.path, f.Path)
		var gs, ws []string
		for _, e := range got {
			gs = append(gs, fmt.Sprintf("%s %d %s", e.Name, e.Inode, e.Type))
		}
		for _, e := range f.Entries {
			ws = append(ws, fmt.Sprintf("%s %d %s", e.Name, e.Inode, e.Type))
		}
		if strings.Join(gs, "\n") != strings.Join(ws, "\n") {
			t.Errorf("%s: ls differs from the kernel's readdir:\nours   %v\nkernel %v", f.Path, gs, ws)
		}
	}
}

// countingHash hashes what is written to it and counts the bytes.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
