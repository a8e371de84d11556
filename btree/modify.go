package btree

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// ErrExists is returned when inserting a record whose key is present.
var ErrExists = errors.New("record with this key exists")

// Changing a tree follows xfs_btree.c: an insert goes into the leaf where
// its key belongs; a full block first tries to pass an entry to a sibling
// under the same parent, then splits, and a full root grows the tree by a
// level (a full in-inode root pushes its entries into a new child block).
// A delete that leaves a block under half full borrows from a sibling or
// joins it, and a root left with one child is replaced by that child. Keys
// in the parents follow every change of a block's first key.
//
// After Insert or Delete the cursor no longer points at a record: callers
// look up again. Lookups are cheap next to the I/O they save.

// Insert adds rec to the tree.
func (c *Cursor) Insert(rec []byte) error {
	t := c.t
	if _, _, err := t.writer(); err != nil {
		return err
	}
	key := make([]byte, t.Ops.KeySize())
	t.Ops.KeyFromRec(key, rec)
	if _, err := c.Lookup(key, LE); err != nil {
		return err
	}
	defer func() { c.valid = false }()
	leaf := &c.path[0]
	idx := 0
	if leaf.b.numRecs() > 0 {
		scratch := make([]byte, t.Ops.KeySize())
		switch cmp := t.Ops.CmpKey(t.keyAt(leaf.b, leaf.idx, scratch), key); {
		case cmp == 0:
			return fmt.Errorf("%v: insert %x: %w", t, key, ErrExists)
		case cmp < 0:
			idx = leaf.idx + 1
		default:
			idx = leaf.idx // smaller than every key in the tree
		}
	}
	return c.insertLevel(0, idx, entry{rec: append([]byte(nil), rec...)})
}

// insertLevel puts e at index idx of the block on the path at lvl, making
// room first if the block is full.
func (c *Cursor) insertLevel(lvl, idx int, e entry) error {
	t := c.t
	if b := c.path[lvl].b; b.numRecs() >= t.capacity(b.buf, lvl) {
		if b.ptr == ondisk.NullFSBlock {
			if err := c.pushInodeRoot(lvl); err != nil {
				return err
			}
		} else {
			shifted, err := c.shift(lvl, &idx)
			if err != nil {
				return err
			}
			if !shifted {
				return c.splitInsert(lvl, idx, e)
			}
		}
	}
	p := &c.path[lvl]
	t.insertAt(p.b, idx, e)
	p.idx = idx
	if idx == 0 {
		c.updateKeys(lvl)
	}
	return nil
}

// shift frees a slot in the full block at lvl by passing an entry to a
// sibling under the same parent, adjusting *idx; the insert stays in this
// block. It reports whether it did.
func (c *Cursor) shift(lvl int, idx *int) (bool, error) {
	t := c.t
	if lvl == len(c.path)-1 {
		return false, nil
	}
	b := c.path[lvl].b
	n := b.numRecs()
	capacity := t.capacity(b.buf, lvl)
	parent := c.path[lvl+1]
	// Right shift: the last entry moves to the right sibling. Not when
	// inserting at the end: the new entry would then belong between the
	// two blocks, which a split handles.
	if parent.idx+1 < parent.b.numRecs() && *idx < n {
		r, err := c.child(parent.b, parent.idx+1, lvl)
		if err != nil {
			return false, err
		}
		if r.numRecs() < capacity {
			last := t.entryAt(b, n-1)
			t.removeAt(b, n-1)
			t.insertAt(r, 0, last)
			c.setParentKey(lvl, parent.idx+1, r)
			return true, nil
		}
	}
	// Left shift: the first entry moves to the left sibling; likewise not
	// when inserting at the front.
	if parent.idx > 0 && *idx > 0 {
		l, err := c.child(parent.b, parent.idx-1, lvl)
		if err != nil {
			return false, err
		}
		if l.numRecs() < capacity {
			first := t.entryAt(b, 0)
			t.removeAt(b, 0)
			t.insertAt(l, l.numRecs(), first)
			c.updateKeys(lvl)
			*idx--
			return true, nil
		}
	}
	return false, nil
}

