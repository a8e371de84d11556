package dir

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// maxVerifyErrors caps the problems one Verify reports.
const maxVerifyErrors = 32

type problems struct{ errs []error }

// add records err as a problem of the given kind, unless it already
// carries one (errors of block reads do).
func (p *problems) add(kind string, err error) {
	if err != nil && len(p.errs) < maxVerifyErrors {
		p.errs = append(p.errs, kinded(kind, err))
	}
}

func (p *problems) full() bool { return len(p.errs) >= maxVerifyErrors }

func (p *problems) err() error { return errors.Join(p.errs...) }

// Verify reads every block of the directory, verifies each, and checks them
// against each other as xfs_repair would: "." and ".." lead block 0; every
// live leaf entry points at an entry whose name has its hash, and every
// entry has one; the dabtree's keys, levels and sibling links agree with
// its blocks; the bests tables (LEAF1 tail or free index) match each data
// block's longest free region. All problems found are joined; each is a
// *Problem whose Kind says which rule it breaks (KindOf).
func (d *Dir) Verify() error {
	form, err := d.FormErr()
	if err != nil {
		return kinded(KindForm, err)
	}
	var p problems
	switch form {
	case FormShortform:
		_, err := d.shortform()
		return kinded(KindBlock, err)
	case FormBlock:
		b, err := d.dataBlock(0, ondisk.Dir3BlockMagic)
		if err != nil {
			return kinded(KindBlock, err)
		}
		if b == nil {
			return kinded(KindForm, d.corruptf("single-block directory has no block 0"))
		}
		p.add(KindDots, d.checkDots(b.b))
		return p.err()
	}

	n, err := d.dataBlocks()
	if err != nil {
		return kinded(KindForm, err)
	}
	// What the data blocks hold, for the index checks.
	addrHash := map[uint32]uint32{}
	bests := make([]uint16, n)
	for db := uint64(0); db < n; db++ {
		bests[db] = ondisk.DirNullDataOff
		b, err := d.dataBlock(db, ondisk.Dir3DataMagic)
		if err != nil {
			p.add(KindBlock, err)
			continue
		}
		if b == nil {
			if db == 0 {
				p.add(KindForm, d.corruptf("data block 0 is a hole"))
			}
			continue
		}
		if db == 0 {
			p.add(KindDots, d.checkDots(b.b))
		}
		bests[db] = b.b.BestFree[0].Length
		for _, e := range b.b.Entries {
			addrHash[ondisk.DirDataptr(d.g.DirBlkSize, db, e.Off)] = ondisk.DAHashName(e.Name)
		}
	}
	if n > 0 && bests[n-1] == ondisk.DirNullDataOff && !p.full() {
		p.add(KindForm, d.corruptf("di_size %d ends in a hole", d.size))
	}

	var leaves []*ondisk.DirLeaf
	if form == FormLeaf {
		lb, err := d.leafBlock(d.leafDA)
		if err != nil {
			p.add(KindBlock, err)
			return p.err()
		}
		if lb.leaf == nil || !lb.leaf.IsLeaf1() {
			p.add(KindForm, d.corruptf("leaf directory without a LEAF1 block"))
			return p.err()
		}
		l := lb.leaf
		if len(l.Bests) != len(bests) {
			p.add(KindBests, d.corruptf("leaf bestcount %d for %d data blocks", len(l.Bests), len(bests)))
		} else {
			for db, b := range l.Bests {
				if b != bests[db] {
					p.add(KindBests, d.corruptf("leaf bests[%d] = %d, data block longest free region %d", db, b, bests[db]))
				}
			}
		}
		leaves = []*ondisk.DirLeaf{l}
	} else {
		leaves = d.verifyTree(&p)
		d.verifyFree(&p, bests)
	}
	d.checkLeafEntries(&p, leaves, addrHash)
	return p.err()
}

