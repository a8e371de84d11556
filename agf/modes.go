package agf

import (
	"math"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The allocation modes within one AG, after xfs_alloc.c: exact, near a
// target, and best by size, with the small-space and AGFL fallbacks. The
// cursor bookkeeping (which cursors are still searching) follows the
// kernel's, so that the same free space gives the same answer.

const nullAG = ondisk.NullAGBlock

// acur is a search cursor; active means it still searches (a lookup found
// something and no check has ruled out its direction).
type acur struct {
	c      *btree.Cursor
	bnobt  bool
	active bool
}

func (ag *txAG) lookup(t *btree.Tree, bno, n uint32, mode btree.LookupMode) (*acur, error) {
	c := t.NewCursor()
	ok, err := c.Lookup(Key(bno, n), mode)
	return &acur{c: c, bnobt: t == ag.bno, active: ok}, err
}

// relookup moves an existing cursor, setting active from the result as the
// kernel's xfs_alloc_lookup_* do.
func (cur *acur) relookup(bno, n uint32, mode btree.LookupMode) error {
	ok, err := cur.c.Lookup(Key(bno, n), mode)
	cur.active = ok
	return err
}

func (cur *acur) rec() ondisk.AllocRec { return ondisk.DecodeAllocRec(cur.c.Rec()) }

// search is one allocation's state in one AG (struct xfs_alloc_cur).
type search struct {
	ag     *txAG
	args   *allocArgs
	curLen uint32 // cntbt search length
	recBno uint32 // best candidate: the free extent ...
	recLen uint32
	bno    uint32 // ... and the part of it to allocate
	len    uint32
	diff   uint32 // distance from the target; MaxUint32 before any
	// busy: a candidate lost space to busy extents; flushable: some of
	// that was other transactions' (a checkpoint would free it).
	busy      bool
	flushable bool
}

func (ag *txAG) newSearch(args *allocArgs) *search {
	return &search{ag: ag, args: args, curLen: args.maxlen, diff: math.MaxUint32}
}

// computeAligned trims busy space (for file data) and applies the
// alignment to a free extent (xfs_alloc_compute_aligned).
func (s *search) computeAligned(bno, n uint32) (uint32, uint32) {
	ag, args := s.ag, s.args
	if args.userdata {
		tb, tl, own, flushable := ag.a.busy.trim(ag.agno, bno, n, ag.a.owner, ag.a.ckpts)
		if own || flushable {
			s.busy = true
			s.flushable = s.flushable || flushable
		}
		bno, n = tb, tl
	}
	if args.align > 1 && n >= args.minlen {
		aligned := roundUp(uint64(bno), uint64(args.align))
		diff := aligned - uint64(bno)
		if diff >= uint64(n) {
			return uint32(min(aligned, math.MaxUint32)), 0
		}
		return uint32(aligned), n - uint32(diff)
	}
	return bno, n
}

func roundUp(v, a uint64) uint64 { return (v + a - 1) / a * a }

func absDiff(a, b uint64) uint64 {
	if a < b {
		return b - a
	}
	return a - b
}

// computeDiff picks where in the free extent [freebno, freebno+freelen) to
// put wantlen blocks for a target of wantbno, and how far that is
// (xfs_alloc_compute_diff): the start of an extent past the target (or,
// for file data, of one wholly before it, leaving room to grow), the
// target itself when the extent covers it, else the extent's end.
func computeDiff(wantbno, wantlen, align uint32, userdata bool, freebno, freelen uint32) (uint32, uint32) {
	const null = math.MaxUint64
	fb, fe := uint64(freebno), uint64(freebno)+uint64(freelen)
	wb, we := uint64(wantbno), uint64(wantbno)+uint64(wantlen)
	al := uint64(max(align, 1))
	var nb uint64
	switch {
	case fb >= wb || (userdata && fe < we):
		if nb = roundUp(fb, al); nb >= fe {
			nb = null
		}
	case fe >= we && al > 1:
		nb1 := roundUp(wb, al)
		nb2 := uint64(null)
		if nb1 >= al && nb1-al >= fb {
			nb2 = nb1 - al
		}
		var l1, l2 uint64
		if nb1 >= fe {
			nb1 = null
		} else {
			l1 = min(uint64(wantlen), fe-nb1)
		}
		if nb2 != null {
			l2 = min(uint64(wantlen), fe-nb2)
		}
		switch {
		case nb1 != null && nb2 != null:
			if l1 < l2 || (l1 == l2 && absDiff(nb1, wb) > absDiff(nb2, wb)) {
				nb1 = nb2
			}
		case nb2 != null:
			nb1 = nb2
		}
		nb = nb1
	case fe >= we:
		nb = wb
	case al > 1:
		nb = roundUp(fe-uint64(wantlen), al)
		if nb > fe-uint64(wantlen) && nb >= al && nb-al >= fb {
			nb -= al
		} else if nb >= fe {
			nb = null
		}
	default:
		nb = fe - uint64(wantlen)
	}
	if nb == null {
		return 0, nullAG
	}
	return uint32(absDiff(nb, wb)), uint32(nb)
}

// check weighs the record under cur as a candidate and keeps it if it is
// at least as long as the best so far and no farther from the target
// (xfs_alloc_cur_check). It retires cursors that cannot do better.
func (s *search) check(cur *acur) bool {
	args := s.args
	r := cur.rec()
	if r.BlockCount < args.minlen {
		if !cur.bnobt {
			cur.active = false // walking down the sizes: all smaller now
		}
		return false
	}
	bnoa, lena := s.computeAligned(r.StartBlock, r.BlockCount)
	if lena < args.minlen {
		return false
	}
	n := min(lena, args.maxlen)
	if n < s.len {
		return false
	}
	diff, bnew := computeDiff(args.agbno, n, args.align, args.userdata, bnoa, lena)
	if bnew == nullAG || uint64(bnew)+uint64(n) > uint64(bnoa)+uint64(lena) {
		return false
	}
	if diff > s.diff {
		if cur.bnobt {
			cur.active = false // farther from the target from here on
		}
		return false
	}
	s.recBno, s.recLen, s.bno, s.len, s.diff = r.StartBlock, r.BlockCount, bnew, n, diff
	if s.diff == 0 && s.len == args.maxlen {
		cur.active = false
	}
	return true
}

// walk checks records stepping one way from cur, up to count (-1: no
// limit), stopping at the first new candidate when findOne
// (xfs_alloc_walk_iter).
func (s *search) walk(cur *acur, inc, findOne bool, count int) (bool, error) {
	found := false
	for cur.active && count != 0 {
		if s.check(cur) {
			found = true
			if findOne {
				break
			}
		}
		if !cur.active {
			break
		}
		var ok bool
		var err error
		if inc {
			ok, err = cur.c.Next()
		} else {
			ok, err = cur.c.Prev()
		}
		if err != nil {
			return false, err
		}
		if !ok {
			cur.active = false
		}
		if count > 0 {
			count--
		}
	}
	return found, nil
}

// cntIter looks up the extent of the current search length closest to the
// target, and its neighbour below when that is as long, then grows the
// search length: by one until something was found, else by doubling
// (xfs_alloc_cntbt_iter).
func (s *search) cntIter(cnt *acur) error {
	if !cnt.active {
		return nil
	}
	args := s.args
	curLen := s.curLen
	if err := cnt.relookup(args.agbno, curLen, btree.GE); err != nil || !cnt.active {
		return err
	}
	r := cnt.rec()
	s.check(cnt)
	s.curLen = r.BlockCount
	if r.StartBlock > args.agbno {
		ok, err := cnt.c.Prev()
		if err != nil {
			return err
		}
		if ok && cnt.rec().BlockCount == s.curLen {
			s.check(cnt)
		}
	}
	doubled := uint64(curLen) << 1
	if s.len == 0 || uint64(s.curLen) >= doubled {
		s.curLen++
	} else {
		s.curLen = uint32(min(doubled, math.MaxUint32))
	}
	return nil
}

// isLastLeaf reports whether the cursor's leaf is the last of its tree.
func (ag *txAG) isLastLeaf(c *btree.Cursor) (bool, error) {
	buf, _, err := c.Tree().Store.ReadBlock(c.Ptr())
	if err != nil {
		return false, err
	}
	h, err := ondisk.DecodeBtreeBlock(buf, false)
	if err != nil {
		return false, err
	}
	return h.RightSib == ondisk.NullFSBlock, nil
}

// toLeafStart moves the cursor to the first record of its leaf.
func (ag *txAG) toLeafStart(cur *acur) error {
	buf, _, err := cur.c.Tree().Store.ReadBlock(cur.c.Ptr())
	if err != nil {
		return err
	}
	first := ondisk.DecodeAllocRec(buf[btree.HeaderSize(cur.c.Tree().Ops):])
	_, err = cur.c.Lookup(Key(first.StartBlock, first.BlockCount), btree.GE)
	return err
}

// lastBlock is the near allocation's first algorithm: when the lookup for
// maxlen landed in the cntbt's last leaf, every extent from there on is a
// candidate; from the leaf's start when the request is for whatever is
// left (small) or aligned (xfs_alloc_ag_vextent_lastblock).
func (s *search) lastBlock(cnt *acur, small bool) (bool, error) {
	if small || s.args.align > 1 {
		if err := s.ag.toLeafStart(cnt); err != nil {
			return false, err
		}
		for cnt.rec().BlockCount < s.args.minlen {
			ok, err := cnt.c.Next()
			if err != nil {
				return false, err
			}
			if !ok {
				return false, nil
			}
		}
	}
	if _, err := s.walk(cnt, true, false, -1); err != nil {
		return false, err
	}
	return s.len != 0, nil
}

// locality is the near allocation's second algorithm: walk the bnobt both
// ways from the target one record at a time while stepping the cntbt
// through growing lengths; the first bnobt hit ends the search after a
// look the other way; with nothing found, take the best from the end of
// the cntbt (xfs_alloc_ag_vextent_locality).
func (s *search) locality(cnt *acur) error {
	args := s.args
	ag := s.ag
	if err := cnt.relookup(args.agbno, s.curLen, btree.GE); err != nil {
		return err
	}
	lt, err := ag.lookup(ag.bno, args.agbno, 0, btree.LE)
	if err != nil {
		return err
	}
	gt, err := ag.lookup(ag.bno, args.agbno, 0, btree.GE)
	if err != nil {
		return err
	}
	var fb *acur
	var fbInc bool
	for lt.active || gt.active || cnt.active {
		found, err := s.walk(lt, false, true, 1)
		if err != nil {
			return err
		}
		if found {
			fb, fbInc = gt, true
			break
		}
		if found, err = s.walk(gt, true, true, 1); err != nil {
			return err
		}
		if found {
			fb, fbInc = lt, false
			break
		}
		if err := s.cntIter(cnt); err != nil {
			return err
		}
		if !cnt.active {
			break
		}
	}
	if !cnt.active && s.len == 0 && !s.busy {
		// The cntbt ran off its end: step back onto its last record.
		ok, err := cnt.c.Last()
		if err != nil {
			return err
		}
		if ok {
			cnt.active = true
			fb, fbInc = cnt, false
		}
	}
	if fb != nil {
		if _, err := s.walk(fb, fbInc, true, -1); err != nil {
			return err
		}
	}
	return nil
}

// allocNear allocates as close to args.agbno as the free space allows
// (xfs_alloc_ag_vextent_near).
func (ag *txAG) allocNear(args *allocArgs) (allocResult, bool, error) {
	flushed := false
	for {
		s := ag.newSearch(args)
		cnt, err := ag.lookup(ag.cnt, 0, args.maxlen, btree.GE)
		if err != nil {
			return allocResult{}, false, err
		}
		small := false
		if !cnt.active {
			// Nothing as long as maxlen: the longest extent left
			// will do if it reaches minlen; an empty tree leaves
			// the AGFL (xfs_alloc_ag_vextent_small).
			ok, err := cnt.c.Last()
			if err != nil {
				return allocResult{}, false, err
			}
			if !ok {
				return ag.allocFromAGFL(args)
			}
			if cnt.rec().BlockCount < args.minlen {
				return allocResult{}, false, nil
			}
			small = true
		}
		last, err := ag.isLastLeaf(cnt.c)
		if err != nil {
			return allocResult{}, false, err
		}
		done := false
		if last {
			if done, err = s.lastBlock(cnt, small); err != nil {
				return allocResult{}, false, err
			}
		}
		if !done {
			if err := s.locality(cnt); err != nil {
				return allocResult{}, false, err
			}
		}
		if s.len == 0 {
			if s.flushable && !flushed {
				if err := ag.a.flushBusy(ag.agno); err != nil {
					return allocResult{}, false, err
				}
				flushed = true
				continue
			}
			return allocResult{}, false, nil
		}
		if err := ag.fixupTrees(s.recBno, s.recLen, s.bno, s.len); err != nil {
			return allocResult{}, false, err
		}
		return allocResult{bno: s.bno, len: s.len}, true, nil
	}
}

// allocSize allocates the best fit by length anywhere in the AG: the
// first extent of at least maxlen (plus alignment slop), else the longest
// there is (xfs_alloc_ag_vextent_size).
func (ag *txAG) allocSize(args *allocArgs) (allocResult, bool, error) {
	flushed := false
	for {
		s := ag.newSearch(args)
		cnt, err := ag.lookup(ag.cnt, 0, args.maxlen+args.align-1, btree.GE)
		if err != nil {
			return allocResult{}, false, err
		}
		var fbno, flen, rbno, rlen uint32
		if cnt.active {
			for {
				r := cnt.rec()
				fbno, flen = r.StartBlock, r.BlockCount
				rbno, rlen = s.computeAligned(fbno, flen)
				if rlen >= args.maxlen {
					break
				}
				ok, err := cnt.c.Next()
				if err != nil {
					return allocResult{}, false, err
				}
				if !ok {
					// Every long enough extent is busy.
					if s.flushable && !flushed {
						break
					}
					// Settle for the best of what is left, from the end.
					if _, err := cnt.c.Last(); err != nil {
						return allocResult{}, false, err
					}
					r := cnt.rec()
					fbno, flen = r.StartBlock, r.BlockCount
					rbno, rlen = s.computeAligned(fbno, flen)
					break
				}
			}
			if rlen < args.maxlen && s.flushable && !flushed {
				if err := ag.a.flushBusy(ag.agno); err != nil {
					return allocResult{}, false, err
				}
				flushed = true
				continue
			}
		} else {
			ok, err := cnt.c.Last()
			if err != nil {
				return allocResult{}, false, err
			}
			if !ok {
				return ag.allocFromAGFL(args)
			}
			r := cnt.rec()
			if r.BlockCount < args.minlen {
				return allocResult{}, false, nil
			}
			fbno, flen = r.StartBlock, r.BlockCount
			rbno, rlen = s.computeAligned(fbno, flen)
		}
		rlen = min(rlen, args.maxlen)
		if rlen < args.maxlen {
			// Look left (shorter extents) for one that aligns better.
			bfbno, bflen, brbno, brlen := fbno, flen, rbno, rlen
			for {
				ok, err := cnt.c.Prev()
				if err != nil {
					return allocResult{}, false, err
				}
				if !ok {
					break
				}
				r := cnt.rec()
				if r.BlockCount < brlen {
					break
				}
				rb, rl := s.computeAligned(r.StartBlock, r.BlockCount)
				rl = min(rl, args.maxlen)
				if rl > brlen {
					bfbno, bflen, brbno, brlen = r.StartBlock, r.BlockCount, rb, rl
					if rl == args.maxlen {
						break
					}
				}
			}
			fbno, flen, rbno, rlen = bfbno, bflen, brbno, brlen
		}
		if rlen < args.minlen {
			if s.flushable && !flushed {
				if err := ag.a.flushBusy(ag.agno); err != nil {
					return allocResult{}, false, err
				}
				flushed = true
				continue
			}
			return allocResult{}, false, nil
		}
		if err := ag.fixupTrees(fbno, flen, rbno, rlen); err != nil {
			return allocResult{}, false, err
		}
		return allocResult{bno: rbno, len: rlen}, true, nil
	}
}

// allocExact allocates at args.agbno or not at all
// (xfs_alloc_ag_vextent_exact): the free extent at or before the target
// must cover at least minlen blocks from it.
func (ag *txAG) allocExact(args *allocArgs) (allocResult, bool, error) {
	cur, err := ag.lookup(ag.bno, args.agbno, args.minlen, btree.LE)
	if err != nil || !cur.active {
		return allocResult{}, false, err
	}
	r := cur.rec()
	tbno, tlen := r.StartBlock, r.BlockCount
	if args.userdata {
		tbno, tlen, _, _ = ag.a.busy.trim(ag.agno, tbno, tlen, ag.a.owner, ag.a.ckpts)
	}
	if tbno > args.agbno || tlen < args.minlen {
		return allocResult{}, false, nil
	}
	tend := uint64(tbno) + uint64(tlen)
	if tend < uint64(args.agbno)+uint64(args.minlen) {
		return allocResult{}, false, nil
	}
	n := uint32(min(tend, uint64(args.agbno)+uint64(args.maxlen)) - uint64(args.agbno))
	if err := ag.fixupTrees(r.StartBlock, r.BlockCount, args.agbno, n); err != nil {
		return allocResult{}, false, err
	}
	return allocResult{bno: args.agbno, len: n}, true, nil
}

// allocFromAGFL takes one block off the AGFL when the trees are empty and
// one unaligned block will do (the end of xfs_alloc_ag_vextent_small).
func (ag *txAG) allocFromAGFL(args *allocArgs) (allocResult, bool, error) {
	f := ag.agf
	if args.minlen != 1 || args.align != 1 || args.agfl || f.FLCount <= args.minleft {
		return allocResult{}, false, nil
	}
	if args.userdata {
		fl, err := ag.agflBlocks()
		if err != nil {
			return allocResult{}, false, err
		}
		_, n, own, flushable := ag.a.busy.trim(ag.agno, fl[0], 1, ag.a.owner, ag.a.ckpts)
		if n == 0 {
			if own || !flushable {
				return allocResult{}, false, nil
			}
			if err := ag.a.flushBusy(ag.agno); err != nil {
				return allocResult{}, false, err
			}
		}
	}
	bno, err := ag.popAGFL(false)
	if err != nil {
		return allocResult{}, false, err
	}
	return allocResult{bno: bno, len: 1, fromFL: true}, true, nil
}
