package agf

import (
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Record-level changes of the two free-space trees. Both always describe
// the same extents; the bnobt keyed by start, the cntbt by (length,
// start). Every change goes through the one btree engine.

// lookupEq positions a cursor on the record [bno, n] of t; missing is
// corruption (the other tree or the AGF promised it).
func (ag *txAG) lookupEq(t *btree.Tree, bno, n uint32) (*btree.Cursor, error) {
	c := t.NewCursor()
	ok, err := c.Lookup(Key(bno, n), btree.EQ)
	if err != nil {
		return nil, err
	}
	if !ok || ondisk.DecodeAllocRec(c.Rec()) != (ondisk.AllocRec{StartBlock: bno, BlockCount: n}) {
		return nil, ondisk.Corruptf("%v: no record [%d, %d]", t, bno, n)
	}
	return c, nil
}

func (ag *txAG) deleteRec(t *btree.Tree, bno, n uint32) error {
	c, err := ag.lookupEq(t, bno, n)
	if err != nil {
		return err
	}
	return c.Delete()
}

func (ag *txAG) insertRec(t *btree.Tree, bno, n uint32) error {
	rec := make([]byte, ondisk.AllocRecSize)
	ondisk.AllocRec{StartBlock: bno, BlockCount: n}.Encode(rec)
	if err := t.NewCursor().Insert(rec); err != nil {
		return ondisk.Corruptf("%v: insert [%d, %d]: %v", t, bno, n, err)
	}
	return nil
}

// updateRec replaces the bnobt record [bno, n] by [nbno, nn]; the start
// may move only within the record's place in the order.
func (ag *txAG) updateRec(t *btree.Tree, bno, n, nbno, nn uint32) error {
	c, err := ag.lookupEq(t, bno, n)
	if err != nil {
		return err
	}
	rec := make([]byte, ondisk.AllocRecSize)
	ondisk.AllocRec{StartBlock: nbno, BlockCount: nn}.Encode(rec)
	return c.Update(rec)
}

// fixupTrees removes [rbno, rbno+rlen) from the free extent [fbno,
// fbno+flen) that contains it (xfs_alloc_fixup_trees): nothing left, one
// piece left at either end, or two pieces around it. The cntbt deletes the
// old record and inserts the pieces (its key changes); the bnobt updates in
// place and inserts the second piece.
func (ag *txAG) fixupTrees(fbno, flen, rbno, rlen uint32) error {
	if rlen == 0 || rbno < fbno || uint64(rbno)+uint64(rlen) > uint64(fbno)+uint64(flen) {
		return ondisk.Corruptf("ag %d: allocation [%d, %d] outside free extent [%d, %d]", ag.agno, rbno, rlen, fbno, flen)
	}
	const none = ondisk.NullAGBlock
	nb1, nl1, nb2, nl2 := uint32(none), uint32(0), uint32(none), uint32(0)
	switch fend, rend := fbno+flen, rbno+rlen; {
	case rbno == fbno && rlen == flen:
	case rbno == fbno:
		nb1, nl1 = rend, flen-rlen
	case rend == fend:
		nb1, nl1 = fbno, flen-rlen
	default:
		nb1, nl1 = fbno, rbno-fbno
		nb2, nl2 = rend, fend-rend
	}
	if err := ag.deleteRec(ag.cnt, fbno, flen); err != nil {
		return err
	}
	if nb1 != none {
		if err := ag.insertRec(ag.cnt, nb1, nl1); err != nil {
			return err
		}
	}
	if nb2 != none {
		if err := ag.insertRec(ag.cnt, nb2, nl2); err != nil {
			return err
		}
	}
	if nb1 == none {
		if err := ag.deleteRec(ag.bno, fbno, flen); err != nil {
			return err
		}
	} else if err := ag.updateRec(ag.bno, fbno, flen, nb1, nl1); err != nil {
		return err
	}
	if nb2 != none {
		if err := ag.insertRec(ag.bno, nb2, nl2); err != nil {
			return err
		}
	}
	return ag.updateLongest()
}

// freeExtent returns [bno, bno+n) to the trees, merging it with free
// neighbours on either side (xfs_free_ag_extent). Freeing space that is
// already free, even partly, is corruption of the caller's bookkeeping.
func (ag *txAG) freeExtent(bno, n uint32) error {
	end := uint64(bno) + uint64(n)
	if n == 0 || bno <= ondisk.AGFLBlock(ag.a.g) || end > uint64(ag.agf.Length) {
		return ondisk.Corruptf("ag %d: free of [%d, %d] outside the AG's data blocks", ag.agno, bno, n)
	}
	c := ag.bno.NewCursor()
	haveLeft, err := c.Lookup(Key(bno, n), btree.LE)
	if err != nil {
		return err
	}
	var left, right ondisk.AllocRec
	if haveLeft {
		left = ondisk.DecodeAllocRec(c.Rec())
		lend := uint64(left.StartBlock) + uint64(left.BlockCount)
		if lend > uint64(bno) {
			return ondisk.Corruptf("ag %d: free of [%d, %d] overlaps free extent [%d, %d]", ag.agno, bno, n, left.StartBlock, left.BlockCount)
		}
		haveLeft = lend == uint64(bno)
		_, err = c.Next()
	} else {
		_, err = c.First()
	}
	if err != nil {
		return err
	}
	haveRight := c.Valid()
	if haveRight {
		right = ondisk.DecodeAllocRec(c.Rec())
		if !haveLeft && right.StartBlock <= bno {
			// First() landed on the extent LE missed only if it
			// starts after bno; anything else is a broken tree.
			return ondisk.Corruptf("ag %d: bnobt out of order at [%d, %d]", ag.agno, right.StartBlock, right.BlockCount)
		}
		if uint64(right.StartBlock) < end {
			return ondisk.Corruptf("ag %d: free of [%d, %d] overlaps free extent [%d, %d]", ag.agno, bno, n, right.StartBlock, right.BlockCount)
		}
		haveRight = uint64(right.StartBlock) == end
	}
	nbno, nlen := bno, uint64(n)
	switch {
	case haveLeft && haveRight:
		if err := ag.deleteRec(ag.cnt, left.StartBlock, left.BlockCount); err != nil {
			return err
		}
		if err := ag.deleteRec(ag.cnt, right.StartBlock, right.BlockCount); err != nil {
			return err
		}
		if err := ag.deleteRec(ag.bno, right.StartBlock, right.BlockCount); err != nil {
			return err
		}
		nbno, nlen = left.StartBlock, uint64(left.BlockCount)+nlen+uint64(right.BlockCount)
		if err := ag.updateRec(ag.bno, left.StartBlock, left.BlockCount, nbno, uint32(nlen)); err != nil {
			return err
		}
	case haveLeft:
		if err := ag.deleteRec(ag.cnt, left.StartBlock, left.BlockCount); err != nil {
			return err
		}
		nbno, nlen = left.StartBlock, uint64(left.BlockCount)+nlen
		if err := ag.updateRec(ag.bno, left.StartBlock, left.BlockCount, nbno, uint32(nlen)); err != nil {
			return err
		}
	case haveRight:
		if err := ag.deleteRec(ag.cnt, right.StartBlock, right.BlockCount); err != nil {
			return err
		}
		nlen += uint64(right.BlockCount)
		if err := ag.updateRec(ag.bno, right.StartBlock, right.BlockCount, nbno, uint32(nlen)); err != nil {
			return err
		}
	default:
		if err := ag.insertRec(ag.bno, nbno, uint32(nlen)); err != nil {
			return err
		}
	}
	if err := ag.insertRec(ag.cnt, nbno, uint32(nlen)); err != nil {
		return err
	}
	return ag.updateLongest()
}

// updateLongest keeps agf_longest equal to the cntbt's last record, as the
// kernel's cntbt update_lastrec hook does.
func (ag *txAG) updateLongest() error {
	c := ag.cnt.NewCursor()
	ok, err := c.Last()
	if err != nil {
		return err
	}
	var longest uint32
	if ok {
		longest = ondisk.DecodeAllocRec(c.Rec()).BlockCount
	}
	if longest != ag.agf.Longest {
		ag.agf.Longest = longest
		ag.logAGF()
	}
	return nil
}
