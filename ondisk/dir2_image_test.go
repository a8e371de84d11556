package ondisk_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/xfsimg/xfsimg/dir/dirtest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// dirBlkSize is the directory block size mkfs gives for the arguments.
func dirBlkSize(args []string) int {
	bs, ds := 4096, 0
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-b":
			fmt.Sscanf(args[i+1], "size=%d", &bs)
		case "-n":
			fmt.Sscanf(args[i+1], "size=%d", &ds)
		}
	}
	if ds != 0 {
		return ds
	}
	return max(bs, 4096)
}

// Block kinds, by where a block sits and its magic.
const (
	kindSF    = "sf"
	kindBlock = "block"
	kindData  = "data"
	kindLeaf1 = "leaf1"
	kindLeafN = "leafn"
	kindNode  = "node"
	kindFree  = "free"
)

// dirBlock is one real directory structure with what verifying it needs.
type dirBlock struct {
	kind  string
	geo   string
	g     *ondisk.Geometry
	dir   *dirtest.DirInfo
	da    uint64
	daddr int64
	buf   []byte
}

func (b *dirBlock) String() string {
	return fmt.Sprintf("%s/%s %s block at file block %d (daddr %d)", b.geo, b.dir.Path, b.kind, b.da, b.daddr)
}

// classify names a block of the directory by its place in the address
// space and its magic.
func classify(g *ondisk.Geometry, da uint64, buf []byte) string {
	switch {
	case da < ondisk.DirLeafOffset>>g.BlockLog:
		if len(buf) >= 4 && bytes.Equal(buf[:4], []byte("XDB3")) {
			return kindBlock
		}
		return kindData
	case da < ondisk.DirFreeOffset>>g.BlockLog:
		switch ondisk.DA3Magic(buf) {
		case ondisk.Dir3Leaf1Magic:
			return kindLeaf1
		case ondisk.Dir3LeafNMagic:
			return kindLeafN
		}
		return kindNode
	}
	return kindFree
}

// imageBlocks builds the standard image for one geometry and returns every
// directory structure in it.
func imageBlocks(t testing.TB, geo string, args []string) (*dirtest.Image, []*dirBlock) {
	t.Helper()
	im := dirtest.Build(t, args, dirtest.Standard(dirBlkSize(args)))
	r := im.Open(t)
	var out []*dirBlock
	for _, di := range im.Dirs {
		if di.Format == 1 {
			out = append(out, &dirBlock{kind: kindSF, geo: geo, g: im.G, dir: di, buf: bytes.Clone(di.Local[:di.Size])})
			continue
		}
		for _, rb := range im.Blocks(t, r, di) {
			out = append(out, &dirBlock{kind: classify(im.G, rb.DA, rb.Buf), geo: geo, g: im.G, dir: di, da: rb.DA, daddr: rb.Daddr, buf: rb.Buf})
		}
	}
	return im, out
}

var (
	seedMu    sync.Mutex
	seedCache = map[string][]*dirBlock{} // by geometry name
)

// seeds returns the real directory structures of the default geometry,
// for fuzz seeds and mutation tests: those TestDirStructuresOnRealImages
// already read, or from an image built now. It skips the test without
// the oracles.
func seeds(t testing.TB) []*dirBlock {
	seedMu.Lock()
	defer seedMu.Unlock()
	geo := dirtest.Geometries[0]
	if bs, ok := seedCache[geo.Name]; ok {
		return bs
	}
	im, bs := imageBlocks(t, geo.Name, geo.Args)
	os.Remove(im.Path) // everything is in memory; fuzz workers never clean up
	seedCache[geo.Name] = bs
	return bs
}

// fuzzSeeds is seeds for a fuzz target: none, rather than a skip, without
// the oracles, so the target still runs on its synthetic seeds.
func fuzzSeeds(f *testing.F, kind string) []*dirBlock {
	if !oracle.Have(oracle.Xfsprogs, oracle.Loop) {
		return nil
	}
	return seedsOf(f, kind)
}

func seedsOf(t testing.TB, kind string) []*dirBlock {
	var out []*dirBlock
	for _, b := range seeds(t) {
		if b.kind == kind {
			out = append(out, b)
		}
	}
	return out
}

// zeroRanges returns a copy of buf with the given [start, end) ranges zeroed.
func zeroRanges(buf []byte, ranges [][2]int) []byte {
	out := bytes.Clone(buf)
	for _, r := range ranges {
		clear(out[r[0]:r[1]])
	}
	return out
}

