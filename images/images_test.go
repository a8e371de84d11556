package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// shared holds one extraction per fixture for the tests that only read
// images (xfs_repair -n, xfs_db -r, a read-only mount), so each image is
// decompressed once per test binary rather than once per test.
var shared struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

func sharedImage(t *testing.T, name string) string {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if p, ok := shared.paths[name]; ok {
		return p
	}
	if shared.dir == "" {
		d, err := os.MkdirTemp("", "xfsimg-images-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir, shared.paths = d, map[string]string{}
	}
	p := filepath.Join(shared.dir, name+".img")
	if err := ExtractTo(name, p); err != nil {
		t.Fatal(err)
	}
	shared.paths[name] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var wantNames = []string{"dirs-4k", "files-4k", "freesp-1k", "multi-ag", "sample"}

func TestNames(t *testing.T) {
	if got := Names(); !slices.Equal(got, wantNames) {
		t.Fatalf("Names() = %q, want %q", got, wantNames)
	}
	if _, err := Load("no-such-fixture"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(unknown) = %v, want not-exist", err)
	}
	if err := ExtractTo("no-such-fixture", filepath.Join(t.TempDir(), "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ExtractTo(unknown) = %v, want not-exist", err)
	}
}

func TestSampleIsTheFixture(t *testing.T) {
	b, err := fixtures.ReadFile("sample.img.zst")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Sample(), b) {
		t.Fatal("Sample() differs from sample.img.zst")
	}
	if len(b) > 100<<10 {
		t.Errorf("sample.img.zst is %d bytes; the demo image should stay under 100 KiB", len(b))
	}
}

// sparseInput builds data with zero runs of many lengths (aligned and not,
// at the start, in the middle, at the end) between non-zero runs.
func sparseInput(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b []byte
	for len(b) < 5<<20 {
		zeros := []int{0, 1, 4095, 4096, 4097, 3 * 4096, 1 << 20, r.IntN(3 << 20)}[r.IntN(8)]
		b = append(b, make([]byte, zeros)...)
		data := make([]byte, 1+r.IntN(3*4096))
		for i := range data {
			data[i] = byte(1 + r.IntN(255))
		}
		b = append(b, data...)
	}
	return append(b, make([]byte, 2<<20+123)...) // trailing hole, odd length
}

func compress(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecompressSparse(t *testing.T) {
	for seed := range uint64(4) {
		want := sparseInput(seed)
		z := compress(t, want)
		p := filepath.Join(t.TempDir(), "out")
		// Stale contents must not survive: the file is truncated first.
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xff}, len(want)+9999), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := DecompressSparse(bytes.NewReader(z), f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: decompressed %d bytes differ from the %d written", seed, len(got), len(want))
		}
	}
}

func TestDecompressSparseMakesHoles(t *testing.T) {
	want := append(append([]byte("head"), make([]byte, 64<<20)...), []byte("tail")...)
	p := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := DecompressSparse(bytes.NewReader(compress(t, want)), f); err != nil {
		t.Fatal(err)
	}
	st := statT(t, p)
	if st.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", st.Size(), len(want))
	}
	if used := blocksOf(st) * 512; used > 1<<20 {
		t.Errorf("64 MiB of zeros took %d bytes on disk; want holes", used)
	}
}

func TestDecompressSparseToPipe(t *testing.T) {
	want := sparseInput(9)
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(rd)
		done <- b
	}()
	if err := DecompressSparse(bytes.NewReader(compress(t, want)), wr); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	if got := <-done; !bytes.Equal(got, want) {
		t.Fatalf("pipe got %d bytes, want %d identical", len(got), len(want))
	}
}