// splitInsert splits the full block at lvl, moving its upper half into a
// new right sibling, inserts e into the half it belongs in, and links the
// new block into the parent (growing a new root above a split root).
func (c *Cursor) splitInsert(lvl, idx int, e entry) error {
	t := c.t
	w := t.Store.(Writer)
	b := c.path[lvl].b
	n := b.numRecs()
	rptr, rbuf, rdaddr, err := w.AllocBlock(b.ptr)
	if err != nil {
		return fmt.Errorf("%v: split: %w", t, err)
	}
	r := &block{buf: rbuf, ptr: rptr, daddr: rdaddr, hdr: t.newHeader(lvl, rdaddr)}
	keep := (n + 1) / 2
	for i := keep; i < n; i++ {
		t.putEntry(r, i-keep, t.entryAt(b, i))
	}
	r.hdr.NumRecs = uint16(n - keep)
	t.logEntries(r, 0, n-keep)
	// Link r between b and b's old right sibling.
	r.hdr.LeftSib, r.hdr.RightSib = b.ptr, b.hdr.RightSib
	t.logHeader(r)
	if old := b.hdr.RightSib; old != ondisk.NullFSBlock {
		rr, err := t.readBlock(old, lvl, false)
		if err != nil {
			return err
		}
		rr.hdr.LeftSib = rptr
		t.logHeader(rr)
	}
	b.hdr.NumRecs = uint16(keep)
	b.hdr.RightSib = rptr
	t.logHeader(b)
	if idx <= keep {
		t.insertAt(b, idx, e)
		if idx == 0 {
			c.updateKeys(lvl)
		}
	} else {
		// r is not in the parent yet: its first key goes there below.
		t.insertAt(r, idx-keep, e)
	}
	link := entry{rec: t.firstKey(r), ptr: rptr}
	if lvl == len(c.path)-1 {
		return c.newRoot(lvl, b, link)
	}
	return c.insertLevel(lvl+1, c.path[lvl+1].idx+1, link)
}

// logEntries logs entries [first, end) of b.
func (t *Tree) logEntries(b *block, first, end int) {
	if b.level() == 0 {
		t.logRecs(b, first, end)
		return
	}
	t.logKeys(b, first, end)
	t.logPtrs(b, first, end)
}

// newHeader is the header of a new empty block at level lvl.
func (t *Tree) newHeader(lvl int, daddr int64) *ondisk.BtreeBlock {
	return &ondisk.BtreeBlock{
		Magic:    t.Ops.Magic(),
		Level:    uint16(lvl),
		LeftSib:  ondisk.NullFSBlock,
		RightSib: ondisk.NullFSBlock,
		Blkno:    uint64(daddr),
		UUID:     t.Shape.UUID,
		Owner:    t.Shape.Owner,
		Long:     t.Ops.Long(),
	}
}

// newRoot grows a block-rooted tree by a level after its root at lvl
// split: the new root holds the old root and its new right sibling.
func (c *Cursor) newRoot(lvl int, left *block, right entry) error {
	t := c.t
	w, rw, _ := t.writer()
	ptr, buf, daddr, err := w.AllocBlock(left.ptr)
	if err != nil {
		return fmt.Errorf("%v: new root: %w", t, err)
	}
	root := &block{buf: buf, ptr: ptr, daddr: daddr, hdr: t.newHeader(lvl+1, daddr)}
	t.putEntry(root, 0, entry{rec: t.firstKey(left), ptr: left.ptr})
	t.putEntry(root, 1, right)
	root.hdr.NumRecs = 2
	t.logEntries(root, 0, 2)
	t.logHeader(root)
	rw.SetRoot(ptr, lvl+2)
	c.path = append(c.path, pathEnt{b: root})
	return nil
}