// checkRoundTrip encodes into a copy of the original (which must come back
// byte for byte) and into zeroes (which must give the original with the
// bytes the format leaves undefined, and the CRC over them, zeroed).
func checkRoundTrip(t *testing.T, what string, orig []byte, encode func([]byte) error, undefined [][2]int, crcOff int) {
	t.Helper()
	c := bytes.Clone(orig)
	if err := encode(c); err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	if i := firstDiff(c, orig); i >= 0 {
		t.Fatalf("%s: encode over the original changes byte %d: 0x%02x, was 0x%02x", what, i, c[i], orig[i])
	}
	z := make([]byte, len(orig))
	if err := encode(z); err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	mask := append([][2]int{{crcOff, crcOff + 4}}, undefined...)
	want, got := zeroRanges(orig, mask), zeroRanges(z, mask)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: encode into zeroes differs at byte %d: 0x%02x, want 0x%02x", what, i, got[i], want[i])
	}
	if !ondisk.VerifyCRC(z, crcOff) {
		t.Fatalf("%s: encode into zeroes left a bad CRC", what)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// Undefined bytes of each structure: what Encode leaves alone.
func dataUndefined(b *ondisk.DirDataBlock, hasFType bool) [][2]int {
	var r [][2]int
	for _, e := range b.Entries {
		end := e.Off + 9 + len(e.Name)
		if hasFType {
			end++
		}
		r = append(r, [2]int{end, e.Off + ondisk.DirDataEntSize(len(e.Name), hasFType) - 2})
	}
	for _, u := range b.Unused {
		r = append(r, [2]int{u.Off + 4, u.Off + u.Length - 2})
	}
	return r
}

func leafUndefined(l *ondisk.DirLeaf, n int) [][2]int {
	end := n
	if l.IsLeaf1() {
		end = n - ondisk.DirLeafTailSize - 2*len(l.Bests)
	}
	return [][2]int{{ondisk.Dir3LeafHdrSize + ondisk.DirLeafEntrySize*len(l.Ents), end}}
}

func nodeUndefined(nd *ondisk.DANode, n int) [][2]int {
	return [][2]int{{ondisk.DA3NodeHdrSize + ondisk.DANodeEntrySize*len(nd.Ents), n}}
}

func freeUndefined(f *ondisk.DirFree, n int) [][2]int {
	return [][2]int{{ondisk.Dir3FreeHdrSize + 2*len(f.Bests), n}}
}

// coverage counts what the real images exercised, so that a change to the
// population that stops producing some case fails loudly.
type coverage struct {
	mu                                               sync.Mutex
	kinds                                            map[string]int
	staleBlock, staleLeaf, holes, deepNode, collSpan int
	multiFSB                                         int
}

func (c *coverage) add(f func(c *coverage)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// TestDirStructuresOnRealImages decodes and verifies every directory
// structure of kernel-populated images in each geometry, checks the hash
// of every name against the hash the kernel stored, and round-trips each
// through Encode.
func TestDirStructuresOnRealImages(t *testing.T) {
	cov := &coverage{kinds: map[string]int{}}
	t.Run("geometries", func(t *testing.T) {
		for _, geo := range dirtest.Geometries {
			t.Run(geo.Name, func(t *testing.T) {
				t.Parallel()
				im, blocks := imageBlocks(t, geo.Name, geo.Args)
				checkImageBlocks(t, im, blocks, cov)
				compareWithXfsDB(t, im, blocks)
				if !t.Failed() {
					seedMu.Lock()
					seedCache[geo.Name] = blocks
					seedMu.Unlock()
				}
			})
		}
	})
	if t.Failed() || t.Skipped() {
		return
	}
	for _, k := range []string{kindSF, kindBlock, kindData, kindLeaf1, kindLeafN, kindNode, kindFree} {
		if cov.kinds[k] == 0 {
			t.Errorf("no %s structures in the images", k)
		}
	}
	for name, n := range map[string]int{
		"stale entries in a block directory":      cov.staleBlock,
		"stale entries in leaf blocks":            cov.staleLeaf,
		"holes in the data space":                 cov.holes,
		"node directories with a node root":       cov.deepNode,
		"one hash continuing across leaf blocks":  cov.collSpan,
		"directory blocks over several fs blocks": cov.multiFSB,
	} {
		if n == 0 {
			t.Errorf("the images have no %s", name)
		}
	}
}

func checkImageBlocks(t *testing.T, im *dirtest.Image, blocks []*dirBlock, cov *coverage) {
	g := im.G
	type dirState struct {
		data   map[uint64]*ondisk.DirDataBlock
		leaves map[uint64]*ondisk.DirLeaf // by file block
	}
	state := map[*dirtest.DirInfo]*dirState{}
	for _, b := range blocks {
		st := state[b.dir]
		if st == nil {
			st = &dirState{data: map[uint64]*ondisk.DirDataBlock{}, leaves: map[uint64]*ondisk.DirLeaf{}}
			state[b.dir] = st
		}
		cov.add(func(c *coverage) {
			c.kinds[b.kind]++
			if g.DirBlkFSBs > 1 {
				c.multiFSB++
			}
		})
		switch b.kind {
		case kindSF:
			checkSF(t, b)
		case kindBlock, kindData:
			d, err := ondisk.DecodeDirDataBlock(b.buf, g.HasFType)
			if err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			if err := d.Verify(b.buf, g, b.dir.Ino, b.daddr); err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			checkRoundTrip(t, b.String(), b.buf, func(buf []byte) error { return d.Encode(buf, g.HasFType) },
				dataUndefined(d, g.HasFType), ondisk.Dir3BlkHdrCRCOff)
			st.data[b.da/uint64(g.DirBlkFSBs)] = d
			if d.IsBlock() {
				// The single block's own hash index against our hash.
				for _, l := range d.Leaf {
					if l.Address == ondisk.DirNullDataptr {
						continue
					}
					_, off := ondisk.DirDataptrSplit(g.DirBlkSize, l.Address)
					e, ok := d.EntryAt(off)
					if !ok || ondisk.DAHashName(e.Name) != l.Hash {
						t.Fatalf("%v: leaf entry %+v does not match an entry's hash", b, l)
					}
				}
				if d.Stale > 0 {
					cov.add(func(c *coverage) { c.staleBlock++ })
				}
			}
		case kindLeaf1, kindLeafN:
			l, err := ondisk.DecodeDirLeaf(b.buf)
			if err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			if err := l.Verify(b.buf, g, b.dir.Ino, b.daddr); err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			checkRoundTrip(t, b.String(), b.buf, l.Encode, leafUndefined(l, len(b.buf)), ondisk.DA3BlkInfoCRCOff)
			st.leaves[b.da] = l
			if l.Stale > 0 {
				cov.add(func(c *coverage) { c.staleLeaf++ })
			}
		case kindNode:
			n, err := ondisk.DecodeDANode(b.buf)
			if err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			if err := n.Verify(b.buf, g, b.dir.Ino, b.daddr); err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			checkRoundTrip(t, b.String(), b.buf, n.Encode, nodeUndefined(n, len(b.buf)), ondisk.DA3BlkInfoCRCOff)
			if b.da == ondisk.DirLeafOffset>>g.BlockLog {
				cov.add(func(c *coverage) { c.deepNode++ })
			}
		case kindFree:
			f, err := ondisk.DecodeDirFree(b.buf)
			if err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			if err := f.Verify(b.buf, g, b.dir.Ino, b.daddr); err != nil {
				t.Fatalf("%v: %v", b, err)
			}
			checkRoundTrip(t, b.String(), b.buf, f.Encode, freeUndefined(f, len(b.buf)), ondisk.Dir3BlkHdrCRCOff)
			for _, best := range f.Bests {
				if best == ondisk.DirNullDataOff {
					cov.add(func(c *coverage) { c.holes++ })
				}
			}
		}
	}
	// The kernel's stored hash of every live leaf entry against the hash
	// of the name it points at.
	for di, st := range state {
		seen := map[uint32]bool{}
		for _, l := range st.leaves {
			if m := st.leaves[uint64(l.Forw)]; l.Forw != 0 && m != nil && len(l.Ents) > 0 && len(m.Ents) > 0 &&
				l.Ents[len(l.Ents)-1].Hash == m.Ents[0].Hash {
				cov.add(func(c *coverage) { c.collSpan++ })
			}
			for _, e := range l.Ents {
				if e.Address == ondisk.DirNullDataptr {
					continue
				}
				db, off := ondisk.DirDataptrSplit(g.DirBlkSize, e.Address)
				d := st.data[db]
				if d == nil {
					t.Fatalf("%s: leaf entry %+v points into data block %d, not read", di.Path, e, db)
				}
				de, ok := d.EntryAt(off)
				if !ok {
					t.Fatalf("%s: leaf entry %+v points at no entry", di.Path, e)
				}
				if h := ondisk.DAHashName(de.Name); h != e.Hash {
					t.Fatalf("%s: %q hashes to 0x%08x, the kernel stored 0x%08x", di.Path, de.Name, h, e.Hash)
				}
				seen[e.Address] = true
			}
		}
		if len(st.leaves) > 0 {
			n := 0
			for _, d := range st.data {
				n += len(d.Entries)
			}
			if n != len(seen) {
				t.Errorf("%s: %d data entries, %d live leaf entries", di.Path, n, len(seen))
			}
			for db := uint64(0); db < uint64(di.Size)/uint64(g.DirBlkSize); db++ {
				if st.data[db] == nil {
					cov.add(func(c *coverage) { c.holes++ })
				}
			}
		}
	}
}

func checkSF(t *testing.T, b *dirBlock) {
	g := b.g
	s, err := ondisk.DecodeDirSF(b.buf, g.HasFType)
	if err != nil {
		t.Fatalf("%v: %v", b, err)
	}
	if err := s.Verify(g); err != nil {
		t.Fatalf("%v: %v", b, err)
	}
	if s.Size(g.HasFType) != len(b.buf) {
		t.Fatalf("%v: Size %d, di_size %d", b, s.Size(g.HasFType), len(b.buf))
	}
	// The kernel lists a shortform directory in fork order after . and ..
	rd := b.dir.Readdir
	if len(rd) != len(s.Entries)+2 || rd[1].Ino != s.Parent {
		t.Fatalf("%v: %d entries, parent %d; readdir has %d, .. is %d", b, len(s.Entries), s.Parent, len(rd), rd[1].Ino)
	}
	for i, e := range s.Entries {
		if string(e.Name) != rd[i+2].Name || e.Ino != rd[i+2].Ino {
			t.Fatalf("%v: entry %d %q ino %d, readdir %q ino %d", b, i, e.Name, e.Ino, rd[i+2].Name, rd[i+2].Ino)
		}
	}
	out := make([]byte, len(b.buf))
	n, err := s.Encode(out, g.HasFType)
	if err != nil || n != len(b.buf) || !bytes.Equal(out, b.buf) {
		t.Fatalf("%v: Encode = %d, %v; bytes equal %v", b, n, err, bytes.Equal(out, b.buf))
	}
}

// mustCorrupt fails unless err wraps ErrCorrupt.
func mustCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("%s: got %v, want ErrCorrupt", what, err)
	}
}

