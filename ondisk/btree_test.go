package ondisk

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// TestBtreeMaxRecsKnown pins the capacities the format fixes.
func TestBtreeMaxRecsKnown(t *testing.T) {
	cases := []struct {
		name       string
		f          func(int, bool) int
		bs         int
		leaf, node int
	}{
		{"alloc", AllocMaxRecs, 4096, 505, 336},
		{"alloc", AllocMaxRecs, 1024, 121, 80},
		{"inobt", InobtMaxRecs, 4096, 252, 505},
		{"inobt", InobtMaxRecs, 1024, 60, 121},
		{"refcount", RefcountMaxRecs, 4096, 336, 505},
		{"refcount", RefcountMaxRecs, 1024, 80, 121},
		{"rmap", RmapMaxRecs, 4096, 168, 91},
		{"rmap", RmapMaxRecs, 1024, 40, 22},
		{"bmbt", BmbtMaxRecs, 4096, 251, 251},
		{"bmbt", BmbtMaxRecs, 1024, 59, 59},
	}
	for _, c := range cases {
		if got := c.f(c.bs, true); got != c.leaf {
			t.Errorf("%s leaf maxrecs at %d = %d, want %d", c.name, c.bs, got, c.leaf)
		}
		if got := c.f(c.bs, false); got != c.node {
			t.Errorf("%s node maxrecs at %d = %d, want %d", c.name, c.bs, got, c.node)
		}
	}
}

var agBtheightRE = regexp.MustCompile(`(\w+): (?:best|worst) case per (\d+)-byte block: (\d+) records \(leaf\) / (\d+) keyptrs \(node\)`)

// TestBtreeMaxRecsMatchXfsDB compares every capacity with xfs_db's btheight
// at several block sizes.
func TestBtreeMaxRecsMatchXfsDB(t *testing.T) {
	img := oracle.Mkfs(t, agImageSize)
	funcs := map[string]func(int, bool) int{
		"bnobt": AllocMaxRecs, "cntbt": AllocMaxRecs, "inobt": InobtMaxRecs, "finobt": InobtMaxRecs,
		"refcountbt": RefcountMaxRecs, "rmapbt": RmapMaxRecs, "bmapbt": BmbtMaxRecs,
	}
	var cmds []string
	for _, bs := range []int{512, 1024, 2048, 4096, 8192, 65536} {
		cmds = append(cmds, fmt.Sprintf("btheight -w max -n 1000 -b %d bnobt cntbt inobt finobt refcountbt rmapbt bmapbt", bs))
	}
	out := agDBOut(t, img, cmds...)
	n := 0
	for _, m := range agBtheightRE.FindAllStringSubmatch(out, -1) {
		bs, _ := strconv.Atoi(m[2])
		leaf, _ := strconv.Atoi(m[3])
		node, _ := strconv.Atoi(m[4])
		f := funcs[m[1]]
		if f == nil {
			t.Fatalf("unexpected tree %q", m[1])
		}
		if got := f(bs, true); got != leaf {
			t.Errorf("%s leaf maxrecs at %d = %d, xfs_db says %d", m[1], bs, got, leaf)
		}
		if got := f(bs, false); got != node {
			t.Errorf("%s node maxrecs at %d = %d, xfs_db says %d", m[1], bs, got, node)
		}
		n++
	}
	if n != 6*7 {
		t.Fatalf("parsed %d btheight lines, want 42:\n%s", n, out)
	}
}

var agBtLevelsRE = regexp.MustCompile(`(?m)^(\d+) levels?, `)

