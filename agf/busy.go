package agf

import (
	"runtime"
	"sort"
	"sync"
	"weak"

	"github.com/xfsimg/xfsimg/log"
)

// Busy extents (the kernel's xfs_extent_busy): space freed by a transaction
// whose checkpoint is not yet in place. Such space may be reused for
// metadata at once (the new owner's buffer is logged, and the freed
// btree block's buffer was invalidated), but not for file data: file data
// is written straight to the device before the checkpoint that maps it,
// and a crash before the freeing checkpoint reached the disk would bring
// back the old owner on top of the new data.
//
// The journal writes a checkpoint, flushes it and writes it in place before
// the next one starts, so a free is in place once two checkpoints have
// completed after its transaction committed (one may already have been
// under way). A transaction's extents are recorded while it holds the AG's
// AGF; the next transaction to lock that AGF knows the first has committed
// or cancelled, and dates all of the first's extents with the checkpoint
// count then. A user data allocation trims busy space out of the free
// extents it looks at; when that leaves nothing, it forces a checkpoint,
// which settles every other transaction's busy extents of the AG it holds,
// and tries again. Its own transaction's frees it can never use for data.

type txRef = weak.Pointer[log.Tx]

// busyExtent is one freed range of an AG.
type busyExtent struct {
	bno, len uint32
	owner    txRef
}

// busyAG is one AG's busy extents, sorted by start, and when each owning
// transaction was first seen finished (checkpoint count; -1: not yet).
type busyAG struct {
	exts    []busyExtent
	owners  map[txRef]int64
	undated []txRef // owners not yet seen finished
	maxLen  uint32  // longest extent recorded, bounds overlap searches
	pruned  int64   // checkpoint count at the last prune
}

// busyList holds one journal's busy extents.
type busyList struct {
	mu  sync.Mutex
	ags map[uint32]*busyAG
}

var (
	busyMu    sync.Mutex
	busyLists = map[weak.Pointer[log.Journal]]*busyList{}
)

// busyFor returns the journal's busy list; it goes when the journal does.
func busyFor(j *log.Journal) *busyList {
	k := weak.Make(j)
	busyMu.Lock()
	defer busyMu.Unlock()
	if l := busyLists[k]; l != nil {
		return l
	}
	l := &busyList{ags: map[uint32]*busyAG{}}
	busyLists[k] = l
	runtime.AddCleanup(j, func(k weak.Pointer[log.Journal]) {
		busyMu.Lock()
		delete(busyLists, k)
		busyMu.Unlock()
	}, k)
	return l
}

// add records [bno, bno+n) of AG agno as freed by owner's transaction,
// which holds the AG's AGF.
func (l *busyList) add(agno, bno, n uint32, owner txRef) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ags[agno]
	if b == nil {
		b = &busyAG{owners: map[txRef]int64{}, pruned: -1}
		l.ags[agno] = b
	}
	s := b.exts
	i := sort.Search(len(s), func(i int) bool { return s[i].bno >= bno })
	s = append(s, busyExtent{})
	copy(s[i+1:], s[i:])
	s[i] = busyExtent{bno: bno, len: n, owner: owner}
	b.exts = s
	b.maxLen = max(b.maxLen, n)
	if _, ok := b.owners[owner]; !ok {
		b.owners[owner] = -1
		b.undated = append(b.undated, owner)
	}
}

// settle dates the other transactions' extents of the AG (the caller
// holds its AGF, so they have finished) and drops those in place by
// checkpoint count ckpts, or all of them when flushed. Caller holds l.mu.
func (l *busyList) settle(agno uint32, me txRef, ckpts int64, flushed bool) *busyAG {
	b := l.ags[agno]
	if b == nil {
		return nil
	}
	keep := b.undated[:0]
	for _, o := range b.undated {
		if o == me {
			keep = append(keep, o)
			continue
		}
		b.owners[o] = ckpts
	}
	clear(b.undated[len(keep):])
	b.undated = keep
	// Owners dated just now cannot expire yet, and the others were
	// looked at when the count last changed.
	if flushed || b.pruned != ckpts {
		b.pruned = ckpts
		gone := func(o txRef) bool {
			seen := b.owners[o]
			return o != me && seen >= 0 && (flushed || ckpts >= seen+2)
		}
		any := false
		for o := range b.owners {
			if gone(o) {
				any = true
				break
			}
		}
		if any {
			out := b.exts[:0]
			for _, e := range b.exts {
				if !gone(e.owner) {
					out = append(out, e)
				}
			}
			clear(b.exts[len(out):])
			b.exts = out
			for o := range b.owners {
				if gone(o) {
					delete(b.owners, o)
				}
			}
		}
	}
	if len(b.exts) == 0 {
		delete(l.ags, agno)
		return nil
	}
	return b
}

// observe is called when a transaction locks AG agno's AGF.
func (l *busyList) observe(agno uint32, me txRef, ckpts int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settle(agno, me, ckpts, false)
}

// trim returns the longest part of [bno, bno+n) of AG agno that is not
// busy, and whether the part cut away held this transaction's own (own)
// or other transactions' (flushable) busy space.
func (l *busyList) trim(agno, bno, n uint32, me txRef, ckpts int64) (tbno, tlen uint32, own, flushable bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.settle(agno, me, ckpts, false)
	if b == nil {
		return bno, n, false, false
	}
	s := b.exts
	end := uint64(bno) + uint64(n)
	lo := uint64(0)
	if ml := uint64(b.maxLen); uint64(bno) > ml {
		lo = uint64(bno) - ml
	}
	i := sort.Search(len(s), func(i int) bool { return uint64(s[i].bno) >= lo })
	// Walk the busy extents that can overlap, in start order, keeping
	// the longest gap between them.
	cur := uint64(bno)
	bestStart, bestLen := uint64(bno), uint64(0)
	hit := false
	for ; i < len(s) && uint64(s[i].bno) < end; i++ {
		e := s[i]
		eend := uint64(e.bno) + uint64(e.len)
		if eend <= uint64(bno) {
			continue
		}
		hit = true
		if e.owner == me {
			own = true
		} else {
			flushable = true
		}
		if g := uint64(e.bno); g > cur && g-cur > bestLen {
			bestStart, bestLen = cur, g-cur
		}
		cur = max(cur, eend)
	}
	if !hit {
		return bno, n, false, false
	}
	if end > cur && end-cur > bestLen {
		bestStart, bestLen = cur, end-cur
	}
	return uint32(bestStart), uint32(bestLen), own, flushable
}

// flushed drops every other transaction's busy extents of AG agno after a
// checkpoint that the caller forced while holding the AG's AGF.
func (l *busyList) flushed(agno uint32, me txRef) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settle(agno, me, 0, true)
}
