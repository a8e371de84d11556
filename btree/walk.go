package btree

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Problem kinds Walk reports. They are stable machine names: the checker
// passes them on as its own finding kinds.
const (
	KindRead     = "btree-read"      // the block could not be read
	KindPtr      = "btree-ptr"       // a pointer outside the AG or file system
	KindMagic    = "btree-magic"     // not a block of this tree
	KindCRC      = "crc"             // contents do not match the stored CRC
	KindUUID     = "btree-uuid"      // block of another file system
	KindBlkno    = "btree-blkno"     // block header names another address
	KindOwner    = "btree-owner"     // block header names another AG or inode
	KindLevel    = "btree-level"     // child not exactly one level below its parent
	KindNumrecs  = "btree-numrecs"   // record count outside min..max
	KindKeyOrder = "btree-key-order" // keys not strictly ascending in a block
	KindKeyRange = "btree-key-range" // child's keys outside its parent key range
	KindSibling  = "btree-sibling"   // sibling pointer not the in-order neighbour
	KindCycle    = "btree-cycle"     // a block reached twice
	KindDepth    = "btree-depth"     // tree height outside 1..MaxLevels
)

// Problem is one inconsistency found by Walk.
type Problem struct {
	Kind     string
	Tree     string // the tree instance, e.g. "ag 3 bnobt", "inode 131 bmbt"
	Level    int    // level of the block; -1 when unknown
	Ptr      uint64 // the block as the tree's pointers name it; NullFSBlock for an inode root
	Daddr    int64  // disk address, -1 when the block was not read
	Expected string
	Found    string
	Msg      string
}

func (p Problem) String() string {
	where := fmt.Sprintf("%s block %d", p.Tree, p.Ptr)
	if p.Ptr == ondisk.NullFSBlock {
		where = p.Tree + " root in the inode"
	}
	s := fmt.Sprintf("%s: %s", where, p.Msg)
	if p.Expected != "" || p.Found != "" {
		s += fmt.Sprintf(" (expected %s, found %s)", p.Expected, p.Found)
	}
	return s
}

// Visitor receives what Walk sees. Every field may be nil.
type Visitor struct {
	// Block is called once for every block the tree points at that could
	// be read (the inode root excluded), before its contents are checked:
	// ok says whether the header passed (magic, CRC, UUID, address,
	// owner, level, record count within capacity). Checkers use it to
	// account for the block's use and its LSN.
	Block func(ptr uint64, level int, buf []byte, hdr *ondisk.BtreeBlock, ok bool)
	// Record is called for every record of every leaf that passed, in key
	// order as far as the tree is intact.
	Record func(rec []byte)
	// Problem is called for every inconsistency.
	Problem func(Problem)
}

// WalkStats summarises a walk.
type WalkStats struct {
	Blocks  int // blocks read, the inode root excluded
	Records int // leaf records delivered
	Height  int // the height the root claims
}

// walkEnt is one block of a level as its parent names it.
type walkEnt struct {
	ptr    uint64
	lo, hi []byte // the parent's key for it and the next one (nil: none)
	gap    bool   // a subtree that could not be followed
	hdr    *ondisk.BtreeBlock
}

// Walk visits every block of the tree level by level from the root and
// verifies each as the kernel's verifiers and xfs_repair do: magic, CRC,
// UUID, self address, owner, level (each child exactly one below its
// parent), record count within capacity and, except for roots, at least
// half full; keys strictly ascending in a block; each child's first key
// equal to its parent's key for it and its keys below the parent's next
// key; sibling pointers matching the in-order neighbours along each level,
// null at both ends; no block reached twice; the height within the
// tree's MaxLevels. It reports through v.Problem and goes on past damage:
// a block that fails its header checks is not followed, and sibling checks
// across the hole it leaves are skipped. Each block is read at most once,
// so a damaged tree cannot make the walk loop.
func (t *Tree) Walk(v Visitor) WalkStats {
	w := &walker{t: t, v: v, visited: map[uint64]struct{}{}, scratch: make([]byte, t.Ops.KeySize())}
	return w.run()
}

type walker struct {
	t       *Tree
	v       Visitor
	visited map[uint64]struct{}
	stats   WalkStats
	scratch []byte
	height  int
}