// agBtheightLevels asks xfs_db for the height of a tree of records at minimum
// fill: what xfs_btree_compute_maxlevels computes.
func agBtheightLevels(t *testing.T, img string, tree string, bs int, records uint64) int {
	t.Helper()
	out := agDBOut(t, img, fmt.Sprintf("btheight -w min -b %d -n %d %s", bs, records, tree))
	m := agBtLevelsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("btheight output: %s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestBtreeMaxLevels checks the height bounds against xfs_db's worst-case
// btheight (AG trees) and against hand-computed values (BMBT, whose root in
// the inode xfs_db's btheight does not model; rmapbt with reflink).
func TestBtreeMaxLevels(t *testing.T) {
	img := oracle.Mkfs(t, agImageSize)
	for _, c := range []struct {
		bs       int
		agblocks uint32
		agblklog uint
		inopblog uint
	}{
		{4096, 32768, 15, 3}, {1024, 131072, 17, 1}, {4096, 1 << 20, 20, 3}, {512, 1 << 24, 24, 0}, {65536, 16384, 14, 7},
	} {
		g := &Geometry{BlockSize: c.bs, AGBlocks: c.agblocks, AGBlkLog: c.agblklog, InoPBLog: c.inopblog,
			AGInoLog: c.agblklog + c.inopblog}
		if got, want := AllocMaxLevels(g), agBtheightLevels(t, img, "bnobt", c.bs, (uint64(c.agblocks)+1)/2); got != want {
			t.Errorf("AllocMaxLevels(bs %d, agblocks %d) = %d, xfs_db btheight %d", c.bs, c.agblocks, got, want)
		}
		if got, want := InobtMaxLevels(g), agBtheightLevels(t, img, "inobt", c.bs, uint64(1)<<g.AGInoLog/64); got != want {
			t.Errorf("InobtMaxLevels(bs %d, agino bits %d) = %d, xfs_db btheight %d", c.bs, g.AGInoLog, got, want)
		}
		if got, want := refcountMaxLevels(g), agBtheightLevels(t, img, "refcountbt", c.bs, uint64(c.agblocks)); got != want {
			t.Errorf("refcountMaxLevels(bs %d) = %d, xfs_db btheight %d", c.bs, got, want)
		}
		if got, want := rmapMaxLevels(g, false), agBtheightLevels(t, img, "rmapbt", c.bs, uint64(c.agblocks)); got != want {
			t.Errorf("rmapMaxLevels(bs %d) = %d, xfs_db btheight %d", c.bs, got, want)
		}
	}
	// BMBT: leaves and nodes at half of maxrecs, the inode root taking the
	// last <= 3 pointers. 4 KiB: ceil((2^31-1)/125) = 17179870 leaves, then
	// 137439, 1100, 9 nodes, then the root: 5 levels.
	for _, c := range []struct {
		bs     int
		nrext  bool
		levels int
	}{
		{4096, false, 5}, {1024, false, 7}, {4096, true, 7}, {1024, true, 10}, {65536, false, 3},
	} {
		g := &Geometry{BlockSize: c.bs, Nrext64: c.nrext}
		if got := BmbtMaxLevels(g); got != c.levels {
			t.Errorf("BmbtMaxLevels(bs %d, nrext64 %v) = %d, want %d", c.bs, c.nrext, got, c.levels)
		}
	}
	// rmapbt with reflink: the tallest tree of node blocks at minimum fill
	// that fits in the AG (root 2 pointers). 4 KiB, 32768 blocks, node
	// minrecs 45: 2 + 90 + 4050 < 32767 <= 2+90+4050+182250: 4 levels.
	if got := rmapMaxLevels(&Geometry{BlockSize: 4096, AGBlocks: 32768}, true); got != 4 {
		t.Errorf("rmapMaxLevels with reflink = %d, want 4", got)
	}
}

// TestBtreeOffsets pins record, key and pointer positions.
func TestBtreeOffsets(t *testing.T) {
	for _, c := range []struct {
		name, want string
		got        int
	}{
		{"short rec 0", "56", BtreeRecOff(false, AllocRecSize, 0)},
		{"short rec 3", "104", BtreeRecOff(false, InobtRecSize, 3)},
		{"long rec 2", "104", BtreeRecOff(true, BmbtRecSize, 2)},
		{"short key 2", "72", BtreeKeyOff(false, AllocKeySize, 2)},
		// 4 KiB bnobt node: 336 keys of 8 bytes, pointers after them.
		{"bno ptr 0", "2744", BtreePtrOff(false, 4096, AllocKeySize, ShortPtrSize, 0)},
		{"bno ptr 5", "2764", BtreePtrOff(false, 4096, AllocKeySize, ShortPtrSize, 5)},
		// 1 KiB rmap node: 22 double keys of 40 bytes.
		{"rmap ptr 1", "940", BtreePtrOff(false, 1024, 2*RmapKeySize, ShortPtrSize, 1)},
		// 4 KiB BMBT node: 251 keys of 8 bytes after the 72-byte header.
		{"bmbt ptr 0", "2080", BtreePtrOff(true, 4096, BmbtKeySize, LongPtrSize, 0)},
	} {
		if fmt.Sprint(c.got) != c.want {
			t.Errorf("%s = %d, want %s", c.name, c.got, c.want)
		}
	}
	if BtreeHeaderSize(false) != 56 || BtreeHeaderSize(true) != 72 || BtreeCRCOff(false) != 52 || BtreeCRCOff(true) != 64 {
		t.Error("header sizes or CRC offsets wrong")
	}
}

// agTree is one AG btree to walk.
type agTree struct {
	name   string // xfs_db type
	magic  uint32
	root   uint32
	levels uint32
	max    func(int, bool) int
	blocks uint32 // expected block count from the AG headers; 0: unknown
}

// agTreeWalk records what a walk saw, for the cross-checks.
type agTreeWalk struct {
	blocks   int
	dbGroups [][]string
	rendered []Fields
	what     []string
	leafRecs int
}

// agWalkTree reads every block of one tree level by level, verifies each
// header (level, fill, owner, address, siblings), checks that sibling links
// chain each level in key order, that every node key is the first key of
// its child, and that records and keys re-encode to their bytes.
func agWalkTree(t *testing.T, im *agImage, agno uint32, tr agTree, w *agTreeWalk) {
	t.Helper()
	g := im.g
	level := []uint32{tr.root}
	firstKeys := [][]byte{nil} // expected first key of each block (nil: unchecked)
	for lv := int(tr.levels) - 1; lv >= 0; lv-- {
		var next []uint32
		var nextKeys [][]byte
		prev := NullFSBlock
		for i, agbno := range level {
			daddr := g.AGBDaddr(agno, agbno)
			buf := agReadAt(t, im.path, daddr<<BBShift, g.BlockSize)
			h, err := DecodeBtreeBlock(buf, false)
			if err != nil {
				t.Fatal(err)
			}
			where := fmt.Sprintf("%s ag %d block %d", tr.name, agno, agbno)
			leaf := lv == 0
			c := BlockCheck{Magic: tr.magic, Daddr: daddr, Owner: uint64(agno), UUID: g.MetaUUID, Level: lv,
				MaxRecs: tr.max(g.BlockSize, leaf), Geo: g}
			if lv != int(tr.levels)-1 {
				c.MinRecs = c.MaxRecs / 2
			}
			if err := h.Verify(buf, c); err != nil {
				t.Errorf("%s: Verify: %v", where, err)
			}
			if h.LeftSib != prev {
				t.Errorf("%s: leftsib %d, want %d", where, h.LeftSib, prev)
			}
			wantRight := NullFSBlock
			if i+1 < len(level) {
				wantRight = uint64(level[i+1])
			}
			if h.RightSib != wantRight {
				t.Errorf("%s: rightsib %d, want %d", where, h.RightSib, wantRight)
			}
			prev = uint64(agbno)

			// The header re-encodes to its bytes, CRC included.
			enc := bytes.Clone(buf)
			clear(enc[:ShortBlockHeaderSize])
			h.Encode(enc)
			if !bytes.Equal(enc, buf) {
				t.Errorf("%s: header does not re-encode to its bytes", where)
			}

			l := btreeLayoutFor(tr.magic, im.sb.HasSpinodes())
			n := int(h.NumRecs)
			var first []byte
			if leaf {
				w.leafRecs += n
				for r := range n {
					off := BtreeRecOff(false, l.recSize, r)
					rec := buf[off : off+l.recSize]
					if r == 0 {
						first = rec
					}
					agCheckRecRoundTrip(t, where, tr.magic, rec, im.sb.HasSpinodes())
				}
			} else {
				for k := range n {
					koff := BtreeKeyOff(false, l.keySize, k)
					if k == 0 {
						first = buf[koff : koff+l.keySize]
					}
					child := btU32(buf[BtreePtrOff(false, g.BlockSize, l.keySize, l.ptrSize, k):])
					next = append(next, child)
					nextKeys = append(nextKeys, buf[koff:koff+l.keySize])
				}
			}
			if want := firstKeys[i]; want != nil && first != nil && !agKeyMatches(tr.magic, first, want, leaf) {
				t.Errorf("%s: first entry % x does not match the parent key % x", where, first, want)
			}
			w.blocks++
			w.dbGroups = append(w.dbGroups, []string{fmt.Sprintf("fsb %d", g.FSB(agno, agbno)), "type " + tr.name, "p"})
			w.rendered = append(w.rendered, h.Fields(buf, im.sb))
			w.what = append(w.what, where)
		}
		level, firstKeys = next, nextKeys
	}
}

// agKeyMatches compares the first record or key of a block with its parent's
// key: the key is the leading bytes of a record, except that a cntbt key is
// a whole record and the rmap key leaves out the block count and the
// unwritten flag of the offset.
func agKeyMatches(magic uint32, first, key []byte, leaf bool) bool {
	switch {
	case magic == RmapMagic && leaf:
		rec := DecodeRmapRec(first)
		k := DecodeRmapKey(key)
		return rec.StartBlock == k.StartBlock && rec.Owner == k.Owner && rec.Offset&^RmapOffUnwritten == k.Offset
	case magic == RmapMagic:
		return bytes.Equal(first[:RmapKeySize], key[:RmapKeySize])
	default:
		n := min(len(first), len(key))
		if magic == InoMagic || magic == FinoMagic || magic == RefcMagic {
			n = 4
		}
		return bytes.Equal(first[:n], key[:n])
	}
}

// agCheckRecRoundTrip decodes a record with the public decoder and wants the
// same bytes back from Encode.
func agCheckRecRoundTrip(t *testing.T, where string, magic uint32, rec []byte, sparse bool) {
	t.Helper()
	got := make([]byte, len(rec))
	switch magic {
	case BnoMagic, CntMagic:
		DecodeAllocRec(rec).Encode(got)
	case InoMagic, FinoMagic:
		r := DecodeInobtRec(rec, sparse)
		r.Encode(got, sparse)
		if int(r.FreeCount) > int(r.Count) || (!sparse && r.Count != 64) {
			t.Errorf("%s: inobt record %+v inconsistent", where, r)
		}
	case RefcMagic:
		r := DecodeRefcountRec(rec)
		r.Encode(got)
		if r.AGBlock() != r.StartBlock&0x7fffffff || r.Cow() != (r.StartBlock>>31 == 1) {
			t.Errorf("%s: refcount accessors wrong for %+v", where, r)
		}
	case RmapMagic:
		DecodeRmapRec(rec).Encode(got)
	}
	if !bytes.Equal(got, rec) {
		t.Errorf("%s: record % x re-encodes as % x", where, rec, got)
	}
}

// TestBtreeBlocksMatchXfsDB walks every AG btree of every image, verifies
// each block, checks its structure and compares its rendering (header,
// records, keys, pointers) with xfs_db's print of the same block.
func TestBtreeBlocksMatchXfsDB(t *testing.T) {
	for _, im := range agImages(t) {
		t.Run(im.name, func(t *testing.T) {
			w := &agTreeWalk{}
			for agno := range im.g.AGCount {
				agf, err := DecodeAGF(im.sector(t, im.g.AGFDaddr(agno)))
				if err != nil {
					t.Fatal(err)
				}
				agi, err := DecodeAGI(im.sector(t, im.g.AGIDaddr(agno)))
				if err != nil {
					t.Fatal(err)
				}
				trees := []agTree{
					{"bnobt", BnoMagic, agf.BnoRoot, agf.BnoLevel, AllocMaxRecs, 0},
					{"cntbt", CntMagic, agf.CntRoot, agf.CntLevel, AllocMaxRecs, 0},
					{"inobt", InoMagic, agi.Root, agi.Level, InobtMaxRecs, agi.IBlocks},
				}
				if im.sb.HasFinobt() {
					trees = append(trees, agTree{"finobt", FinoMagic, agi.FreeRoot, agi.FreeLevel, InobtMaxRecs, agi.FBlocks})
				}
				if im.sb.HasReflink() {
					trees = append(trees, agTree{"refcntbt", RefcMagic, agf.RefcountRoot, agf.RefcountLevel, RefcountMaxRecs, agf.RefcountBlocks})
				}
				if im.sb.HasRmapbt() {
					trees = append(trees, agTree{"rmapbt", RmapMagic, agf.RmapRoot, agf.RmapLevel, RmapMaxRecs, agf.RmapBlocks})
				}
				var btreeblks int
				for _, tr := range trees {
					before, recsBefore := w.blocks, w.leafRecs
					agWalkTree(t, im, agno, tr, w)
					n := w.blocks - before
					if tr.blocks != 0 && uint32(n) != tr.blocks {
						t.Errorf("%s ag %d: walked %d blocks, AG header says %d", tr.name, agno, n, tr.blocks)
					}
					switch tr.magic {
					case BnoMagic, CntMagic, RmapMagic:
						btreeblks += n - 1 // roots are not counted
					}
					if tr.magic == BnoMagic || tr.magic == CntMagic {
						if recs := w.leafRecs - recsBefore; recs == 0 {
							t.Errorf("%s ag %d: no free extents", tr.name, agno)
						}
					}
				}
				if uint32(btreeblks) != agf.BtreeBlks {
					t.Errorf("ag %d: bno/cnt/rmap trees have %d non-root blocks, agf btreeblks %d", agno, btreeblks, agf.BtreeBlks)
				}
			}
			if im.name == "populated" {
				agWalkBMBT(t, im, w)
			}
			db := agDBSections(t, im.path, w.dbGroups)
			for i := range db {
				agCompareDB(t, w.what[i], w.rendered[i], db[i])
			}
		})
	}
}

var agBmbtPtrsRE = regexp.MustCompile(`(?m)^u3\.bmbt\.ptrs\[[0-9-]+\] = (.*)$`)

// agWalkBMBT checks the leaves of the populated image's fragmented file: a
// long-form tree owned by the inode, leaves chained left to right.
func agWalkBMBT(t *testing.T, im *agImage, w *agTreeWalk) {
	t.Helper()
	g := im.g
	out := agDBOut(t, im.path, fmt.Sprintf("inode %d", im.bmbtIno), "p core.format u3.bmbt.level u3.bmbt.ptrs")
	if !strings.Contains(out, "core.format = 3 (btree)") || !strings.Contains(out, "u3.bmbt.level = 1") {
		t.Fatalf("inode %d is not a one-level BMBT:\n%s", im.bmbtIno, out)
	}
	m := agBmbtPtrsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no root pointers:\n%s", out)
	}
	var leaves []uint64
	for _, e := range strings.Fields(m[1]) {
		_, v, _ := strings.Cut(e, ":")
		fsb, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, fsb)
	}
	if len(leaves) < 2 {
		t.Fatalf("BMBT has %d leaves, want several", len(leaves))
	}
	prev := NullFSBlock
	for i, fsb := range leaves {
		daddr := g.FSBDaddr(fsb)
		buf := agReadAt(t, im.path, daddr<<BBShift, g.BlockSize)
		h, err := DecodeBtreeBlock(buf, true)
		if err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("bmbt of inode %d leaf %d (fsb %d)", im.bmbtIno, i, fsb)
		maxRecs := BmbtMaxRecs(g.BlockSize, true)
		if err := h.Verify(buf, BlockCheck{Magic: BmapMagic, Daddr: daddr, Owner: im.bmbtIno, UUID: g.MetaUUID,
			Level: 0, MaxRecs: maxRecs, MinRecs: maxRecs / 2, Geo: g}); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		want := NullFSBlock
		if i+1 < len(leaves) {
			want = leaves[i+1]
		}
		if h.LeftSib != prev || h.RightSib != want {
			t.Errorf("%s: siblings %d/%d, want %d/%d", where, h.LeftSib, h.RightSib, prev, want)
		}
		prev = fsb
		enc := bytes.Clone(buf)
		clear(enc[:LongCRCOff+4])
		h.Encode(enc)
		if !bytes.Equal(enc, buf) {
			t.Errorf("%s: header does not re-encode to its bytes", where)
		}
		w.dbGroups = append(w.dbGroups, []string{fmt.Sprintf("fsb %d", fsb), "type bmapbtd", "p"})
		w.rendered = append(w.rendered, h.Fields(buf, im.sb))
		w.what = append(w.what, where)
	}
}

