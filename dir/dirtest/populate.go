package dirtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Directory names Standard creates, by the form the kernel gives them.
const (
	DirSF      = "sf"       // 3 entries: file, directory, symlink
	DirSFEmpty = "sf_empty" // no entries
	DirSFTypes = "sf_types" // every file type, a hard link
	DirSFLong  = "sf_long"  // a 150-byte name
	DirBlock   = "block"    // ~40 entries, long name, hard links, hash collisions, removals
	DirLeaf    = "leaf"     // one leaf block, removals leave stale entries and a hole
	DirNode    = "node"     // thousands of entries, 512 names with one hash, removals
	DirBtree   = "btree"    // node directory whose fork is in BTREE format
)

// Collisions returns 8^groups distinct names that all have the same
// DAHashName: the hash XORs each 4-byte group in at a rotation, so within
// a group flipping bit 0 of one byte and bit 7 of the next cancels out.
func Collisions(groups int) [][]byte {
	base := []byte("abcd")
	variants := make([][]byte, 0, 8)
	for m := 0; m < 8; m++ {
		g := bytes.Clone(base)
		for k := 0; k < 3; k++ {
			if m&(1<<k) != 0 {
				g[k] ^= 0x01
				g[k+1] ^= 0x80
			}
		}
		variants = append(variants, g)
	}
	out := [][]byte{nil}
	for i := 0; i < groups; i++ {
		var next [][]byte
		for _, p := range out {
			for _, v := range variants {
				next = append(next, append(bytes.Clone(p), v...))
			}
		}
		out = next
	}
	return out
}

type pop struct {
	t    testing.TB
	root string
}

func (p *pop) path(parts ...string) string {
	return filepath.Join(append([]string{p.root}, parts...)...)
}

func (p *pop) must(err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
}

func (p *pop) mkdir(parts ...string) { p.t.Helper(); p.must(os.Mkdir(p.path(parts...), 0o755)) }

func (p *pop) touch(parts ...string) {
	p.t.Helper()
	f, err := os.Create(p.path(parts...))
	p.must(err)
	p.must(f.Close())
}

func (p *pop) rm(parts ...string) { p.t.Helper(); p.must(os.Remove(p.path(parts...))) }

// writeSync writes one block of data to a new file and fsyncs it, so that
// its block is allocated now, next to the directory's latest block.
func (p *pop) writeSync(size int, parts ...string) {
	p.t.Helper()
	f, err := os.Create(p.path(parts...))
	p.must(err)
	_, err = f.Write(bytes.Repeat([]byte{'d'}, size))
	p.must(err)
	p.must(f.Sync())
	p.must(f.Close())
}

// everyType makes one of each file type in dir and returns their names.
func (p *pop) everyType(dir string) {
	p.t.Helper()
	p.touch(dir, "reg")
	p.mkdir(dir, "dir")
	p.must(os.Symlink("reg", p.path(dir, "symlink")))
	p.must(syscall.Mkfifo(p.path(dir, "fifo"), 0o644))
	p.must(syscall.Mknod(p.path(dir, "sock"), syscall.S_IFSOCK|0o644, 0))
	p.must(syscall.Mknod(p.path(dir, "chr"), syscall.S_IFCHR|0o644, 1<<8|3))
	p.must(syscall.Mknod(p.path(dir, "blk"), syscall.S_IFBLK|0o644, 7<<8))
}