func TestDecompressSparseRejectsGarbage(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z := compress(t, sparseInput(3))
	for name, in := range map[string][]byte{
		"not zstd":  []byte("this is not a zstd stream at all"),
		"truncated": z[:len(z)/2],
	} {
		if err := DecompressSparse(bytes.NewReader(in), f); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func load(t *testing.T, name string) *Manifest {
	t.Helper()
	m, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dbFields returns the name = value pairs the manifest's xfs_db check why
// recorded.
func dbFields(t *testing.T, m *Manifest, why string) map[string]string {
	t.Helper()
	for _, c := range m.DB {
		if c.Why == why {
			kv := map[string]string{}
			for _, f := range oracle.ParseFields(c.Out) {
				kv[f.Name] = f.Value
			}
			return kv
		}
	}
	t.Fatalf("%s: no xfs_db check %q", m.Name, why)
	return nil
}

func dbInt(t *testing.T, kv map[string]string, name string) int {
	t.Helper()
	v, err := strconv.Atoi(strings.Fields(kv[name] + " x")[0])
	if err != nil {
		t.Fatalf("xfs_db field %s = %q: %v", name, kv[name], err)
	}
	return v
}

// TestManifestsConsistent checks what must hold in any kernel's view of a
// file system: every directory's entries are exactly the paths listed under
// it, in the walk's order; hard links agree; link counts add up.
func TestManifestsConsistent(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			m := load(t, name)
			links := map[uint64][]*File{}
			for i := range m.Files {
				f := &m.Files[i]
				switch f.Type {
				case TypeFile:
					if len(f.SHA256) != 64 {
						t.Errorf("%s: sha256 %q", f.Path, f.SHA256)
					}
					links[f.Inode] = append(links[f.Inode], f)
				case TypeSymlink:
					if int64(len(f.Target)) != f.Size || f.Target == "" {
						t.Errorf("%s: target of %d bytes, size %d", f.Path, len(f.Target), f.Size)
					}
				case TypeDir:
					kids := m.Children(f.Path)
					if len(kids) != len(f.Entries) {
						t.Fatalf("%s: %d entries, %d paths under it", f.Path, len(f.Entries), len(kids))
					}
					subdirs := 0
					for j, e := range f.Entries {
						k := kids[j]
						if filepath.Base(k.Path) != e.Name || k.Inode != e.Inode || k.Type != e.Type {
							t.Errorf("%s: entry %d %+v, path %s inode %d type %s", f.Path, j, e, k.Path, k.Inode, k.Type)
						}
						if e.Type == TypeDir {
							subdirs++
						}
					}
					if f.Nlink != uint32(2+subdirs) {
						t.Errorf("%s: nlink %d with %d subdirectories", f.Path, f.Nlink, subdirs)
					}
				case TypeFifo, TypeChardev, TypeBlockdev, TypeSocket:
				default:
					t.Errorf("%s: type %q", f.Path, f.Type)
				}
			}
			for ino, fs := range links {
				for _, f := range fs[1:] {
					if f.SHA256 != fs[0].SHA256 || f.Size != fs[0].Size || f.Mode != fs[0].Mode || f.Extents != fs[0].Extents {
						t.Errorf("inode %d: %s and %s differ", ino, fs[0].Path, f.Path)
					}
				}
				if int(fs[0].Nlink) != len(fs) {
					t.Errorf("inode %d (%s): nlink %d, %d paths", ino, fs[0].Path, fs[0].Nlink, len(fs))
				}
			}
			for _, why := range []string{"geometry", "ag0 free space"} {
				dbFields(t, m, why)
			}
			if g := dbFields(t, m, "geometry"); dbInt(t, g, "blocksize") != m.BlockSize {
				t.Errorf("blocksize %d, xfs_db says %s", m.BlockSize, g["blocksize"])
			}
		})
	}
}