var unusedFType = regexp.MustCompile(`^([bd]u\[\d+\])\.filetype = `)

// compareWithXfsDB prints every structure of every directory with xfs_db
// (one run per directory) and compares it line by line with Fields.
func compareWithXfsDB(t *testing.T, im *dirtest.Image, blocks []*dirBlock) {
	byDir := map[*dirtest.DirInfo][]*dirBlock{}
	var order []*dirtest.DirInfo
	for _, b := range blocks {
		if byDir[b.dir] == nil {
			order = append(order, b.dir)
		}
		byDir[b.dir] = append(byDir[b.dir], b)
	}
	for _, di := range order {
		cmds := []string{fmt.Sprintf("inode %d", di.Ino)}
		for _, b := range byDir[di] {
			if b.kind == kindSF {
				cmds = append(cmds, "echo @@@ sf", "p u3")
			} else {
				cmds = append(cmds, fmt.Sprintf("echo @@@ %d", b.da), fmt.Sprintf("dblock %d", b.da), "p")
			}
		}
		out := oracle.DB(t, im.Path, cmds...)
		printed := map[string]string{}
		var key string
		var cur strings.Builder
		flush := func() {
			if key != "" {
				printed[key] = cur.String()
			}
			cur.Reset()
		}
		freetags := map[string]bool{}
		for _, line := range strings.SplitAfter(out, "\n") {
			if k, ok := strings.CutPrefix(line, "@@@ "); ok {
				flush()
				key = strings.TrimSpace(k)
				clear(freetags)
				continue
			}
			if name, _, ok := strings.Cut(line, ".freetag = "); ok {
				freetags[name] = true
			}
			if m := unusedFType.FindStringSubmatch(line); m != nil && freetags[m[1]] {
				continue
			}
			cur.WriteString(strings.TrimPrefix(line, "u3.sfdir3."))
		}
		flush()
		for _, b := range byDir[di] {
			var fs ondisk.Fields
			key := fmt.Sprint(b.da)
			switch b.kind {
			case kindSF:
				s, _ := ondisk.DecodeDirSF(b.buf, b.g.HasFType)
				fs, key = s.Fields(b.g.HasFType), "sf"
			case kindBlock, kindData:
				d, _ := ondisk.DecodeDirDataBlock(b.buf, b.g.HasFType)
				fs = d.Fields(b.g.HasFType)
			case kindLeaf1, kindLeafN:
				l, _ := ondisk.DecodeDirLeaf(b.buf)
				fs = l.Fields()
			case kindNode:
				n, _ := ondisk.DecodeDANode(b.buf)
				fs = n.Fields()
			case kindFree:
				f, _ := ondisk.DecodeDirFree(b.buf)
				fs = f.Fields()
			}
			got, want := strings.Split(fs.String(), "\n"), strings.Split(printed[key], "\n")
			for i := range max(len(got), len(want)) {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Fatalf("%v: Fields line %d:\n got  %q\n xfs_db %q", b, i, g, w)
				}
			}
		}
	}
}