// pushInodeRoot makes room in a full in-inode root at lvl: its entries
// move to a new child block and the root keeps one pointer to it, one
// level higher (xfs_btree_new_iroot).
func (c *Cursor) pushInodeRoot(lvl int) error {
	t := c.t
	w, rw, _ := t.writer()
	root := c.path[lvl].b
	n := root.numRecs()
	ptr, buf, daddr, err := w.AllocBlock(0)
	if err != nil {
		return fmt.Errorf("%v: grow root: %w", t, err)
	}
	child := &block{buf: buf, ptr: ptr, daddr: daddr, hdr: t.newHeader(lvl, daddr)}
	for i := 0; i < n; i++ {
		t.putEntry(child, i, t.entryAt(root, i))
	}
	child.hdr.NumRecs = uint16(n)
	t.logEntries(child, 0, n)
	t.logHeader(child)
	// The root becomes a node one level up with the child as its only
	// entry; its key and pointer slots are laid out for its capacity.
	clear(root.buf[HeaderSize(t.Ops):])
	root.hdr.Level = uint16(lvl + 1)
	root.hdr.NumRecs = 1
	t.putEntry(root, 0, entry{rec: t.firstKey(child), ptr: ptr})
	root.hdr.Encode(root.buf)
	rw.LogInodeRoot()
	idx := c.path[lvl].idx
	c.path[lvl] = pathEnt{b: child, idx: idx}
	c.path = append(c.path, pathEnt{b: root, idx: 0})
	return nil
}

// updateKeys copies the first key of the block at lvl into its parent's
// entry, and on up while the changed entry is a block's first.
func (c *Cursor) updateKeys(lvl int) {
	for l := lvl; l < len(c.path)-1; l++ {
		parent := c.path[l+1]
		c.setParentKey(l, parent.idx, c.path[l].b)
		if parent.idx != 0 {
			return
		}
	}
}

// setParentKey sets the parent's key at index i (the parent is the path
// block at lvl+1) to b's first key.
func (c *Cursor) setParentKey(lvl, i int, b *block) {
	t := c.t
	parent := c.path[lvl+1].b
	copy(t.key(parent, i), t.firstKey(b))
	t.logKeys(parent, i, i+1)
}

// Update overwrites the record under the cursor with rec; its key may
// change only within the record's place in the order.
func (c *Cursor) Update(rec []byte) error {
	t := c.t
	if _, _, err := t.writer(); err != nil {
		return err
	}
	if !c.valid {
		return fmt.Errorf("%v: update without a record under the cursor", t)
	}
	p := c.path[0]
	copy(t.rec(p.b, p.idx), rec)
	t.logRecs(p.b, p.idx, p.idx+1)
	if p.idx == 0 {
		c.updateKeys(0)
	}
	return nil
}

// Delete removes the record under the cursor.
func (c *Cursor) Delete() error {
	t := c.t
	if _, _, err := t.writer(); err != nil {
		return err
	}
	if !c.valid {
		return fmt.Errorf("%v: delete without a record under the cursor", t)
	}
	defer func() { c.valid = false }()
	return c.deleteLevel(0)
}

