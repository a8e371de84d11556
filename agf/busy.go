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
// under way). An extent is recorded while its transaction holds the AG's
// AGF; another transaction that holds the AGF later knows the first has
// committed or cancelled, and notes the checkpoint count then. A user
// data allocation trims busy space out of the free extents it looks at;
// when that leaves nothing, it forces a checkpoint, which settles every
// other transaction's busy extents of the AG it holds, and tries again.
// Its own transaction's frees it can never use for data.

// busyExtent is one freed range of an AG.
type busyExtent struct {
	bno, len uint32
	owner    weak.Pointer[log.Tx]
	seen     int64 // checkpoint count when a later transaction saw it; -1 before
}

// busyList holds one journal's busy extents by AG, sorted by start.
type busyList struct {
	mu     sync.Mutex
	ags    map[uint32][]busyExtent
	maxLen map[uint32]uint32 // longest extent ever recorded in the AG, bounds searches
	// settled is the checkpoint count at the AG's last settle: settling
	// again before another checkpoint cannot drop anything.
	settled map[uint32]int64
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
	l := &busyList{ags: map[uint32][]busyExtent{}, maxLen: map[uint32]uint32{}, settled: map[uint32]int64{}}
	busyLists[k] = l
	runtime.AddCleanup(j, func(k weak.Pointer[log.Journal]) {
		busyMu.Lock()
		delete(busyLists, k)
		busyMu.Unlock()
	}, k)
	return l
}

// add records [bno, bno+n) of AG agno as freed by owner's transaction.
func (l *busyList) add(agno, bno, n uint32, owner weak.Pointer[log.Tx]) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.ags[agno]
	i := sort.Search(len(s), func(i int) bool { return s[i].bno >= bno })
	s = append(s, busyExtent{})
	copy(s[i+1:], s[i:])
	s[i] = busyExtent{bno: bno, len: n, owner: owner, seen: -1}
	l.ags[agno] = s
	l.maxLen[agno] = max(l.maxLen[agno], n)
}

// settle drops the AG's busy extents of other transactions that are in
// place by checkpoint count ckpts, and dates the ones first seen now. The
// caller holds the AG's AGF, so their transactions have finished.
func (l *busyList) settle(agno uint32, owner weak.Pointer[log.Tx], ckpts int64, all bool) {
	if last, ok := l.settled[agno]; ok && last == ckpts && !all {
		return
	}
	l.settled[agno] = ckpts
	s := l.ags[agno]
	out := s[:0]
	for _, e := range s {
		if e.owner != owner {
			if all {
				continue
			}
			if e.seen < 0 {
				e.seen = ckpts
			}
			if ckpts >= e.seen+2 {
				continue
			}
		}
		out = append(out, e)
	}
	clear(s[len(out):])
	l.ags[agno] = out
	if len(out) == 0 {
		delete(l.ags, agno)
		delete(l.maxLen, agno)
		delete(l.settled, agno)
	}
}

// trim returns the longest part of [bno, bno+n) of AG agno that is not
// busy, and whether the part cut away held this transaction's own (own)
// or only other transactions' (flushable) busy space.
func (l *busyList) trim(agno, bno, n uint32, owner weak.Pointer[log.Tx], ckpts int64) (tbno, tlen uint32, own, flushable bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.ags[agno]
	if len(s) == 0 {
		return bno, n, false, false
	}
	l.settle(agno, owner, ckpts, false)
	s = l.ags[agno]
	end := uint64(bno) + uint64(n)
	lo := uint64(0)
	if ml := uint64(l.maxLen[agno]); uint64(bno) > ml {
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
		if e.owner == owner {
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
func (l *busyList) flushed(agno uint32, owner weak.Pointer[log.Tx]) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settle(agno, owner, 0, true)
}

// hasOther reports whether AG agno has busy extents of other transactions.
func (l *busyList) hasOther(agno uint32, owner weak.Pointer[log.Tx]) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ags[agno] {
		if e.owner != owner {
			return true
		}
	}
	return false
}