// checkDots: "." and ".." are the first two entries of block 0, at their
// fixed offsets, "." naming the directory itself.
func (d *Dir) checkDots(b *ondisk.DirDataBlock) error {
	if len(b.Entries) < 2 ||
		string(b.Entries[0].Name) != "." || b.Entries[0].Off != ondisk.DirDataDotOffset ||
		string(b.Entries[1].Name) != ".." || b.Entries[1].Off != ondisk.DirDataDotDotOff {
		return d.corruptf("block 0 does not start with \".\" and \"..\"")
	}
	if b.Entries[0].Ino != d.ino {
		return d.corruptf("\".\" names inode %d", b.Entries[0].Ino)
	}
	return nil
}

// checkLeafEntries: hashes ascend across the leaves in order, and the live
// entries are exactly the data entries, each with its name's hash.
func (d *Dir) checkLeafEntries(p *problems, leaves []*ondisk.DirLeaf, addrHash map[uint32]uint32) {
	seen := make(map[uint32]bool, len(addrHash))
	var last uint32
	first := true
	for _, l := range leaves {
		for _, e := range l.Ents {
			if p.full() {
				return
			}
			if !first && e.Hash < last {
				p.add(KindHash, d.corruptf("leaf hash 0x%08x after 0x%08x at daddr %d", e.Hash, last, l.Blkno))
			}
			first, last = false, e.Hash
			if e.Address == ondisk.DirNullDataptr {
				continue
			}
			h, ok := addrHash[e.Address]
			switch {
			case !ok:
				p.add(KindHash, d.corruptf("leaf entry (hash 0x%08x, address 0x%x) points at no entry", e.Hash, e.Address))
			case h != e.Hash:
				p.add(KindHash, d.corruptf("leaf entry for address 0x%x has hash 0x%08x, the name hashes to 0x%08x", e.Address, e.Hash, h))
			case seen[e.Address]:
				p.add(KindHash, d.corruptf("two leaf entries for address 0x%x", e.Address))
			}
			seen[e.Address] = true
		}
	}
	if len(seen) != len(addrHash) && !p.full() {
		for a := range addrHash {
			if !seen[a] {
				p.add(KindHash, d.corruptf("data entry at address 0x%x has no leaf entry", a))
				break
			}
		}
	}
}

// verifyTree walks the dabtree level by level from the root and returns
// its leaves in order. Each node key must be the last hash of the child it
// points at, each child one level below, and each level's blocks linked
// to their neighbours. Every block is visited at most once.
func (d *Dir) verifyTree(p *problems) []*ondisk.DirLeaf {
	visited := map[uint64]bool{d.leafDA: true}
	level := []uint64{d.leafDA}
	want := -1 // the level the blocks in level must have; -1 for the root
	for depth := 0; ; depth++ {
		if depth > ondisk.DANodeMaxDepth {
			p.add(KindTree, d.corruptf("dabtree deeper than %d", ondisk.DANodeMaxDepth))
			return nil
		}
		blocks := make([]*leafBlock, 0, len(level))
		for _, da := range level {
			lb, err := d.leafBlock(da)
			if err != nil {
				p.add(KindBlock, err)
				return nil
			}
			blocks = append(blocks, lb)
		}
		d.checkSiblings(p, level, blocks)
		if blocks[0].leaf != nil {
			leaves := make([]*ondisk.DirLeaf, 0, len(blocks))
			for i, lb := range blocks {
				if lb.leaf == nil || lb.leaf.IsLeaf1() || want > 0 {
					p.add(KindTree, d.corruptf("block %d: want a LEAFN block at level 0", level[i]))
					return nil
				}
				leaves = append(leaves, lb.leaf)
			}
			return leaves
		}
		var next []uint64
		for i, lb := range blocks {
			if lb.node == nil || (want >= 0 && int(lb.node.Level) != want) {
				p.add(KindTree, d.corruptf("block %d: want a node at level %d", level[i], want))
				return nil
			}
			for _, e := range lb.node.Ents {
				c := uint64(e.Before)
				if visited[c] {
					p.add(KindTree, d.corruptf("node block %d points at block %d a second time", level[i], c))
					return nil
				}
				visited[c] = true
				child, err := d.leafBlock(c)
				if err != nil {
					p.add(KindBlock, err)
					return nil
				}
				if last, ok := child.lastHash(); ok && last != e.Hash {
					p.add(KindTree, d.corruptf("node block %d: key 0x%08x for block %d, whose last hash is 0x%08x", level[i], e.Hash, c, last))
				}
				next = append(next, c)
			}
		}
		want = int(blocks[0].node.Level) - 1
		level = next
	}
}

