// Package images holds the XFS test fixtures: file system images made by
// mkfs.xfs and populated through the Linux kernel by mkfixtures.sh, stored
// zstd-compressed, each with a manifest of what the kernel reported in it
// (paths, inodes, modes, sizes, sha256 of contents, readdir order, extent
// counts) and of the on-disk shapes xfs_db confirmed (btree forks, directory
// formats, free-space btree levels).
//
// The manifests are the oracle every reader, checker and writer test
// compares with; they never come from xfsimg's own code. The fixtures are
// embedded, so any test package can extract them without path games.
package images

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

//go:embed *.img.zst *.manifest.json
var fixtures embed.FS

// sample is embedded on its own so that a binary using only Sample (the
// demo command) links 30 KiB, not every fixture.
//
//go:embed sample.img.zst
var sample []byte

// File types as the manifest spells them.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeFifo     = "fifo"
	TypeChardev  = "chardev"
	TypeBlockdev = "blockdev"
	TypeSocket   = "socket"
)

// Manifest describes one fixture as the kernel saw it after unmount and a
// fresh read-only mount.
type Manifest struct {
	Name      string   `json:"name"`
	Mkfs      []string `json:"mkfs"` // mkfs.xfs options besides -f -q and the image
	Size      int64    `json:"size"` // image size in bytes
	BlockSize int      `json:"blocksize"`
	MadeBy    string   `json:"made_by"` // "mkfs.xfs 6.1.0 + Linux <uname -r>"
	// Roles names the files that carry what the fixture promises
	// ("btree_dir", "btree_file", ...), by path.
	Roles map[string]string `json:"roles"`
	// DB holds xfs_db commands run read-only on the finished image and
	// their exact output: each fixture's promised shapes, every AG's
	// free-space btree levels and counters, and the geometry.
	DB    []DBCheck `json:"xfs_db"`
	Files []File    `json:"files"` // pre-order walk in kernel readdir order, "/" first

	byPath map[string]int
}

// DBCheck is one `xfs_db -r -c cmd ...` run and what it printed, trailing
// newline removed.
type DBCheck struct {
	Why  string   `json:"why"`
	Cmds []string `json:"cmds"`
	Out  string   `json:"out"`
}