// promises holds what each fixture was made to contain.
var promises = map[string]func(t *testing.T, m *Manifest){
	"dirs-4k": func(t *testing.T, m *Manifest) {
		for role, n := range map[string][2]int{
			"sf_dir": {3, 3}, "block_dir": {30, 60}, "leaf_dir": {300, 500},
			"node_dir": {800, 1500}, "btree_dir": {500, 10000},
		} {
			f := mustRole(t, m, role)
			if len(f.Entries) < n[0] || len(f.Entries) > n[1] {
				t.Errorf("%s %s: %d entries, want %d..%d", role, f.Path, len(f.Entries), n[0], n[1])
			}
		}
		if f := mustRole(t, m, "btree_dir"); f.Extents <= 21 {
			t.Errorf("btree_dir: %d extents cannot need a BMBT", f.Extents)
		}
		types := map[string]bool{}
		dirsOf := map[uint64]map[string]bool{}
		long := false
		for _, f := range m.Files {
			types[f.Type] = true
			if f.Type == TypeFile && f.Nlink > 1 {
				if dirsOf[f.Inode] == nil {
					dirsOf[f.Inode] = map[string]bool{}
				}
				dirsOf[f.Inode][filepath.Dir(f.Path)] = true
			}
			long = long || len(filepath.Base(f.Path)) == 255
		}
		for _, ty := range []string{TypeFile, TypeDir, TypeSymlink, TypeFifo, TypeChardev, TypeBlockdev, TypeSocket} {
			if !types[ty] {
				t.Errorf("no %s", ty)
			}
		}
		if !long {
			t.Error("no 255-byte name")
		}
		multi := false
		for _, d := range dirsOf {
			multi = multi || len(d) > 1
		}
		if !multi {
			t.Error("no hard link spanning directories")
		}
	},
	"files-4k": func(t *testing.T, m *Manifest) {
		for p, size := range map[string]int64{"/empty": 0, "/tiny1": 1, "/tiny100": 100, "/exact4096": 4096, "/large": 64 << 20} {
			if f := mustPath(t, m, p); f.Size != size {
				t.Errorf("%s: size %d, want %d", p, f.Size, size)
			}
		}
		sp := mustRole(t, m, "sparse")
		if sp.Size <= 1<<30 || sp.Size%4096 == 0 || sp.Blocks*512 > 1<<20 || sp.Extents != 3 {
			t.Errorf("sparse: %+v", *sp)
		}
		for _, role := range []string{"btree_file", "btree_file_b"} {
			if f := mustRole(t, m, role); f.Extents < 600 {
				t.Errorf("%s: %d extents, want >= 600", role, f.Extents)
			}
		}
		if f := mustRole(t, m, "unwritten"); f.Extents < 3 || f.Blocks*512 != 4<<20 {
			t.Errorf("unwritten: %+v", *f)
		}
		if f := mustRole(t, m, "prealloc_past_eof"); f.Blocks*512 <= 1<<20 || f.Size != 10000 {
			t.Errorf("prealloc_past_eof: %+v", *f)
		}
		if f := mustRole(t, m, "inline_symlink"); len(f.Target) > 50 {
			t.Errorf("inline symlink target has %d bytes", len(f.Target))
		}
		if f := mustRole(t, m, "remote_symlink"); len(f.Target) != 1000 || f.Extents != 1 {
			t.Errorf("remote symlink: %d bytes, %d extents", len(f.Target), f.Extents)
		}
		if f := mustRole(t, m, "xattr_shortform"); f.Xattrs["user.color"] != "blue" || f.Xattrs["trusted.fixture"] != "files-4k" {
			t.Errorf("xattr_shortform: %q", f.Xattrs)
		}
		if f := mustRole(t, m, "xattr_leaf"); len(f.Xattrs) != 40 {
			t.Errorf("xattr_leaf: %d attributes", len(f.Xattrs))
		}
		if f := mustRole(t, m, "xattr_remote"); len(f.Xattrs["user.big"]) < 4096 {
			t.Errorf("xattr_remote: value of %d bytes", len(f.Xattrs["user.big"]))
		}
		if f := mustPath(t, m, "/links/tiny100-a"); f.Nlink != 3 || f.Mode&0o4000 == 0 {
			t.Errorf("/links/tiny100-a: nlink %d mode %o", f.Nlink, f.Mode)
		}
		if f := mustPath(t, m, "/tiny1"); f.UID != 1000 || f.GID != 1000 {
			t.Errorf("/tiny1: owner %d:%d", f.UID, f.GID)
		}
	},
	"freesp-1k": func(t *testing.T, m *Manifest) {
		if m.BlockSize != 1024 {
			t.Errorf("blocksize %d", m.BlockSize)
		}
		n := 0
		for _, f := range m.Files {
			if f.Type == TypeFile {
				n++
			}
		}
		if n < 900 {
			t.Errorf("%d files", n)
		}
		agcount := dbInt(t, dbFields(t, m, "geometry"), "agcount")
		for ag := range agcount {
			kv := dbFields(t, m, "ag"+strconv.Itoa(ag)+" free space")
			if dbInt(t, kv, "bnolevel") < 2 || dbInt(t, kv, "cntlevel") < 2 {
				t.Errorf("ag %d: bnolevel %s cntlevel %s, want multi-level", ag, kv["bnolevel"], kv["cntlevel"])
			}
		}
	},
	"multi-ag": func(t *testing.T, m *Manifest) {
		g := dbFields(t, m, "geometry")
		if g["sectsize"] != "4096" || g["inodesize"] != "1024" || g["agcount"] != "16" {
			t.Errorf("geometry %q", g)
		}
		// An inode number is agno, then agblklog bits of block, then
		// inopblog bits of inode within the block.
		agblklog := 0
		for 1<<agblklog < dbInt(t, g, "agblocks") {
			agblklog++
		}
		inopblog := 0
		for 1<<inopblog < m.BlockSize/dbInt(t, g, "inodesize") {
			inopblog++
		}
		ags := map[uint64]bool{}
		for _, f := range m.Files {
			ags[f.Inode>>(agblklog+inopblog)] = true
		}
		if len(ags) < 12 {
			t.Errorf("inodes in only %d AGs", len(ags))
		}
		if f := mustRole(t, m, "bigsf_dir"); len(f.Entries) < 40 {
			t.Errorf("bigsf_dir: %d entries", len(f.Entries))
		}
		for _, role := range []string{"extents_45", "btree_45"} {
			if f := mustRole(t, m, role); f.Extents != 45 {
				t.Errorf("%s: %d extents", role, f.Extents)
			}
		}
		if f := mustRole(t, m, "xattr_inline"); len(f.Xattrs) != 12 {
			t.Errorf("xattr_inline: %d attributes", len(f.Xattrs))
		}
	},
	"sample": func(t *testing.T, m *Manifest) {
		if f := mustPath(t, m, "/README.txt"); f.Size < 100 {
			t.Errorf("README.txt: %d bytes", f.Size)
		}
		if f := mustRole(t, m, "btree_file"); f.Extents <= 21 {
			t.Errorf("btree_file: %d extents", f.Extents)
		}
		if f := mustRole(t, m, "sparse"); f.Blocks*512 >= f.Size/10 {
			t.Errorf("sparse: %d bytes allocated of %d", f.Blocks*512, f.Size)
		}
	},
}