func (lb *leafBlock) lastHash() (uint32, bool) {
	if lb.node != nil && len(lb.node.Ents) > 0 {
		return lb.node.Ents[len(lb.node.Ents)-1].Hash, true
	}
	if lb.leaf != nil && len(lb.leaf.Ents) > 0 {
		return lb.leaf.Ents[len(lb.leaf.Ents)-1].Hash, true
	}
	return 0, false
}

func (lb *leafBlock) info() *ondisk.DA3BlkInfo {
	if lb.node != nil {
		return &lb.node.DA3BlkInfo
	}
	return &lb.leaf.DA3BlkInfo
}

// checkSiblings: the blocks of one level, left to right, are a doubly
// linked list ending in 0 on both sides.
func (d *Dir) checkSiblings(p *problems, das []uint64, blocks []*leafBlock) {
	for i, lb := range blocks {
		var back, forw uint64
		if i > 0 {
			back = das[i-1]
		}
		if i+1 < len(blocks) {
			forw = das[i+1]
		}
		in := lb.info()
		if uint64(in.Back) != back || uint64(in.Forw) != forw {
			p.add(KindTree, d.corruptf("block %d: siblings back %d forw %d, want %d and %d", das[i], in.Back, in.Forw, back, forw))
		}
	}
}

// verifyFree checks the free index against the data blocks' longest free
// regions. A free block may be missing only when every data block it
// would describe is a hole; nvalid ends at its last data block.
func (d *Dir) verifyFree(p *problems, bests []uint16) {
	per := uint64(ondisk.DirFreeMaxBests(d.g.DirBlkSize))
	nfree := (uint64(len(bests)) + per - 1) / per
	for i := uint64(0); i < nfree && !p.full(); i++ {
		lo := i * per
		hi := min(lo+per, uint64(len(bests)))
		da := d.freeDA + i*d.fsbPerDirBlk
		buf, daddr, hole, err := d.readDirBlock(da)
		if err != nil {
			p.add(KindBlock, err)
			continue
		}
		if hole {
			for db := lo; db < hi; db++ {
				if bests[db] != ondisk.DirNullDataOff {
					p.add(KindBests, d.corruptf("free block %d is missing, data block %d exists", i, db))
					break
				}
			}
			continue
		}
		f, err := ondisk.DecodeDirFree(buf)
		if err == nil {
			d.noteLSN(f.Hdr.LSN, daddr)
			err = f.Verify(buf, d.g, d.ino, daddr)
		}
		if err != nil {
			p.add(KindBlock, blockErr(ondisk.VerifyCRC(buf, ondisk.Dir3BlkHdrCRCOff), fmt.Errorf("directory %d: free block %d: %w", d.ino, i, err)))
			continue
		}
		if uint64(f.FirstDB) != lo {
			p.add(KindBests, d.corruptf("free block %d: firstdb %d, want %d", i, f.FirstDB, lo))
			continue
		}
		for db := lo; db < hi; db++ {
			got := uint16(ondisk.DirNullDataOff)
			if db-lo < uint64(len(f.Bests)) {
				got = f.Bests[db-lo]
			}
			if got != bests[db] {
				p.add(KindBests, d.corruptf("free block %d: bests for data block %d is %d, the block's longest free region %d", i, db, got, bests[db]))
				break
			}
		}
		if lo+uint64(len(f.Bests)) > hi {
			p.add(KindBests, d.corruptf("free block %d: nvalid %d runs past the last data block %d", i, len(f.Bests), hi-1))
		}
	}
}