func (w *walker) problem(kind string, level int, ptr uint64, daddr int64, exp, found, format string, args ...any) {
	if w.v.Problem == nil {
		return
	}
	w.v.Problem(Problem{Kind: kind, Tree: w.t.String(), Level: level, Ptr: ptr, Daddr: daddr,
		Expected: exp, Found: found, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) run() WalkStats {
	t := w.t
	h := t.Root.Height()
	w.stats.Height = h
	w.height = h
	if h < 1 || (t.Shape.MaxLevels > 0 && h > t.Shape.MaxLevels) {
		ptr := t.Root.Ptr()
		w.problem(KindDepth, -1, ptr, -1, fmt.Sprintf("1..%d", t.Shape.MaxLevels), fmt.Sprint(h),
			"tree height %d outside 1..%d", h, t.Shape.MaxLevels)
		return w.stats
	}
	var level []walkEnt
	lvl := h - 1
	if buf := t.Root.InodeRoot(); buf != nil {
		level = w.inodeRoot(buf, lvl)
		lvl--
	} else {
		level = []walkEnt{{ptr: t.Root.Ptr()}}
	}
	for ; lvl >= 0 && len(level) > 0; lvl-- {
		var next []walkEnt
		for i := range level {
			next = w.block(&level[i], lvl, next)
		}
		w.siblings(level, lvl)
		level = next
	}
	return w.stats
}

// inodeRoot checks the in-memory root of an inode-rooted tree and returns
// its children.
func (w *walker) inodeRoot(buf []byte, lvl int) []walkEnt {
	t := w.t
	null := ondisk.NullFSBlock
	hdr, err := ondisk.DecodeBtreeBlock(buf, t.Ops.Long())
	if err != nil {
		w.problem(KindNumrecs, lvl, null, -1, "", "", "root: %v", err)
		return nil
	}
	if int(hdr.Level) != lvl || lvl < 1 {
		w.problem(KindLevel, lvl, null, -1, fmt.Sprint(lvl), fmt.Sprint(hdr.Level), "root level %d in a tree of height %d", hdr.Level, w.height)
		return nil
	}
	n, capy := int(hdr.NumRecs), t.capacity(buf, lvl)
	if n < 1 || n > capy {
		w.problem(KindNumrecs, lvl, null, -1, fmt.Sprintf("1..%d", capy), fmt.Sprint(n), "root holds %d entries", n)
		return nil
	}
	b := &block{buf: buf, ptr: null, daddr: -1, hdr: hdr}
	w.keyOrder(b, lvl)
	return w.children(b, nil, nil)
}

// block reads and checks one block of a level and appends its children
// (or a gap) to next.
func (w *walker) block(e *walkEnt, lvl int, next []walkEnt) []walkEnt {
	t := w.t
	gap := func() []walkEnt {
		if lvl > 0 {
			return append(next, walkEnt{gap: true})
		}
		return next
	}
	if e.gap {
		return gap()
	}
	if _, dup := w.visited[e.ptr]; dup {
		w.problem(KindCycle, lvl, e.ptr, -1, "", "", "block reached a second time at level %d", lvl)
		e.gap = true
		return gap()
	}
	w.visited[e.ptr] = struct{}{}
	buf, daddr, err := t.Store.ReadBlock(e.ptr)
	if err != nil {
		kind := KindRead
		if errors.Is(err, ondisk.ErrCorrupt) {
			kind = KindPtr
		}
		w.problem(kind, lvl, e.ptr, -1, "", "", "%v", err)
		return gap()
	}
	w.stats.Blocks++
	hdr, ok := w.header(buf, daddr, e.ptr, lvl)
	if w.v.Block != nil {
		w.v.Block(e.ptr, lvl, buf, hdr, ok)
	}
	if !ok {
		return gap()
	}
	e.hdr = hdr
	b := &block{buf: buf, ptr: e.ptr, daddr: daddr, hdr: hdr}
	w.keyOrder(b, lvl)
	if n := b.numRecs(); n > 0 && e.lo != nil {
		first := t.keyAt(b, 0, w.scratch)
		if t.Ops.CmpKey(first, e.lo) != 0 {
			w.problem(KindKeyRange, lvl, e.ptr, daddr, t.keyText(e.lo), t.keyText(first),
				"first key differs from the parent's key for this block")
		}
		if e.hi != nil {
			last := t.keyAt(b, n-1, w.scratch)
			if t.Ops.CmpKey(last, e.hi) >= 0 {
				w.problem(KindKeyRange, lvl, e.ptr, daddr, "below "+t.keyText(e.hi), t.keyText(last),
					"last key reaches the parent's next key")
			}
		}
	}
	if lvl == 0 {
		for i := 0; i < b.numRecs(); i++ {
			w.stats.Records++
			if w.v.Record != nil {
				w.v.Record(t.rec(b, i))
			}
		}
		return next
	}
	return append(next, w.children(b, e.lo, e.hi)...)
}

// header checks a block's header in the kernel verifiers' order. ok is
// false when the block cannot be trusted as a block of this tree at this
// level.
func (w *walker) header(buf []byte, daddr int64, ptr uint64, lvl int) (*ondisk.BtreeBlock, bool) {
	t := w.t
	long := t.Ops.Long()
	hdr, err := ondisk.DecodeBtreeBlock(buf, long)
	if err != nil {
		w.problem(KindRead, lvl, ptr, daddr, "", "", "%v", err)
		return nil, false
	}
	bad := func(kind, exp, found, what string) (*ondisk.BtreeBlock, bool) {
		w.problem(kind, lvl, ptr, daddr, exp, found, "%s", what)
		return hdr, false
	}
	if hdr.Magic != t.Ops.Magic() {
		return bad(KindMagic, fmt.Sprintf("0x%08x", t.Ops.Magic()), fmt.Sprintf("0x%08x", hdr.Magic), "wrong magic number")
	}
	off := ondisk.BtreeCRCOff(long)
	if got := ondisk.Checksum(buf, off); got != ondisk.StoredCRC(buf, off) {
		return bad(KindCRC, fmt.Sprintf("0x%08x", got), fmt.Sprintf("0x%08x", ondisk.StoredCRC(buf, off)), "bad CRC")
	}
	if hdr.UUID != t.Shape.UUID {
		return bad(KindUUID, t.Shape.UUID.String(), hdr.UUID.String(), "block belongs to another file system")
	}
	if hdr.Blkno != uint64(daddr) {
		return bad(KindBlkno, fmt.Sprintf("daddr 0x%x", daddr), fmt.Sprintf("0x%x", hdr.Blkno), "header names another address")
	}
	if hdr.Owner != t.Shape.Owner {
		return bad(KindOwner, fmt.Sprint(t.Shape.Owner), fmt.Sprint(hdr.Owner), "block has another owner")
	}
	if int(hdr.Level) != lvl {
		return bad(KindLevel, fmt.Sprint(lvl), fmt.Sprint(hdr.Level), "level is not one below the parent's")
	}
	n, capy := int(hdr.NumRecs), t.capacity(buf, lvl)
	if n > capy {
		return bad(KindNumrecs, fmt.Sprintf("at most %d", capy), fmt.Sprint(n), "more records than the block holds")
	}
	root := lvl == w.height-1
	// Blocks right below an inode root may be its only child, so they have
	// no minimum fill, as xfs_repair treats them.
	exempt := root || (t.Root.InodeRoot() != nil && lvl == w.height-2)
	switch min := t.minRecs(lvl); {
	case n == 0 && (lvl > 0 || !root):
		w.problem(KindNumrecs, lvl, ptr, daddr, fmt.Sprintf("1..%d", capy), "0", "empty block")
		return hdr, false
	case !exempt && n < min:
		w.problem(KindNumrecs, lvl, ptr, daddr, fmt.Sprintf("%d..%d", min, capy), fmt.Sprint(n), "block less than half full")
	}
	return hdr, true
}

// keyOrder reports keys that do not strictly ascend within a block.
func (w *walker) keyOrder(b *block, lvl int) {
	t := w.t
	prev := make([]byte, t.Ops.KeySize())
	for i := 0; i < b.numRecs(); i++ {
		k := t.keyAt(b, i, w.scratch)
		if i > 0 && t.Ops.CmpKey(prev, k) >= 0 {
			w.problem(KindKeyOrder, lvl, b.ptr, b.daddr, "above "+t.keyText(prev), t.keyText(k),
				"key %d out of order", i+1)
			return
		}
		copy(prev, k)
	}
}

// children lists the entries of node b for the next level: each child with
// its key and the next key (the parent's own upper bound for the last).
func (w *walker) children(b *block, _, hi []byte) []walkEnt {
	t := w.t
	n := b.numRecs()
	out := make([]walkEnt, 0, n)
	for i := 0; i < n; i++ {
		lo := append([]byte(nil), t.key(b, i)...)
		var next []byte
		if i+1 < n {
			next = append([]byte(nil), t.key(b, i+1)...)
		} else if hi != nil {
			next = hi
		}
		out = append(out, walkEnt{ptr: t.ptr(b, i), lo: lo, hi: next})
	}
	return out
}

// siblings checks the sibling pointers along one level against the order
// the parents give. Across a gap (a subtree that could not be followed)
// the neighbour is unknown, so that side is not checked.
func (w *walker) siblings(level []walkEnt, lvl int) {
	null := ondisk.NullFSBlock
	for i, e := range level {
		if e.gap || e.hdr == nil {
			continue
		}
		check := func(side string, got uint64, j int) {
			want := null
			if j >= 0 && j < len(level) {
				if level[j].gap {
					return
				}
				want = level[j].ptr
			}
			if got != want {
				w.problem(KindSibling, lvl, e.ptr, -1, ptrText(want), ptrText(got),
					"%s sibling is not the neighbouring block", side)
			}
		}
		check("left", e.hdr.LeftSib, i-1)
		check("right", e.hdr.RightSib, i+1)
	}
}

func ptrText(p uint64) string {
	if p == ondisk.NullFSBlock {
		return "null"
	}
	return fmt.Sprint(p)
}

// keyText renders a key for messages: as hex bytes, since only the tree's
// ops know its layout.
func (t *Tree) keyText(k []byte) string {
	if s, ok := t.Ops.(interface{ KeyString([]byte) string }); ok {
		return s.KeyString(k)
	}
	return fmt.Sprintf("%x", k)
}