// TestBtreeBlockVerifyRules breaks one header rule per case on a real block.
func TestBtreeBlockVerifyRules(t *testing.T) {
	img := oracle.Mkfs(t, agImageSize, "-d", "agcount=4")
	im := agOpenImage(t, "default", img)
	g := im.g
	agf, err := DecodeAGF(im.sector(t, g.AGFDaddr(2)))
	if err != nil {
		t.Fatal(err)
	}
	daddr := g.AGBDaddr(2, agf.BnoRoot)
	orig := agReadAt(t, img, daddr<<BBShift, g.BlockSize)
	check := BlockCheck{Magic: BnoMagic, Daddr: daddr, Owner: 2, UUID: g.MetaUUID, Level: 0,
		MaxRecs: AllocMaxRecs(g.BlockSize, true), Geo: g}
	h, _ := DecodeBtreeBlock(orig, false)
	if err := h.Verify(orig, check); err != nil {
		t.Fatalf("real root: %v", err)
	}
	other := g.MetaUUID
	other[9] ^= 4
	cases := []struct {
		name string
		mut  func(h *BtreeBlock, c *BlockCheck)
		raw  func(b []byte)
		want string
	}{
		{"magic", func(h *BtreeBlock, c *BlockCheck) { c.Magic = CntMagic }, nil, "magic 0x41423342 (AB3B), want 0x41423343 (AB3C)"},
		{"crc", nil, func(b []byte) { b[len(b)-1] ^= 1 }, "bad CRC"},
		{"uuid", func(h *BtreeBlock, c *BlockCheck) { h.UUID = other }, nil, "uuid " + other.String() + ", want"},
		{"blkno", func(h *BtreeBlock, c *BlockCheck) { h.Blkno += 8 }, nil, fmt.Sprintf("bno 0x%x, want 0x%x", daddr+8, daddr)},
		{"owner", func(h *BtreeBlock, c *BlockCheck) { h.Owner = 3 }, nil, fmt.Sprintf("btree block 0x%x: owner 3, want 2: structure needs cleaning", daddr)},
		{"level", func(h *BtreeBlock, c *BlockCheck) { h.Level = 1 }, nil, "level 1, want 0"},
		{"numrecs max", func(h *BtreeBlock, c *BlockCheck) { h.NumRecs = 506 }, nil, "numrecs 506, want at most 505"},
		{"numrecs min", func(h *BtreeBlock, c *BlockCheck) { c.MinRecs = 252 }, nil, "want at least 252"},
		{"siblings equal", func(h *BtreeBlock, c *BlockCheck) { h.LeftSib, h.RightSib = 9, 9 }, nil, "leftsib and rightsib both 9"},
		{"left self", func(h *BtreeBlock, c *BlockCheck) { h.LeftSib = uint64(agf.BnoRoot) }, nil, "leftsib 1 points at the block itself"},
		{"right beyond AG", func(h *BtreeBlock, c *BlockCheck) { h.RightSib = uint64(g.AGBlocks) }, nil, fmt.Sprintf("rightsib %d is not a data block of AG 2", g.AGBlocks)},
		{"right in headers", func(h *BtreeBlock, c *BlockCheck) { h.RightSib = 0 }, nil, "rightsib 0 is not a data block of AG 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(orig)
			chk := check
			if c.raw != nil {
				c.raw(b)
			} else {
				h, _ := DecodeBtreeBlock(b, false)
				c.mut(h, &chk)
				h.Encode(b)
				StampBtreeCRC(b, false)
			}
			h, _ := DecodeBtreeBlock(b, false)
			err := h.Verify(b, chk)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want ErrCorrupt containing %q", err, c.want)
			}
		})
	}
	// Level -1 accepts any level; without Geo the sibling range is not
	// checked.
	b := bytes.Clone(orig)
	h, _ = DecodeBtreeBlock(b, false)
	h.Level, h.RightSib = 3, uint64(g.AGBlocks)
	h.Encode(b)
	StampBtreeCRC(b, false)
	chk := check
	chk.Level, chk.Geo = -1, nil
	if err := h.Verify(b, chk); err != nil {
		t.Errorf("level -1, no Geo: %v", err)
	}
}

