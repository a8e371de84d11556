// Package dirtest builds real XFS images with directories of every format,
// populated through the Linux kernel, and hands tests what they need to
// read them back: each directory's inode number, fork format, size, inline
// fork bytes, extent map (from xfs_db bmap) and the kernel's own readdir
// output (getdents64, with d_off). It is for tests only.
package dirtest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Extent is one line of xfs_db's bmap output.
type Extent struct {
	StartOff, StartBlock, BlockCount uint64
	Unwritten                        bool
}

// Mapper maps file blocks through an extent list; it implements dir.Mapper
// and dir.LastMapper.
type Mapper struct{ Extents []Extent } // sorted by StartOff

// Map returns the physical block of file block fb.
func (m *Mapper) Map(fb uint64) (uint64, bool, error) {
	i := sort.Search(len(m.Extents), func(i int) bool { return m.Extents[i].StartOff+m.Extents[i].BlockCount > fb })
	if i < len(m.Extents) && m.Extents[i].StartOff <= fb {
		e := m.Extents[i]
		return e.StartBlock + fb - e.StartOff, true, nil
	}
	return 0, false, nil
}

// LastMapped is the file block after the last extent.
func (m *Mapper) LastMapped() (uint64, error) {
	if len(m.Extents) == 0 {
		return 0, nil
	}
	e := m.Extents[len(m.Extents)-1]
	return e.StartOff + e.BlockCount, nil
}

// FileReader reads file system blocks from an image file.
type FileReader struct {
	F *os.File
	G *ondisk.Geometry
}

// ReadBlocks reads n blocks at AG-encoded block fsb.
func (r *FileReader) ReadBlocks(fsb uint64, n int) ([]byte, error) {
	buf := make([]byte, n*r.G.BlockSize)
	if _, err := r.F.ReadAt(buf, r.G.FSBDaddr(fsb)<<ondisk.BBShift); err != nil {
		return nil, err
	}
	return buf, nil
}

// Dirent is one record of getdents64.
type Dirent struct {
	Ino  uint64
	Off  int64 // d_off: the position of the next entry
	Type uint8 // DT_*
	Name string
}

// DirInfo is one directory of the image.
type DirInfo struct {
	Path    string // relative to the file system root
	Ino     uint64
	Format  uint8 // di_format
	Size    int64 // di_size
	Local   []byte
	Extents []Extent
	Readdir []Dirent // in the kernel's order
}

// Image is a populated, unmounted image.
type Image struct {
	Path string
	G    *ondisk.Geometry
	Dirs []*DirInfo
}

// Geometries the tests run on: mkfs arguments by name.
var Geometries = []struct {
	Name string
	Args []string
}{
	{"4k", nil},
	// mkfs's smallest directory block is 4 KiB: here it spans 4 fs blocks.
	{"1k", []string{"-b", "size=1024"}},
	{"dir8k", []string{"-n", "size=8192"}},
	{"dir16k", []string{"-n", "size=16384"}},
}

