package btree

import (
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// LookupMode selects which record a lookup lands on.
type LookupMode int

const (
	LE LookupMode = iota // the last record with key <= the search key
	EQ                   // a record with key == the search key
	GE                   // the first record with key >= the search key
)

// Cursor is a position in a tree: the block and index at every level.
type Cursor struct {
	t     *Tree
	path  []pathEnt // [0] is the leaf level
	valid bool
	// ra reads ahead of the cursor, set by whole-tree walks: nil for
	// cursors that look up a few records.
	ra *readahead

	// joined is the block a join emptied, to be freed.
	joined uint64
}

type pathEnt struct {
	b   *block
	idx int
}

// NewCursor returns an unpositioned cursor on t.
func (t *Tree) NewCursor() *Cursor { return &Cursor{t: t} }

// Tree returns the tree the cursor walks.
func (c *Cursor) Tree() *Tree { return c.t }

// Valid reports whether the cursor sits on a record.
func (c *Cursor) Valid() bool { return c.valid }

// Rec returns the record under the cursor. It aliases the block buffer.
func (c *Cursor) Rec() []byte {
	if !c.valid {
		return nil
	}
	p := c.path[0]
	return c.t.rec(p.b, p.idx)
}

// Ptr is the block holding the current record (NullFSBlock for a record in
// an inode root).
func (c *Cursor) Ptr() uint64 { return c.path[0].b.ptr }

// descend loads the path from the root to a leaf, choosing at each node
// the child pick returns.
func (c *Cursor) descend(pick func(b *block) int) error {
	h, err := c.t.height()
	if err != nil {
		return err
	}
	c.valid = false
	c.path = make([]pathEnt, h)
	b, err := c.t.rootBlock(h)
	if err != nil {
		return err
	}
	for lvl := h - 1; ; lvl-- {
		if b.numRecs() == 0 {
			if lvl != h-1 {
				return ondisk.Corruptf("%v: empty block %d at level %d", c.t, b.ptr, lvl)
			}
			c.path[lvl] = pathEnt{b: b}
			return nil // an empty tree has only an empty root leaf
		}
		i := pick(b)
		c.path[lvl] = pathEnt{b: b, idx: i}
		if lvl == 0 {
			return nil
		}
		if b, err = c.child(b, i, lvl-1); err != nil {
			return err
		}
	}
}

// child reads the i'th child of node b, which must be at level lvl.
func (c *Cursor) child(b *block, i, lvl int) (*block, error) {
	if c.ra != nil && i == 0 {
		c.readAhead(b, lvl+1)
	}
	p := c.t.ptr(b, i)
	return c.t.readBlock(p, lvl, false)
}

// readaheadBytes is how far a whole-tree walk keeps its leaves read ahead
// of itself: eight large reads keep a device busy, and it stays small next
// to the metadata cache (64 MiB) that several walks share. (A variable so
// that tests can make it small.)
var readaheadBytes = 2 << 20

// readahead is a whole-tree walk's state of reading ahead at the leaf
// level, as xfs_repair's prefetch: the leaves of the level-1 nodes of one
// parent are handed to the store up to a window past the node the cursor
// is in.
type readahead struct {
	parent *block // the level-2 node whose children's leaves are handed out
	next   int    // its first child whose leaves are not handed out yet
	leaves []int  // leaves handed out, by index of the child in parent
	stop   bool   // a child could not be read: the walk reports it on arrival
}

// readAhead is called when the cursor enters node b at level lvl (at its
// first child), to have the store read what the walk needs next with few
// large reads, many in flight. A node's children are handed over when the
// node is entered. For a level-1 node the window also takes in the leaves
// of the nodes after it, so the store has the run of leaves ahead to read
// with large reads, several at once, rather than a node's worth per trip;
// it reads those nodes, which their parent's readahead has already asked
// for, through the verifying readBlock, and stops at the first that
// fails, since the walk itself reports that block when it reaches it.
func (c *Cursor) readAhead(b *block, lvl int) {
	pf, ok := c.t.Store.(Prefetcher)
	if !ok {
		return
	}
	if lvl >= 2 || lvl+1 >= len(c.path) {
		c.prefetchChildren(pf, b) // nodes, few and all needed soon; or a root leaf's parent
		return
	}
	ra, up := c.ra, c.path[lvl+1] // b's parent, and b's index in it
	if ra.parent != up.b {
		*ra = readahead{parent: up.b, next: up.idx, leaves: make([]int, up.b.numRecs())}
	}
	// The entered node's leaves go first, alone: the walk needs them
	// before any other and they need no other read. The leaves of the
	// nodes after it go together once those nodes are read (their reads
	// were asked for together, so they arrive together), so the store can
	// merge them into as few large reads as possible.
	if ra.next <= up.idx {
		c.prefetchChildren(pf, b)
		ra.leaves[up.idx] = b.numRecs()
		ra.next = up.idx + 1
	}
	ahead := 0
	for j := up.idx + 1; j < ra.next; j++ {
		ahead += ra.leaves[j]
	}
	window := readaheadBytes / max(c.t.Shape.BlockSize, 1)
	var ptrs []uint64
	for ; ra.next < len(ra.leaves) && ahead < window && !ra.stop; ra.next++ {
		sib, err := c.t.readBlock(c.t.ptr(up.b, ra.next), lvl, false)
		if err != nil {
			ra.stop = true
			break
		}
		ptrs = c.appendChildren(ptrs, sib)
		ra.leaves[ra.next] = sib.numRecs()
		ahead += sib.numRecs()
	}
	if len(ptrs) > 0 {
		pf.PrefetchBlocks(ptrs)
	}
}

// prefetchChildren hands all of a node's child pointers to the store.
func (c *Cursor) prefetchChildren(pf Prefetcher, b *block) {
	pf.PrefetchBlocks(c.appendChildren(nil, b))
}

// appendChildren appends node b's child pointers to ptrs.
func (c *Cursor) appendChildren(ptrs []uint64, b *block) []uint64 {
	for i := range b.numRecs() {
		ptrs = append(ptrs, c.t.ptr(b, i))
	}
	return ptrs
}

// First moves to the first record; false if the tree is empty.
func (c *Cursor) First() (bool, error) {
	if err := c.descend(func(*block) int { return 0 }); err != nil {
		return false, err
	}
	c.valid = c.path[0].b.numRecs() > 0
	return c.valid, nil
}

// Last moves to the last record; false if the tree is empty.
func (c *Cursor) Last() (bool, error) {
	if err := c.descend(func(b *block) int { return b.numRecs() - 1 }); err != nil {
		return false, err
	}
	c.valid = c.path[0].b.numRecs() > 0
	return c.valid, nil
}

// Lookup positions the cursor by key and reports whether a record
// satisfying mode exists; if not, the cursor is where the key would go.
func (c *Cursor) Lookup(key []byte, mode LookupMode) (bool, error) {
	scratch := make([]byte, c.t.Ops.KeySize())
	// At each level take the last entry whose key is <= key (or the first
	// entry when all are greater): the kernel's descent rule.
	le := func(b *block) int {
		lo, hi := 0, b.numRecs()-1
		ans := 0
		for lo <= hi {
			mid := (lo + hi) / 2
			if c.t.Ops.CmpKey(c.t.keyAt(b, mid, scratch), key) <= 0 {
				ans, lo = mid, mid+1
			} else {
				hi = mid - 1
			}
		}
		return ans
	}
	if err := c.descend(le); err != nil {
		return false, err
	}
	leaf := &c.path[0]
	if leaf.b.numRecs() == 0 {
		return false, nil
	}
	c.valid = true
	cmp := c.t.Ops.CmpKey(c.t.keyAt(leaf.b, leaf.idx, scratch), key)
	switch mode {
	case LE:
		if cmp > 0 { // every record is greater than key
			c.valid = false
			return false, nil
		}
		return true, nil
	case EQ:
		return cmp == 0, nil
	default: // GE
		if cmp >= 0 {
			return true, nil
		}
		return c.Next()
	}
}

// Next moves to the following record; false at the end of the tree.
func (c *Cursor) Next() (bool, error) { return c.step(+1) }

// Prev moves to the preceding record; false at the start of the tree.
func (c *Cursor) Prev() (bool, error) { return c.step(-1) }

// step moves one record in direction dir by walking up the path to the
// first level that can move and back down the near edge of the next
// subtree, as xfs_btree_increment does.
func (c *Cursor) step(dir int) (bool, error) {
	if len(c.path) == 0 {
		return false, fmt.Errorf("%v: cursor not positioned", c.t)
	}
	lvl := 0
	for ; lvl < len(c.path); lvl++ {
		p := &c.path[lvl]
		n := p.idx + dir
		if n >= 0 && n < p.b.numRecs() {
			p.idx = n
			break
		}
	}
	if lvl == len(c.path) {
		c.valid = false
		return false, nil
	}
	for ; lvl > 0; lvl-- {
		p := c.path[lvl]
		b, err := c.child(p.b, p.idx, lvl-1)
		if err != nil {
			c.valid = false
			return false, err
		}
		i := 0
		if dir < 0 {
			i = b.numRecs() - 1
		}
		c.path[lvl-1] = pathEnt{b: b, idx: i}
	}
	c.valid = true
	return true, nil
}

// Records calls fn with every record in key order. It stops at the first
// error, which it returns.
func (t *Tree) Records(fn func(rec []byte) error) error {
	rs := t.Ops.RecSize()
	return t.Leaves(func(recs []byte) error {
		for off := 0; off < len(recs); off += rs {
			if err := fn(recs[off : off+rs : off+rs]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Leaves calls fn with the records of each leaf in key order, packed as
// they are on disk: a caller that folds them up (a histogram, a count)
// decodes a block in one loop instead of making a call per record. recs
// is the cached block's: fn must not keep or modify it.
func (t *Tree) Leaves(fn func(recs []byte) error) error {
	c := t.NewCursor()
	c.ra = &readahead{}
	ok, err := c.First()
	for ok && err == nil {
		leaf := &c.path[0]
		n := leaf.b.numRecs()
		if err := fn(leaf.b.buf[t.recOff(leaf.idx):t.recOff(n):t.recOff(n)]); err != nil {
			return err
		}
		leaf.idx = n - 1
		ok, err = c.step(+1)
	}
	return err
}