// TestBtreeBlockLongForm builds a long-form header, round-trips it and
// checks the long-form sibling rules.
func TestBtreeBlockLongForm(t *testing.T) {
	g := &Geometry{BlockSize: 4096, BlockLog: 12, AGBlocks: 1000, AGCount: 4, AGBlkLog: 10, DBlocks: 4000}
	g.MetaUUID[0] = 7
	self := g.FSB(1, 200)
	h := &BtreeBlock{Magic: BmapMagic, Level: 0, NumRecs: 3, LeftSib: NullFSBlock, RightSib: g.FSB(2, 5),
		Blkno: uint64(g.FSBDaddr(self)), LSN: 0x100000020, UUID: g.MetaUUID, Owner: 1234567, Long: true}
	buf := make([]byte, 4096)
	h.Encode(buf)
	StampBtreeCRC(buf, true)
	got, err := DecodeBtreeBlock(buf, true)
	if err != nil {
		t.Fatal(err)
	}
	h.CRC = StoredCRC(buf, LongCRCOff)
	if *got != *h {
		t.Fatalf("decoded %+v, want %+v", got, h)
	}
	c := BlockCheck{Magic: BmapMagic, Daddr: g.FSBDaddr(self), Owner: 1234567, UUID: g.MetaUUID, Level: 0, MaxRecs: 251, Geo: g}
	if err := got.Verify(buf, c); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, bad := range []struct {
		sib  uint64
		want string
	}{{self, "points at the block itself"}, {g.FSB(5, 1), "is not a data block of the file system"}, {g.FSB(3, 1001), "is not a data block"},
		{g.FSB(2, 0), "is not a data block"}} {
		b := bytes.Clone(buf)
		x := *got
		x.LeftSib = bad.sib
		x.Encode(b)
		StampBtreeCRC(b, true)
		if err := x.Verify(b, c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("leftsib %d: Verify = %v, want %q", bad.sib, err, bad.want)
		}
	}
	// Short-form nulls widen and narrow.
	s := &BtreeBlock{Magic: BnoMagic, LeftSib: NullFSBlock, RightSib: 17}
	sb := make([]byte, 512)
	s.Encode(sb)
	if btU32(sb[8:]) != NullAGBlock || btU32(sb[12:]) != 17 {
		t.Errorf("short siblings encoded as %x %x", btU32(sb[8:]), btU32(sb[12:]))
	}
	if d, _ := DecodeBtreeBlock(sb, false); d.LeftSib != NullFSBlock || d.RightSib != 17 {
		t.Errorf("short siblings decoded as %d %d", d.LeftSib, d.RightSib)
	}
	if _, err := DecodeBtreeBlock(sb[:55], false); err == nil {
		t.Error("55-byte short block decoded")
	}
	if _, err := DecodeBtreeBlock(sb[:71], true); err == nil {
		t.Error("71-byte long block decoded")
	}
}

