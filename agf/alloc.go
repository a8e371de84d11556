package agf

import (
	"errors"
	"fmt"
	"weak"

	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// ErrLockOrder: the transaction already holds the AGF of a higher AG, and
// taking a lower one could deadlock with a transaction that locks them the
// other way round. The kernel never does it; free such space in a new
// transaction, or free in increasing AG order before allocating.
var ErrLockOrder = errors.New("AG below one this transaction already holds")

// Request is one allocation (xfs_alloc_arg).
type Request struct {
	Target   uint64 // AG-encoded fsb near which to allocate (the inode's block, or the end of the previous extent)
	MinLen   uint32 // fewest blocks acceptable (>= 1)
	MaxLen   uint32 // most blocks wanted (capped at ondisk.MaxExtLen and the AG's usable size)
	Align    uint32 // start alignment in blocks (1 = none)
	MinLeft  uint32 // blocks that must stay free in the chosen AG afterwards (for BMBT splits)
	Exact    bool   // only at Target (xfs_alloc_ag_vextent_exact); fail (not error) if not free
	Metadata bool   // a btree block (not counted as user data)
	// SameAG limits the allocation to the target's AG (near Target), as
	// the kernel's xfs_alloc_vextent_near_bno does for a per-AG btree's
	// blocks: a refcount btree block elsewhere would be corruption.
	SameAG bool
}

// Allocator allocates and frees extents in one transaction across AGs,
// locking AGFs in increasing AG number (it skips AGs below the highest it
// already holds, like t_highest_agno). One Allocator serves one
// transaction; it is not safe for concurrent use.
type Allocator struct {
	tx        *log.Tx
	g         *ondisk.Geometry
	ags       map[uint32]*txAG
	highest   int64 // highest AG whose AGF the transaction holds; -1: none
	maxLevels int   // m_alloc_maxlevels
	maxUsable uint32
	busy      *busyList
	owner     weak.Pointer[log.Tx]
	ckpts     int64 // journal checkpoints completed, read at each Alloc
}

// NewAllocator returns an allocator working in tx.
func NewAllocator(tx *log.Tx, g *ondisk.Geometry) *Allocator {
	j := tx.Journal()
	return &Allocator{
		tx:        tx,
		g:         g,
		ags:       map[uint32]*txAG{},
		highest:   -1,
		maxLevels: ondisk.AllocMaxLevels(g),
		maxUsable: MaxUsable(g, j.Superblock()),
		busy:      busyFor(j),
		owner:     weak.Make(tx),
	}
}

// MaxUsable is m_ag_max_usable: the AG less what is never free (the
// header sectors, the AGFL reserve, the btree roots mkfs places), the most
// one allocation can get.
func MaxUsable(g *ondisk.Geometry, sb *ondisk.Superblock) uint32 {
	blocks := uint32((4*g.SectSize + g.BlockSize - 1) / g.BlockSize)
	blocks += 4 // XFS_ALLOCBT_AGFL_RESERVE
	blocks += 3 // bnobt, cntbt, inobt roots
	if sb.HasFinobt() {
		blocks++
	}
	if sb.HasRmapbt() {
		blocks++
	}
	if sb.HasReflink() {
		blocks++
	}
	return g.AGBlocks - blocks
}

// FreeBlocks is the in-core free block count available (the journal's
// counter: committed changes in, open reservations out).
func (a *Allocator) FreeBlocks() int64 { return a.tx.Journal().FreeBlocks() }

// allocArgs is one allocation in one AG.
type allocArgs struct {
	agbno    uint32 // locality target
	minlen   uint32
	maxlen   uint32
	align    uint32
	minleft  uint32
	userdata bool // busy space is cut out of candidates
	agfl     bool // refilling the AGFL (XFS_AG_RESV_AGFL)
}

// allocResult is an extent taken out of one AG's free space.
type allocResult struct {
	bno, len uint32
	fromFL   bool // popped off the AGFL: agf_freeblks does not change
}

// Alloc allocates between MinLen and MaxLen blocks and returns the first
// block and the length. The AG is chosen as the kernel does
// (xfs_alloc_vextent_start_ag): the target's AG first with a near
// allocation (or by size when the target is the AG's block 0), then every
// later AG by size, wrapping round to the lowest AG the transaction may
// still lock; an AG is tried only when its free space can satisfy the
// request (checked on the committed AGF before locking it, and again under
// the lock). When nothing fits the error wraps ondisk.ErrNoSpace. An Exact
// request that cannot be met returns ondisk.NullFSBlock, 0 and no error.
func (a *Allocator) Alloc(req Request) (uint64, uint32, error) {
	g := a.g
	const fail = ondisk.NullFSBlock
	if req.MinLen == 0 || req.MaxLen < req.MinLen {
		return fail, 0, fmt.Errorf("alloc: minlen %d, maxlen %d", req.MinLen, req.MaxLen)
	}
	tagno, tagbno := g.FSBAgno(req.Target), g.FSBAgbno(req.Target)
	if tagno >= g.AGCount || tagbno >= g.AGSize(tagno) {
		return fail, 0, fmt.Errorf("alloc: target block %d is not in the file system", req.Target)
	}
	args := allocArgs{
		agbno:    tagbno,
		minlen:   req.MinLen,
		maxlen:   min(req.MaxLen, ondisk.MaxExtLen, a.maxUsable),
		align:    max(req.Align, 1),
		minleft:  req.MinLeft,
		userdata: !req.Metadata,
	}
	if args.minlen > args.maxlen {
		return fail, 0, fmt.Errorf("alloc of at least %d blocks: an AG has at most %d: %w", req.MinLen, args.maxlen, ondisk.ErrNoSpace)
	}
	a.ckpts = a.tx.Journal().Stats().Checkpoints
	if req.Exact {
		// The kernel allocates exactly with alignment 1 (the caller
		// asked for this block, aligned or not).
		args.align = 1
		if int64(tagno) < a.highest && a.ags[tagno] == nil {
			return fail, 0, nil // its lock would come out of order
		}
		ag, ok, err := a.prepare(tagno, &args)
		if err != nil || !ok {
			return fail, 0, err
		}
		r, ok, err := ag.allocExact(&args)
		if err != nil || !ok {
			return fail, 0, err
		}
		return a.finish(ag, r, &args)
	}
	if req.SameAG {
		if int64(tagno) < a.highest && a.ags[tagno] == nil {
			return fail, 0, fmt.Errorf("alloc in ag %d: %w (AG %d is held)", tagno, ErrLockOrder, a.highest)
		}
		ag, ok, err := a.prepare(tagno, &args)
		if err != nil {
			return fail, 0, err
		}
		var r allocResult
		if ok {
			r, ok, err = ag.allocNear(&args)
			if err != nil {
				return fail, 0, err
			}
		}
		if !ok {
			return fail, 0, fmt.Errorf("alloc of %d..%d blocks in ag %d: %w", args.minlen, args.maxlen, tagno, ondisk.ErrNoSpace)
		}
		return a.finish(ag, r, &args)
	}
	start := uint32(max(int64(tagno), a.highest))
	low := uint32(max(a.highest, 0))
	for i := uint32(0); i < g.AGCount; i++ {
		agno := start + i
		if agno >= g.AGCount {
			agno = low + (agno - g.AGCount)
			if agno >= start {
				break
			}
		}
		if int64(agno) < a.highest && a.ags[agno] == nil {
			// An AG tried earlier in this loop is held (it could not
			// take the request): the lower ones are out of reach now.
			continue
		}
		aa := args
		ag, ok, err := a.prepare(agno, &aa)
		if err != nil {
			return fail, 0, err
		}
		if !ok {
			continue
		}
		var r allocResult
		if agno == tagno && tagbno != 0 {
			r, ok, err = ag.allocNear(&aa)
		} else {
			r, ok, err = ag.allocSize(&aa)
		}
		if err != nil {
			return fail, 0, err
		}
		if ok {
			return a.finish(ag, r, &aa)
		}
		// The kernel stops at the first AG that passed the checks; going
		// on costs nothing here and finds space the checks could not
		// see was unusable (alignment, busy extents).
	}
	return fail, 0, fmt.Errorf("alloc of %d..%d blocks near block %d: %w", args.minlen, args.maxlen, req.Target, ondisk.ErrNoSpace)
}

// finish charges an allocation to the AGF and the superblock counter.
func (a *Allocator) finish(ag *txAG, r allocResult, args *allocArgs) (uint64, uint32, error) {
	if r.len < args.minlen || r.len > args.maxlen || r.bno%args.align != 0 {
		return ondisk.NullFSBlock, 0, fmt.Errorf("ag %d: allocated [%d, %d] outside the request (minlen %d, maxlen %d, align %d)",
			ag.agno, r.bno, r.len, args.minlen, args.maxlen, args.align)
	}
	if !r.fromFL {
		if ag.agf.FreeBlks < r.len {
			return ondisk.NullFSBlock, 0, ondisk.Corruptf("agf %d: freeblks %d below allocation of %d", ag.agno, ag.agf.FreeBlks, r.len)
		}
		ag.agf.FreeBlks -= r.len
		ag.logAGF()
	}
	a.tx.ModCounters(-int64(r.len), 0, 0)
	return a.g.FSB(ag.agno, r.bno), r.len, nil
}

// Free returns [fsb, fsb+length) to its AG's free space, merged with free
// neighbours, and to the superblock's free counter. The space must be
// allocated, inside one AG's data blocks and not on the AGFL; its AG must
// not be below one the transaction already holds (ErrLockOrder). The
// blocks stay busy for file data until the transaction's checkpoint is in
// place.
func (a *Allocator) Free(fsb uint64, length uint32) error {
	g := a.g
	agno, agbno := g.FSBAgno(fsb), g.FSBAgbno(fsb)
	if length == 0 || agno >= g.AGCount || uint64(agbno)+uint64(length) > uint64(g.AGSize(agno)) ||
		agbno <= ondisk.AGFLBlock(g) {
		return fmt.Errorf("free of %d blocks at %d: not inside one AG's data blocks", length, fsb)
	}
	ag, err := a.lockAG(agno)
	if err != nil {
		return fmt.Errorf("free of %d blocks at %d: %w", length, fsb, err)
	}
	if err := a.fixFreelist(ag, true); err != nil {
		return err
	}
	fl, err := ag.agflBlocks()
	if err != nil {
		return err
	}
	for _, b := range fl {
		if b >= agbno && b-agbno < length {
			return ondisk.Corruptf("ag %d: free of [%d, %d] covers AGFL block %d", agno, agbno, length, b)
		}
	}
	if err := ag.freeExtent(agbno, length); err != nil {
		return err
	}
	ag.agf.FreeBlks += length
	ag.logAGF()
	a.tx.ModCounters(int64(length), 0, 0)
	a.busy.add(agno, agbno, length, a.owner)
	return nil
}

// peekAGF reads AG agno's AGF as committed, without locking it: the
// kernel's in-core pagf copy, good enough to skip an AG that cannot help.
func (a *Allocator) peekAGF(agno uint32) *ondisk.AGF {
	buf, err := a.tx.ReadMeta(a.g.AGFDaddr(agno), a.g.SectSize)
	if err != nil {
		return nil
	}
	f, err := ondisk.DecodeAGF(buf)
	if err != nil || f.MagicNum != ondisk.AGFMagic {
		return nil
	}
	return f
}

// minFreelist is how many blocks the AGFL must hold before an allocation
// (xfs_alloc_min_freelist): a split of every level of both trees, twice,
// less the root that cannot split twice.
func (a *Allocator) minFreelist(f *ondisk.AGF) uint32 {
	ml := uint32(a.maxLevels)
	return min(f.BnoLevel+1, ml)*2 - 2 + min(f.CntLevel+1, ml)*2 - 2
}

// longestFree is the longest extent an allocation can count on once the
// AGFL has been refilled (xfs_alloc_longest_free_extent, no reservations).
func (a *Allocator) longestFree(f *ondisk.AGF, need uint32) uint32 {
	var delta uint32
	if need > f.FLCount {
		delta = need - f.FLCount
	}
	if f.Longest > delta {
		return min(a.maxUsable, f.Longest-delta)
	}
	if f.FLCount > 0 || f.Longest > 0 {
		return 1
	}
	return 0
}

// spaceAvailable decides whether the AG can take the allocation
// (xfs_alloc_space_available) and, unless only checking, clamps maxlen to
// what it can give.
func (a *Allocator) spaceAvailable(f *ondisk.AGF, need uint32, args *allocArgs, check bool) bool {
	allocLen := int64(args.minlen) + int64(args.align) - 1
	if int64(a.longestFree(f, need)) < allocLen {
		return false
	}
	avail := int64(f.FreeBlks) + int64(min(f.FLCount, need)) - int64(need) - int64(args.minleft)
	if avail < allocLen {
		return false
	}
	if avail < int64(args.maxlen) && !check {
		args.maxlen = uint32(avail)
	}
	return true
}

// prepare picks AG agno for an allocation if it can take it, and brings
// its AGFL to the size the allocation may need (xfs_alloc_fix_freelist).
// An AG that was locked and then found wanting stays locked until the
// transaction ends, as an AGF the kernel dirtied would.
func (a *Allocator) prepare(agno uint32, args *allocArgs) (*txAG, bool, error) {
	if a.ags[agno] == nil {
		if f := a.peekAGF(agno); f != nil && !a.spaceAvailable(f, a.minFreelist(f), args, true) {
			return nil, false, nil
		}
	}
	ag, err := a.lockAG(agno)
	if err != nil {
		return nil, false, err
	}
	if !a.spaceAvailable(ag.agf, a.minFreelist(ag.agf), args, false) {
		return ag, false, nil
	}
	if err := a.fixFreelist(ag, false); err != nil {
		if errors.Is(err, errAGFLShort) {
			return ag, false, nil
		}
		return nil, false, err
	}
	return ag, true, nil
}

var errAGFLShort = errors.New("AGFL cannot be refilled")

// fixFreelist shrinks an AGFL longer than needed, freeing the surplus from
// flfirst into the trees, and refills a short one with blocks allocated by
// size and pushed at fllast. Blocks moving between free space and the
// AGFL stay in the superblock's free count. When freeing, a refill that
// runs out of space is not an error (the free adds space).
func (a *Allocator) fixFreelist(ag *txAG, freeing bool) error {
	f := ag.agf
	need := a.minFreelist(f)
	for f.FLCount > need {
		bno, err := ag.popAGFL(false)
		if err != nil {
			return err
		}
		if err := ag.freeExtent(bno, 1); err != nil {
			return err
		}
		f.FreeBlks++
		ag.logAGF()
		a.busy.add(ag.agno, bno, 1, a.owner)
	}
	for f.FLCount < need {
		targs := allocArgs{minlen: 1, maxlen: need - f.FLCount, align: 1, agfl: true}
		r, ok, err := ag.allocSize(&targs)
		if err != nil {
			return err
		}
		if !ok {
			if freeing {
				break
			}
			return fmt.Errorf("ag %d: %w (%d of %d blocks)", ag.agno, errAGFLShort, f.FLCount, need)
		}
		f.FreeBlks -= r.len
		ag.logAGF()
		for b := r.bno; b < r.bno+r.len; b++ {
			if err := ag.pushAGFL(b, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushBusy forces a checkpoint so that other transactions' frees in AG
// agno are in place and their space may take file data.
func (a *Allocator) flushBusy(agno uint32) error {
	if err := a.tx.Journal().Checkpoint(); err != nil {
		return err
	}
	a.busy.flushed(agno, a.owner)
	a.ckpts = a.tx.Journal().Stats().Checkpoints
	return nil
}