// deleteLevel removes the entry the path points at on level lvl and
// rebalances.
func (c *Cursor) deleteLevel(lvl int) error {
	t := c.t
	w, _, _ := t.writer()
	p := &c.path[lvl]
	b, idx := p.b, p.idx
	t.removeAt(b, idx)
	n := b.numRecs()
	if lvl == len(c.path)-1 {
		if lvl > 0 && n == 1 {
			return c.collapseRoot(lvl)
		}
		return nil
	}
	if idx == 0 && n > 0 {
		c.updateKeys(lvl)
	}
	if n >= t.minRecs(lvl) {
		return nil
	}
	parent := c.path[lvl+1]
	// Borrow the right sibling's first entry.
	var r, l *block
	var err error
	if parent.idx+1 < parent.b.numRecs() {
		if r, err = c.child(parent.b, parent.idx+1, lvl); err != nil {
			return err
		}
		if r.numRecs() > t.minRecs(lvl) {
			first := t.entryAt(r, 0)
			t.removeAt(r, 0)
			t.insertAt(b, n, first)
			c.setParentKey(lvl, parent.idx+1, r)
			if n == 0 {
				c.updateKeys(lvl)
			}
			return nil
		}
	}
	// Borrow the left sibling's last entry.
	if parent.idx > 0 {
		if l, err = c.child(parent.b, parent.idx-1, lvl); err != nil {
			return err
		}
		if l.numRecs() > t.minRecs(lvl) {
			last := t.entryAt(l, l.numRecs()-1)
			t.removeAt(l, l.numRecs()-1)
			t.insertAt(b, 0, last)
			c.updateKeys(lvl)
			return nil
		}
	}
	// Join with a sibling: the right block of the pair empties into the
	// left one and its parent entry goes.
	switch {
	case r != nil:
		if err := c.join(b, r, lvl); err != nil {
			return err
		}
		c.path[lvl+1].idx = parent.idx + 1
	case l != nil:
		if err := c.join(l, b, lvl); err != nil {
			return err
		}
	default:
		// An only child, which only an in-inode root has: pull it up into
		// the inode if it fits now, else leave it as it is.
		return c.collapseRoot(lvl + 1)
	}
	if err := w.FreeBlock(c.joined); err != nil {
		return err
	}
	return c.deleteLevel(lvl + 1)
}

// join appends right's entries to left and unlinks right.
func (c *Cursor) join(left, right *block, lvl int) error {
	t := c.t
	ln, rn := left.numRecs(), right.numRecs()
	for i := 0; i < rn; i++ {
		t.putEntry(left, ln+i, t.entryAt(right, i))
	}
	t.logEntries(left, ln, ln+rn)
	left.hdr.NumRecs = uint16(ln + rn)
	left.hdr.RightSib = right.hdr.RightSib
	t.logHeader(left)
	if rr := right.hdr.RightSib; rr != ondisk.NullFSBlock {
		b, err := t.readBlock(rr, lvl, false)
		if err != nil {
			return err
		}
		b.hdr.LeftSib = left.ptr
		t.logHeader(b)
	}
	c.joined = right.ptr
	return nil
}

// collapseRoot replaces a root node left with one child by that child
// (xfs_btree_kill_root), or for an in-inode root pulls the child's
// entries up into the inode when they fit (xfs_btree_kill_iroot). An
// in-inode root never becomes a leaf: its owner changes the fork format
// instead.
func (c *Cursor) collapseRoot(lvl int) error {
	t := c.t
	w, rw, _ := t.writer()
	root := c.path[lvl].b
	child, err := c.child(root, 0, lvl-1)
	if err != nil {
		return err
	}
	if root.ptr == ondisk.NullFSBlock {
		if lvl-1 == 0 || child.numRecs() > NodeMaxRecs(t.Ops, len(root.buf)) {
			return nil
		}
		n := child.numRecs()
		clear(root.buf[HeaderSize(t.Ops):])
		root.hdr.Level = uint16(lvl - 1)
		root.hdr.NumRecs = uint16(n)
		for i := 0; i < n; i++ {
			t.putEntry(root, i, t.entryAt(child, i))
		}
		root.hdr.Encode(root.buf)
		rw.LogInodeRoot()
		c.path = c.path[:lvl]
		c.path[lvl-1] = pathEnt{b: root, idx: 0}
		return w.FreeBlock(child.ptr)
	}
	rw.SetRoot(child.ptr, lvl)
	c.path = c.path[:lvl]
	return w.FreeBlock(root.ptr)
}