// File is one path. Hard links appear once per path, with the same Inode.
type File struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Inode uint64 `json:"inode"`
	Mode  uint32 `json:"mode"` // st_mode, type bits included
	Nlink uint32 `json:"nlink"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Size  int64  `json:"size"`
	// Blocks is st_blocks: 512-byte units allocated, unwritten extents and
	// preallocation past EOF included.
	Blocks int64 `json:"blocks"`
	// SHA256 of the contents (regular files), hex.
	SHA256 string `json:"sha256,omitempty"`
	// Target of a symlink.
	Target string `json:"target,omitempty"`
	// Extents is the number of data-fork extent records, holes excluded,
	// unwritten extents and preallocation past EOF included. Regular files:
	// FS_IOC_FIEMAP (what filefrag counts), cross-checked equal to xfs_db
	// core.nextents. Directories, symlinks and special files: xfs_db
	// core.nextents, since the kernel offers no FIEMAP for them.
	Extents int `json:"extents"`
	// Major and Minor of a device node.
	Major uint32 `json:"major,omitempty"`
	Minor uint32 `json:"minor,omitempty"`
	// Xattrs of regular files and directories, full names ("user.x",
	// "trusted.y") to values (all ASCII in these fixtures).
	Xattrs map[string]string `json:"xattrs,omitempty"`
	// Entries of a directory in kernel readdir order, without . and ..
	Entries []DirEntry `json:"entries,omitempty"`
}

// DirEntry is one directory entry as getdents returned it.
type DirEntry struct {
	Name  string `json:"name"`
	Inode uint64 `json:"inode"`
	Type  string `json:"type"`
}

const (
	imgSuffix      = ".img.zst"
	manifestSuffix = ".manifest.json"
)

// Names lists the fixtures present (image and manifest both), sorted.
func Names() []string {
	ents, err := fixtures.ReadDir(".")
	if err != nil {
		panic(err) // the embedded directory always reads
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	var names []string
	for n := range have {
		if name, ok := strings.CutSuffix(n, manifestSuffix); ok && have[name+imgSuffix] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Load reads and checks the manifest of fixture name. An unknown name
// gives an error wrapping fs.ErrNotExist.
func Load(name string) (*Manifest, error) {
	b, err := fixtures.ReadFile(name + manifestSuffix)
	if err != nil {
		return nil, fmt.Errorf("fixture %q: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("fixture %q: manifest: %w", name, err)
	}
	if m.Name != name {
		return nil, fmt.Errorf("fixture %q: manifest names %q", name, m.Name)
	}
	if len(m.Files) == 0 || m.Files[0].Path != "/" || m.Files[0].Type != TypeDir {
		return nil, fmt.Errorf("fixture %q: manifest does not start with the root directory", name)
	}
	m.byPath = make(map[string]int, len(m.Files))
	for i, f := range m.Files {
		if _, dup := m.byPath[f.Path]; dup {
			return nil, fmt.Errorf("fixture %q: path %q listed twice", name, f.Path)
		}
		m.byPath[f.Path] = i
	}
	for role, p := range m.Roles {
		if _, ok := m.byPath[p]; !ok {
			return nil, fmt.Errorf("fixture %q: role %s names missing path %q", name, role, p)
		}
	}
	return &m, nil
}

// Lookup returns the file at path ("/dir/name"), or nil.
func (m *Manifest) Lookup(p string) *File {
	i, ok := m.byPath[p]
	if !ok {
		return nil
	}
	return &m.Files[i]
}

// Role returns the file playing role ("btree_dir", ...), or nil.
func (m *Manifest) Role(role string) *File {
	p, ok := m.Roles[role]
	if !ok {
		return nil
	}
	return m.Lookup(p)
}

// Children returns the files directly inside directory dir, in readdir
// order.
func (m *Manifest) Children(dir string) []*File {
	var out []*File
	for i := range m.Files {
		f := &m.Files[i]
		if f.Path != "/" && path.Dir(f.Path) == dir {
			out = append(out, f)
		}
	}
	return out
}

// Extract decompresses fixture name into a sparse file in t.TempDir() and
// returns its path. A 1 GiB image costs only its data on disk.
func Extract(t testing.TB, name string) string {
	t.Helper()
	p := path.Join(t.TempDir(), name+".img")
	if err := ExtractTo(name, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// ExtractTo decompresses fixture name into a new sparse file at dst. An
// unknown name gives an error wrapping fs.ErrNotExist.
func ExtractTo(name, dst string) error {
	src, err := fixtures.Open(name + imgSuffix)
	if err != nil {
		return fmt.Errorf("fixture %q: %w", name, err)
	}
	defer src.Close()
	w, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = DecompressSparse(src, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("fixture %q: %w", name, err)
	}
	return nil
}

// Sample returns the zstd-compressed sample image (a small tree of text
// files, a sparse and a fragmented file) for `xfsimg demo`; decompress it
// with DecompressSparse.
func Sample() []byte { return sample }

// holeChunk is the granularity of zero detection: file systems allocate in
// blocks of at least this, so finer holes would save nothing.
const holeChunk = 4096

var zeroChunk [holeChunk]byte

// DecompressSparse decompresses the zstd stream r into w from offset 0.
// When w is a regular file it is truncated first and every all-zero 4 KiB
// chunk is skipped rather than written, so runs of zeros become holes; the
// file is then sized to the decompressed length. Anything else (a block
// device, a pipe) receives every byte in order.
func DecompressSparse(r io.Reader, w *os.File) error {
	st, err := w.Stat()
	if err != nil {
		return err
	}
	sparse := st.Mode().IsRegular()
	if sparse {
		if err := w.Truncate(0); err != nil {
			return err
		}
	}
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	defer dec.Close()

	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, rerr := fill(dec, buf)
		if n > 0 {
			if sparse {
				err = writeNonZero(w, buf[:n], off)
			} else {
				_, err = w.Write(buf[:n])
			}
			if err != nil {
				return err
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("zstd: %w", rerr)
		}
	}
	if sparse {
		return w.Truncate(off)
	}
	return nil
}

// fill reads until buf is full or r fails. Unlike io.ReadFull it passes a
// truncated stream's io.ErrUnexpectedEOF through rather than making one up
// for a short final read, so only io.EOF means a clean end.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// writeNonZero writes buf at off, one WriteAt per run of chunks that are
// not entirely zero.
func writeNonZero(w *os.File, buf []byte, off int64) error {
	start := -1 // first byte of the pending non-zero run
	for i := 0; i < len(buf); i += holeChunk {
		end := min(i+holeChunk, len(buf))
		zero := bytes.Equal(buf[i:end], zeroChunk[:end-i])
		if !zero && start < 0 {
			start = i
		}
		if zero && start >= 0 {
			if _, err := w.WriteAt(buf[start:i], off+int64(start)); err != nil {
				return err
			}
			start = -1
		}
	}
	if start >= 0 {
		if _, err := w.WriteAt(buf[start:], off+int64(start)); err != nil {
			return err
		}
	}
	return nil
}