// Build makes an image with mkfs args, mounts it, runs populate (which
// returns the directories to inspect, relative to the root), records the
// kernel's readdir of each, unmounts, and reads back their inodes.
func Build(t testing.TB, args []string, populate func(t testing.TB, root string) []string) *Image {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	img := oracle.Mkfs(t, 512<<20, args...)
	// Mount with an autoclear loop device and unmount before returning,
	// even on t.Fatal: fuzz workers are killed without running cleanups,
	// so nothing may be left attached for a cleanup to undo.
	mnt := t.TempDir()
	if out, err := oracle.RunErr("mount", "-t", "xfs", "-o", "loop", img, mnt); err != nil {
		t.Fatalf("mount %s: %v: %s\n%s", img, err, out, oracle.DmesgTail(20))
	}
	mounted := true
	defer func() {
		if mounted {
			oracle.RunErr("umount", mnt)
		}
	}()
	paths := populate(t, mnt)
	im := &Image{Path: img}
	for _, p := range paths {
		ents, err := Getdents(filepath.Join(mnt, p))
		if err != nil {
			t.Fatalf("getdents %s: %v", p, err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mnt, p), &st); err != nil {
			t.Fatal(err)
		}
		im.Dirs = append(im.Dirs, &DirInfo{Path: p, Ino: st.Ino, Readdir: ents})
	}
	if out, err := oracle.RunErr("umount", mnt); err != nil {
		t.Fatalf("umount %s: %v: %s", mnt, err, out)
	}
	mounted = false

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sbuf := make([]byte, 4096)
	if _, err := f.ReadAt(sbuf, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(sbuf)
	if err == nil {
		err = sb.Verify()
	}
	if err != nil {
		t.Fatal(err)
	}
	im.G = ondisk.NewGeometry(sb)
	for _, d := range im.Dirs {
		out := oracle.DB(t, img, fmt.Sprintf("inode %d", d.Ino), "p core.format core.size", "bmap")
		if err := parseInode(out, d); err != nil {
			t.Fatalf("%s: %v\n%s", d.Path, err, out)
		}
		if d.Format == 1 {
			d.Local = readFork(t, f, im.G, d.Ino)
		}
	}
	return im
}

var bmapLine = regexp.MustCompile(`^data offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d+)$`)

func parseInode(out string, d *DirInfo) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := bmapLine.FindStringSubmatch(line); m != nil {
			off, _ := strconv.ParseUint(m[1], 10, 64)
			start, _ := strconv.ParseUint(m[2], 10, 64)
			count, _ := strconv.ParseUint(m[3], 10, 64)
			d.Extents = append(d.Extents, Extent{off, start, count, m[4] != "0"})
			continue
		}
		if v, ok := strings.CutPrefix(line, "core.format = "); ok {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				return err
			}
			d.Format = uint8(n)
		}
		if v, ok := strings.CutPrefix(line, "core.size = "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return err
			}
			d.Size = n
		}
	}
	if d.Format == 0 {
		return fmt.Errorf("no core.format in xfs_db output")
	}
	sort.Slice(d.Extents, func(i, j int) bool { return d.Extents[i].StartOff < d.Extents[j].StartOff })
	return nil
}

// dinodeCoreSize is the v3 inode core: the data fork starts right after it.
const dinodeCoreSize = 176

func readFork(t testing.TB, f *os.File, g *ondisk.Geometry, ino uint64) []byte {
	loc := g.LocateInode(ino)
	buf := make([]byte, loc.ClusterLen)
	if _, err := f.ReadAt(buf, loc.ClusterDaddr<<ondisk.BBShift); err != nil {
		t.Fatal(err)
	}
	inode := buf[loc.Offset : loc.Offset+g.InodeSize]
	if binary.BigEndian.Uint16(inode) != 0x494e || binary.BigEndian.Uint64(inode[152:]) != ino {
		t.Fatalf("inode %d: not found at its location", ino)
	}
	return inode[dinodeCoreSize:]
}

