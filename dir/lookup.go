package dir

import (
	"fmt"
	"sort"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Lookup finds name the way the kernel does: a linear scan of a shortform
// directory; otherwise the hash of the name is searched in the hash index
// (the single block's leaf, the LEAF1 block, or the dabtree down to a
// LEAFN block and on through siblings while the hash continues), and only
// the entries with that hash are read and compared. An absent name gives
// an error wrapping ondisk.ErrNotFound.
func (d *Dir) Lookup(name string) (Entry, error) {
	notFound := fmt.Errorf("directory %d: %q: %w", d.ino, name, ondisk.ErrNotFound)
	if len(name) == 0 || len(name) > ondisk.DirNameMax {
		return Entry{}, notFound
	}
	form, err := d.FormErr()
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	var found bool
	switch form {
	case FormShortform:
		e, found, err = d.lookupSF(name)
	case FormBlock:
		e, found, err = d.lookupBlock(name)
	case FormLeaf:
		e, found, err = d.lookupLeaf(name)
	default:
		e, found, err = d.lookupNode(name)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("lookup %q: %w", name, err)
	}
	if !found {
		return Entry{}, notFound
	}
	return e, nil
}

func (d *Dir) lookupSF(name string) (Entry, bool, error) {
	s, err := d.shortform()
	if err != nil {
		return Entry{}, false, err
	}
	switch name {
	case ".":
		return Entry{Name: name, Ino: d.ino, FType: dirFTDir,
			Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, 0, ondisk.DirDataDotOffset))}, true, nil
	case "..":
		return Entry{Name: name, Ino: s.Parent, FType: dirFTDir,
			Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, 0, ondisk.DirDataDotDotOff))}, true, nil
	}
	for _, e := range s.Entries {
		if string(e.Name) == name {
			return Entry{Name: name, Ino: e.Ino, FType: e.FType,
				Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, 0, int(e.Offset)))}, true, nil
		}
	}
	return Entry{}, false, nil
}

// firstHash is the index of the first leaf entry with hash >= h.
func firstHash(ents []ondisk.DirLeafEntry, h uint32) int {
	return sort.Search(len(ents), func(i int) bool { return ents[i].Hash >= h })
}

func (d *Dir) lookupBlock(name string) (Entry, bool, error) {
	b, err := d.dataBlock(0, ondisk.Dir3BlockMagic)
	if err != nil {
		return Entry{}, false, err
	}
	if b == nil {
		return Entry{}, false, d.corruptf("single-block directory has no block 0")
	}
	h := ondisk.DAHashName([]byte(name))
	for i := firstHash(b.b.Leaf, h); i < len(b.b.Leaf) && b.b.Leaf[i].Hash == h; i++ {
		addr := b.b.Leaf[i].Address
		if addr == ondisk.DirNullDataptr {
			continue
		}
		db, off := ondisk.DirDataptrSplit(d.g.DirBlkSize, addr)
		e, ok := b.b.EntryAt(off)
		if db != 0 || !ok {
			return Entry{}, false, d.corruptf("block leaf address 0x%x points at no entry", addr)
		}
		if string(e.Name) == name {
			return d.entry(0, e), true, nil
		}
	}
	return Entry{}, false, nil
}

// resolve reads the data entry a leaf address points at.
func (d *Dir) resolve(addr uint32) (Entry, error) {
	db, off := ondisk.DirDataptrSplit(d.g.DirBlkSize, addr)
	b, err := d.dataBlock(db, ondisk.Dir3DataMagic)
	if err != nil {
		return Entry{}, err
	}
	if b == nil {
		return Entry{}, d.corruptf("leaf address 0x%x points into data block %d, a hole", addr, db)
	}
	e, ok := b.b.EntryAt(off)
	if !ok {
		return Entry{}, d.corruptf("leaf address 0x%x points at no entry in data block %d", addr, db)
	}
	return d.entry(db, e), nil
}

// scanLeaf compares name with every live entry hashing to h.
func (d *Dir) scanLeaf(ents []ondisk.DirLeafEntry, h uint32, name string) (Entry, bool, error) {
	for i := firstHash(ents, h); i < len(ents) && ents[i].Hash == h; i++ {
		if ents[i].Address == ondisk.DirNullDataptr {
			continue
		}
		e, err := d.resolve(ents[i].Address)
		if err != nil {
			return Entry{}, false, err
		}
		if e.Name == name {
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}

func (d *Dir) lookupLeaf(name string) (Entry, bool, error) {
	lb, err := d.leafBlock(d.leafDA)
	if err != nil {
		return Entry{}, false, err
	}
	if lb.leaf == nil || !lb.leaf.IsLeaf1() {
		return Entry{}, false, d.corruptf("leaf directory without a LEAF1 block at file block %d", d.leafDA)
	}
	return d.scanLeaf(lb.leaf.Ents, ondisk.DAHashName([]byte(name)), name)
}

// lookupNode descends the dabtree as xfs_da3_node_lookup_int does: in each
// node, the first key not below the hash (keys are the largest hash under
// them), or the last key. At the leaf, if the name is not there and the
// leaf's last hash is the one sought, the same hash may continue in the
// next leaf.
func (d *Dir) lookupNode(name string) (Entry, bool, error) {
	h := ondisk.DAHashName([]byte(name))
	da, level := d.leafDA, -1
	var lb *leafBlock
	for depth := 0; ; depth++ {
		var err error
		if lb, err = d.leafBlock(da); err != nil {
			return Entry{}, false, err
		}
		if lb.leaf != nil {
			if lb.leaf.IsLeaf1() {
				return Entry{}, false, d.corruptf("LEAF1 block %d in a node directory", da)
			}
			if level > 1 {
				return Entry{}, false, d.corruptf("level %d node points at leaf block %d", level, da)
			}
			break
		}
		n := lb.node
		if depth >= ondisk.DANodeMaxDepth || (level >= 0 && int(n.Level) != level-1) {
			return Entry{}, false, d.corruptf("node block %d: level %d at depth %d under level %d", da, n.Level, depth, level)
		}
		level = int(n.Level)
		i := sort.Search(len(n.Ents), func(i int) bool { return n.Ents[i].Hash >= h })
		if i == len(n.Ents) {
			i--
		}
		da = uint64(n.Ents[i].Before)
	}
	visited := map[uint64]bool{}
	for hops := 0; ; hops++ {
		visited[da] = true
		ents := lb.leaf.Ents
		e, found, err := d.scanLeaf(ents, h, name)
		if err != nil || found {
			return e, found, err
		}
		if len(ents) == 0 || ents[len(ents)-1].Hash != h || lb.leaf.Forw == 0 {
			return Entry{}, false, nil
		}
		next := uint64(lb.leaf.Forw)
		if visited[next] || hops >= maxSiblingHops {
			return Entry{}, false, d.corruptf("leaf sibling chain loops at block %d", next)
		}
		nb, err := d.leafBlock(next)
		if err != nil {
			return Entry{}, false, err
		}
		if nb.leaf == nil || nb.leaf.IsLeaf1() || uint64(nb.leaf.Back) != da {
			return Entry{}, false, d.corruptf("leaf block %d: forward sibling %d is not a LEAFN pointing back", da, next)
		}
		da, lb = next, nb
	}
}