// TestBtreeRecords pins record layouts with hand-made bytes.
func TestBtreeRecords(t *testing.T) {
	b := []byte{0, 0, 1, 0, 0, 0, 0, 9}
	if r := DecodeAllocRec(b); r != (AllocRec{256, 9}) {
		t.Errorf("alloc %+v", r)
	}
	ino := []byte{0, 0, 0, 128, 0x00, 0xf0, 48, 5, 0xff, 0, 0, 0, 0, 0, 0, 1}
	sp := DecodeInobtRec(ino, true)
	if sp != (InobtRec{StartIno: 128, HoleMask: 0xf0, Count: 48, FreeCount: 5, Free: 0xff00000000000001}) {
		t.Errorf("sparse inobt %+v", sp)
	}
	full := DecodeInobtRec([]byte{0, 0, 0, 64, 0, 0, 0, 61, 0, 0, 0, 0, 0, 0, 0, 7}, false)
	if full != (InobtRec{StartIno: 64, Count: 64, FreeCount: 61, Free: 7}) {
		t.Errorf("full inobt %+v", full)
	}
	if r := DecodeInobtRec([]byte{0, 0, 0, 64, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false); r.FreeCount != 255 {
		t.Errorf("freecount 256 decoded as %d, want saturated 255", r.FreeCount)
	}
	rc := DecodeRefcountRec([]byte{0x80, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 1})
	if !rc.Cow() || rc.AGBlock() != 5 || rc.BlockCount != 2 || rc.RefCount != 1 {
		t.Errorf("refcount %+v", rc)
	}
	rm := DecodeRmapRec([]byte{0, 0, 0, 10, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd,
		0xa0, 0, 0, 0, 0, 0, 0, 42})
	if rm.StartBlock != 10 || rm.BlockCount != 3 || int64(rm.Owner) != -3 || rm.FileOffset() != 42 ||
		!rm.AttrFork() || rm.BmbtBlock() || !rm.Unwritten() {
		t.Errorf("rmap %+v", rm)
	}
	out := make([]byte, RmapRecSize)
	rm.Encode(out)
	if k := DecodeRmapKey(append(out[:4:4], out[8:]...)); k.StartBlock != 10 || k.Owner != rm.Owner || k.Offset != rm.Offset {
		t.Errorf("rmap key %+v", k)
	}
}