// Standard populates root with a directory of each form (sized for the
// directory block size dirBlk) and returns their paths.
func Standard(dirBlk int) func(t testing.TB, root string) []string {
	return func(t testing.TB, root string) []string {
		p := &pop{t, root}
		long := strings.Repeat("L", 255)

		p.mkdir(DirSF)
		p.touch(DirSF, "a")
		p.mkdir(DirSF, "sub")
		p.must(os.Symlink("a", p.path(DirSF, "link")))

		p.mkdir(DirSFEmpty)

		p.mkdir(DirSFTypes)
		p.everyType(DirSFTypes)
		p.must(os.Link(p.path(DirSF, "a"), p.path(DirSFTypes, "hardlink")))

		// New inodes may reserve room for an attribute fork, leaving the
		// data fork too small for 255 bytes; 150 still fits.
		p.mkdir(DirSFLong)
		p.touch(DirSFLong, strings.Repeat("S", 150))
		p.touch(DirSFLong, "s")

		// Block: entries that fit one directory block with the long name
		// (which also keeps it too big to go back to shortform).
		p.mkdir(DirBlock)
		used := 64 + 8 + 2*(16+8) // header, tail, "." and ".."
		add := func(name string) { used += DirEntSize(len(name)) + 8 }
		if dirBlk >= 4096 {
			p.everyType(DirBlock)
			for _, n := range []string{"reg", "dir", "symlink", "fifo", "sock", "chr", "blk"} {
				add(n)
			}
		} else {
			p.touch(DirBlock, "reg")
			add("reg")
		}
		for _, n := range []string{long, "caf\xc3\xa9", "\xff\xfe\x80raw"} {
			p.touch(DirBlock, n)
			add(n)
		}
		for _, c := range Collisions(1) {
			p.touch(DirBlock, string(c))
			add(string(c))
		}
		for _, n := range []string{"reg.link1", "reg.link2"} {
			p.must(os.Link(p.path(DirBlock, "reg"), p.path(DirBlock, n)))
			add(n)
		}
		nblock := min(25, (dirBlk-used)/(DirEntSize(4)+8)-1)
		for i := 0; i < nblock; i++ {
			p.touch(DirBlock, fmt.Sprintf("b%03d", i))
		}
		for _, i := range []int{1, 2, 7} {
			p.rm(DirBlock, fmt.Sprintf("b%03d", i))
		}
		p.rm(DirBlock, string(Collisions(1)[3]))

		// Leaf: more than a block of data, less than a leaf of hashes.
		p.mkdir(DirLeaf)
		p.everyType(DirLeaf)
		nleaf := (dirBlk - 68) / 8 * 3 / 5
		for i := 0; i < nleaf; i++ {
			p.touch(DirLeaf, fmt.Sprintf("leaf-entry-%04d", i))
		}
		for i := 0; i < nleaf; i++ {
			if (i >= nleaf/4 && i < nleaf*3/4) || i%7 == 3 {
				p.rm(DirLeaf, fmt.Sprintf("leaf-entry-%04d", i))
			}
		}

		// Node: thousands of names of varied length, many with one hash.
		p.mkdir(DirNode)
		p.everyType(DirNode)
		p.touch(DirNode, long)
		const nnode = 5000
		nodeName := func(i int) string { return fmt.Sprintf("n%05d-%s", i, strings.Repeat("z", i%40)) }
		for i := 0; i < nnode; i++ {
			p.touch(DirNode, nodeName(i))
		}
		for _, c := range Collisions(3) {
			p.touch(DirNode, string(c))
		}
		for i := 0; i < nnode; i++ {
			if (i >= 1000 && i < 2000) || i%11 == 5 {
				p.rm(DirNode, nodeName(i))
			}
		}
		for i, c := range Collisions(3) {
			if i%5 == 0 {
				p.rm(DirNode, string(c))
			}
		}

		// Btree: long names, with a file written and synced after every
		// few so that the directory's blocks are scattered into more
		// extents than the inode can hold.
		p.mkdir(DirBtree)
		perBlock := (dirBlk - 64) / DirEntSize(246)
		ndata := 48
		for i := 0; i < ndata*perBlock; i++ {
			p.touch(DirBtree, fmt.Sprintf("%05d_%s", i, strings.Repeat("x", 240)))
			if i%max(1, perBlock/2) == 0 {
				p.writeSync(4096, DirBtree, fmt.Sprintf("f%05d", i))
			}
		}
		for i := 0; i < ndata*perBlock; i += 9 {
			p.rm(DirBtree, fmt.Sprintf("%05d_%s", i, strings.Repeat("x", 240)))
		}
		return []string{DirSF, DirSFEmpty, DirSFTypes, DirSFLong, DirBlock, DirLeaf, DirNode, DirBtree}
	}
}

// DirEntSize is the data block size of an entry with an n-byte name (ftype on).
func DirEntSize(n int) int { return (8 + 1 + n + 1 + 2 + 7) &^ 7 }