// Getdents lists a directory with getdents64 in one pass, keeping d_off.
func Getdents(path string) ([]Dirent, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var out []Dirent
	buf := make([]byte, 1<<20)
	for {
		n, err := syscall.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		for p := 0; p < n; {
			reclen := int(binary.NativeEndian.Uint16(buf[p+16:]))
			name := buf[p+19 : p+reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			out = append(out, Dirent{
				Ino:  binary.NativeEndian.Uint64(buf[p:]),
				Off:  int64(binary.NativeEndian.Uint64(buf[p+8:])),
				Type: buf[p+18],
				Name: string(name),
			})
			p += reclen
		}
	}
}

// Open opens the image for reading blocks.
func (im *Image) Open(t testing.TB) *FileReader {
	f, err := os.Open(im.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &FileReader{F: f, G: im.G}
}

// Dir returns the directory with the given path.
func (im *Image) Dir(path string) *DirInfo {
	for _, d := range im.Dirs {
		if d.Path == path {
			return d
		}
	}
	return nil
}

// RawBlock is one directory block read straight from the image.
type RawBlock struct {
	Dir   *DirInfo
	DA    uint64 // file block of its first fs block
	Daddr int64  // disk address recorded in its header
	Buf   []byte
}

// Blocks reads every directory block of d (by its extent map: a directory
// block may span several extents).
func (im *Image) Blocks(t testing.TB, r *FileReader, d *DirInfo) []RawBlock {
	m := &Mapper{d.Extents}
	per := uint64(im.G.DirBlkFSBs)
	var out []RawBlock
	seen := map[uint64]bool{}
	for _, e := range d.Extents {
		for fb := e.StartOff; fb < e.StartOff+e.BlockCount; fb++ {
			da := fb - fb%per
			if seen[da] {
				continue
			}
			seen[da] = true
			var buf []byte
			var daddr int64
			for i := uint64(0); i < per; i++ {
				fsb, ok, _ := m.Map(da + i)
				if !ok {
					t.Fatalf("%s: directory block %d partly mapped", d.Path, da)
				}
				if i == 0 {
					daddr = im.G.FSBDaddr(fsb)
				}
				b, err := r.ReadBlocks(fsb, 1)
				if err != nil {
					t.Fatal(err)
				}
				buf = append(buf, b...)
			}
			out = append(out, RawBlock{Dir: d, DA: da, Daddr: daddr, Buf: buf})
		}
	}
	return out
}

// BlockReader is what dir.BlockReader asks for.
type BlockReader interface {
	ReadBlocks(fsb uint64, n int) ([]byte, error)
}

// MemReader serves file system blocks from memory: those of Blocks, with
// Overlay replacing some of them. Blocks not present are an error.
type MemReader struct {
	BlockSize int
	Blocks    map[uint64][]byte
	Overlay   map[uint64][]byte
}

// ReadBlocks reads n blocks at fsb.
func (r *MemReader) ReadBlocks(fsb uint64, n int) ([]byte, error) {
	out := make([]byte, 0, n*r.BlockSize)
	for i := uint64(0); i < uint64(n); i++ {
		b, ok := r.Overlay[fsb+i]
		if !ok {
			b, ok = r.Blocks[fsb+i]
		}
		if !ok {
			return nil, fmt.Errorf("block %d is not in memory", fsb+i)
		}
		out = append(out, b...)
	}
	return out, nil
}

// Load reads every mapped block of the directories into a MemReader.
func (im *Image) Load(t testing.TB, dirs ...*DirInfo) *MemReader {
	r := im.Open(t)
	m := &MemReader{BlockSize: im.G.BlockSize, Blocks: map[uint64][]byte{}, Overlay: map[uint64][]byte{}}
	for _, d := range dirs {
		for _, e := range d.Extents {
			b, err := r.ReadBlocks(e.StartBlock, int(e.BlockCount))
			if err != nil {
				t.Fatal(err)
			}
			for i := uint64(0); i < e.BlockCount; i++ {
				m.Blocks[e.StartBlock+i] = b[i*uint64(im.G.BlockSize) : (i+1)*uint64(im.G.BlockSize)]
			}
		}
	}
	return m
}

// Replace puts a whole directory block (at file block da of d) into the
// overlay, after stamping its CRC where its magic says the CRC lives, so
// that a damaged block reaches the checks beyond the CRC.
func (m *MemReader) Replace(g *ondisk.Geometry, d *DirInfo, da uint64, blk []byte) {
	StampDirCRC(blk)
	mp := &Mapper{d.Extents}
	for i := 0; i < g.DirBlkFSBs && (i+1)*g.BlockSize <= len(blk); i++ {
		if fsb, ok, _ := mp.Map(da + uint64(i)); ok {
			m.Overlay[fsb] = blk[i*g.BlockSize : (i+1)*g.BlockSize]
		}
	}
}

// StampDirCRC stamps the CRC of a directory block of any kind, found by
// its magic; a block with no known magic is left alone.
func StampDirCRC(blk []byte) {
	if len(blk) < 64 {
		return
	}
	switch binary.BigEndian.Uint32(blk) {
	case ondisk.Dir3BlockMagic, ondisk.Dir3DataMagic, ondisk.Dir3FreeMagic:
		ondisk.StampCRC(blk, ondisk.Dir3BlkHdrCRCOff)
		return
	}
	switch ondisk.DA3Magic(blk) {
	case ondisk.DA3NodeMagic, ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic:
		ondisk.StampCRC(blk, ondisk.DA3BlkInfoCRCOff)
	}
}
