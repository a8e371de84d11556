package bmbt

import (
	"sort"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The record primitives every change is made of, over either format: the
// extent list in the inode, or the BMBT through the btree engine. Records
// never overlap, so a record is named by its start offset.

// le returns the last record starting at or before off.
func (f *IFork) le(off uint64) (ondisk.Extent, bool, error) {
	if f.format == ondisk.FmtExtents {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff > off })
		if i == 0 {
			return ondisk.Extent{}, false, nil
		}
		return f.exts[i-1], true, nil
	}
	c := f.tree.NewCursor()
	ok, err := c.Lookup(Key(off), btree.LE)
	if err != nil || !ok {
		return ondisk.Extent{}, false, err
	}
	return ondisk.DecodeExtent(c.Rec()), true, nil
}

// seek returns the last record starting at or before off and the first
// starting after it, with one descent of the tree.
func (f *IFork) seek(off uint64) (le ondisk.Extent, hasLE bool, next ondisk.Extent, hasNext bool, err error) {
	if f.format == ondisk.FmtExtents {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff > off })
		if i > 0 {
			le, hasLE = f.exts[i-1], true
		}
		if i < len(f.exts) {
			next, hasNext = f.exts[i], true
		}
		return
	}
	c := f.tree.NewCursor()
	ok, err := c.Lookup(Key(off), btree.LE)
	if err != nil {
		return
	}
	if !ok {
		// Everything starts after off.
		if ok, err = c.First(); err == nil && ok {
			next, hasNext = ondisk.DecodeExtent(c.Rec()), true
		}
		return
	}
	le, hasLE = ondisk.DecodeExtent(c.Rec()), true
	if ok, err = c.Next(); err == nil && ok {
		next, hasNext = ondisk.DecodeExtent(c.Rec()), true
	}
	return
}

// ge returns the first record starting at or after off.
func (f *IFork) ge(off uint64) (ondisk.Extent, bool, error) {
	if f.format == ondisk.FmtExtents {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff >= off })
		if i == len(f.exts) {
			return ondisk.Extent{}, false, nil
		}
		return f.exts[i], true, nil
	}
	c := f.tree.NewCursor()
	ok, err := c.Lookup(Key(off), btree.GE)
	if err != nil || !ok {
		return ondisk.Extent{}, false, err
	}
	return ondisk.DecodeExtent(c.Rec()), true, nil
}

// update replaces the record starting at old with e, which must keep its
// place in the order.
func (f *IFork) update(old uint64, e ondisk.Extent) error {
	if f.format == ondisk.FmtExtents {
		i, ok := f.index(old)
		if !ok {
			return ondisk.Corruptf("inode %d: no extent at %d to update", f.ino, old)
		}
		f.exts[i] = e
		return nil
	}
	c := f.tree.NewCursor()
	ok, err := c.Lookup(Key(old), btree.EQ)
	if err != nil {
		return err
	}
	if !ok {
		return ondisk.Corruptf("inode %d: no bmbt record at %d to update", f.ino, old)
	}
	rec := make([]byte, ondisk.BmbtRecSize)
	e.Encode(rec)
	return c.Update(rec)
}

// insert adds record e; a list that outgrows the inode becomes a BMBT.
func (f *IFork) insert(e ondisk.Extent) error {
	if f.format == ondisk.FmtExtents {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff >= e.StartOff })
		f.exts = append(f.exts, ondisk.Extent{})
		copy(f.exts[i+1:], f.exts[i:])
		f.exts[i] = e
		f.setNextents(uint64(len(f.exts)))
		if len(f.exts) > f.MaxExtents() {
			return f.toBtree()
		}
		return nil
	}
	rec := make([]byte, ondisk.BmbtRecSize)
	e.Encode(rec)
	if err := f.tree.NewCursor().Insert(rec); err != nil {
		return err
	}
	f.setNextents(f.nextents() + 1)
	return nil
}

// del removes the record starting at off.
func (f *IFork) del(off uint64) error {
	if f.format == ondisk.FmtExtents {
		i, ok := f.index(off)
		if !ok {
			return ondisk.Corruptf("inode %d: no extent at %d to remove", f.ino, off)
		}
		f.exts = append(f.exts[:i], f.exts[i+1:]...)
		f.setNextents(uint64(len(f.exts)))
		return nil
	}
	c := f.tree.NewCursor()
	ok, err := c.Lookup(Key(off), btree.EQ)
	if err != nil {
		return err
	}
	if !ok {
		return ondisk.Corruptf("inode %d: no bmbt record at %d to remove", f.ino, off)
	}
	if err := c.Delete(); err != nil {
		return err
	}
	f.setNextents(f.nextents() - 1)
	// A BMBT never runs empty: once the records fit the inode they go
	// back into it (the engine keeps an in-inode root over one leaf).
	return f.finish()
}

func (f *IFork) index(off uint64) (int, bool) {
	i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff >= off })
	return i, i < len(f.exts) && f.exts[i].StartOff == off
}