func mustPath(t *testing.T, m *Manifest, p string) *File {
	t.Helper()
	f := m.Lookup(p)
	if f == nil {
		t.Fatalf("%s: no %s", m.Name, p)
	}
	return f
}

func mustRole(t *testing.T, m *Manifest, role string) *File {
	t.Helper()
	f := m.Role(role)
	if f == nil {
		t.Fatalf("%s: no role %s", m.Name, role)
	}
	return f
}

func TestManifestsKeepPromises(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			check, ok := promises[name]
			if !ok {
				t.Fatalf("fixture %s has no promises test", name)
			}
			check(t, load(t, name))
		})
	}
}

// blocksOf is st_blocks: 512-byte units allocated.
func blocksOf(st os.FileInfo) int64 { return st.Sys().(*syscall.Stat_t).Blocks }

func statT(t *testing.T, p string) os.FileInfo {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestExtract(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			m := load(t, name)
			img := Extract(t, name)
			st := statT(t, img)
			if st.Size() != m.Size {
				t.Fatalf("extracted %d bytes, manifest says %d", st.Size(), m.Size)
			}
			if used := blocksOf(st) * 512; used > m.Size/4 {
				t.Errorf("extracted image uses %d bytes on disk of %d: not sparse", used, m.Size)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sb := make([]byte, 512)
			if _, err := io.ReadFull(f, sb); err != nil {
				t.Fatal(err)
			}
			if string(sb[:4]) != "XFSB" {
				t.Fatalf("superblock magic %q", sb[:4])
			}
			if bs := binary.BigEndian.Uint32(sb[4:]); int(bs) != m.BlockSize {
				t.Errorf("sb_blocksize %d, manifest %d", bs, m.BlockSize)
			}
			if dblocks := binary.BigEndian.Uint64(sb[8:]); int64(dblocks)*int64(m.BlockSize) != m.Size {
				t.Errorf("sb_dblocks %d * %d != image size %d", dblocks, m.BlockSize, m.Size)
			}
		})
	}
}

func TestRepairClean(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			oracle.RequireRepairClean(t, sharedImage(t, name))
		})
	}
}

var nextentsRE = regexp.MustCompile(`core\.nextents = (\d+)`)

// TestXfsDBAgrees replays every xfs_db check recorded in the manifests,
// re-asserts the BMBT-format forks directly, and compares every inode's
// core.nextents with the manifest's extent count.
func TestXfsDBAgrees(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := load(t, name)
			img := sharedImage(t, name)
			for _, c := range m.DB {
				if got := strings.TrimRight(oracle.DB(t, img, c.Cmds...), "\n"); got != c.Out {
					t.Errorf("%s: xfs_db %q printed\n%s\nmanifest recorded\n%s", c.Why, c.Cmds, got, c.Out)
				}
			}
			for role := range m.Roles {
				if !strings.HasPrefix(role, "btree_") {
					continue
				}
				f := m.Role(role)
				ino := "inode " + strconv.FormatUint(f.Inode, 10)
				if got := oracle.DB(t, img, ino, "p core.format"); got != "core.format = 3 (btree)\n" {
					t.Errorf("%s %s: %q", role, f.Path, got)
				}
				level := oracle.DB(t, img, ino, "p u3.bmbt.level")
				if n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(level, "u3.bmbt.level = "))); err != nil || n < 1 {
					t.Errorf("%s %s: %q", role, f.Path, level)
				}
			}
			var inos []uint64
			seen := map[uint64]*File{}
			for i := range m.Files {
				if f := &m.Files[i]; seen[f.Inode] == nil {
					seen[f.Inode] = f
					inos = append(inos, f.Inode)
				}
			}
			var cmds []string
			for _, ino := range inos {
				cmds = append(cmds, "inode "+strconv.FormatUint(ino, 10), "p core.nextents")
			}
			got := nextentsRE.FindAllStringSubmatch(oracle.DB(t, img, cmds...), -1)
			if len(got) != len(inos) {
				t.Fatalf("xfs_db printed %d nextents for %d inodes", len(got), len(inos))
			}
			for i, ino := range inos {
				if n, _ := strconv.Atoi(got[i][1]); n != seen[ino].Extents {
					t.Errorf("%s (inode %d): xfs_db core.nextents %d, manifest %d", seen[ino].Path, ino, n, seen[ino].Extents)
				}
			}
		})
	}
}
