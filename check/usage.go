package check

import (
	"fmt"
	"slices"
	"strings"
)

// sweepAG checks that every block of AG agno is either free or used, and
// used once: by one owner, or by as many file forks as the refcount btree
// says share it. Claims are swept in block order; runs of blocks with the
// same verdict become one finding.
func (c *checker) sweepAG(agno uint32, claims []claim) []Finding {
	size := c.g.AGSize(agno)
	res := c.ags[agno]
	slices.SortFunc(claims, func(a, b claim) int {
		if a.start != b.start {
			if a.start < b.start {
				return -1
			}
			return 1
		}
		return int(a.kind) - int(b.kind)
	})
	var out []Finding
	// A run of blocks with the same problem and the same owners.
	type run struct {
		kind, msg  string
		start, end uint32
		exp, found string
	}
	var cur *run
	flush := func() {
		if cur == nil {
			return
		}
		f := finding(cur.kind, "%s", cur.msg).at(int(agno), int64(cur.start))
		f.Blocks = int64(cur.end - cur.start)
		f.Expected, f.Found = cur.exp, cur.found
		out = append(out, f)
		cur = nil
	}
	report := func(kind, msg, exp, found string, start, end uint32) {
		if cur != nil && cur.kind == kind && cur.msg == msg && cur.end == start {
			cur.end = end
			return
		}
		flush()
		cur = &run{kind: kind, msg: msg, start: start, end: end, exp: exp, found: found}
	}
	// Gaps are only meaningful when the free space and the inode chunks
	// were read whole: otherwise every block they would have accounted
	// for shows up.
	gapsMeaningful := res.have.free && res.have.inodes

	var active []claim
	i := 0
	for pos := uint32(0); pos < size; {
		for i < len(claims) && claims[i].start <= pos {
			cl := claims[i]
			i++
			end := min(uint64(cl.start)+uint64(cl.len), uint64(size))
			if uint64(cl.start) >= end || end <= uint64(pos) {
				continue // outside the AG: reported where it was found
			}
			cl.len = uint32(end - uint64(cl.start))
			active = append(active, cl)
		}
		next := size
		if i < len(claims) {
			next = min(next, max(claims[i].start, pos+1))
		}
		for _, a := range active {
			next = min(next, a.start+a.len)
		}
		c.judge(active, pos, next, report, gapsMeaningful)
		pos = next
		active = slices.DeleteFunc(active, func(a claim) bool { return a.start+a.len <= pos })
	}
	flush()
	return out
}

// judge decides about blocks [start, end), all used by the same active
// claims.
func (c *checker) judge(active []claim, start, end uint32, report func(kind, msg, exp, found string, start, end uint32), gaps bool) {
	var free, file, other []claim
	refc := uint64(0)
	for _, a := range active {
		switch {
		case a.kind == ownFree:
			free = append(free, a)
		case a.kind == ownRefcount:
			refc = a.ino
		case a.kind.fileOwned():
			file = append(file, a)
		default:
			other = append(other, a)
		}
	}
	used := len(file) + len(other)
	switch {
	case len(active) == 0 || (used == 0 && len(free) == 0):
		if gaps {
			report(KindUnaccounted, "blocks neither free nor used", "free or used", "neither", start, end)
		}
		if refc > 0 {
			report(KindRefcMismatch, fmt.Sprintf("refcount record says %d owners, no file uses the blocks", refc), fmt.Sprint(refc), "0", start, end)
		}
		return
	case len(free) > 1:
		report(KindBnobtRecord, "free extents overlap each other", "one free extent", fmt.Sprintf("%d", len(free)), start, end)
	case len(free) == 1 && used > 0:
		users := owners(append(other, file...))
		if len(other) == 1 && other[0].kind == ownAGFL && len(file) == 0 {
			report(KindAGFLFree, "AGFL block is also free space", "not free", "in the bnobt", start, end)
		} else {
			report(KindFreeInUse, "free extent covers blocks used by "+users, "free blocks unused", "used by "+users, start, end)
		}
	}
	// Owners: metadata owners never share; file forks share as the
	// refcount btree says.
	switch {
	case len(other) > 1 || (len(other) == 1 && len(file) > 0):
		users := owners(append(other, file...))
		report(KindMultiClaimed, "blocks used by "+users, "one owner", users, start, end)
	case len(file) > 1 && refc == 0:
		users := owners(file)
		report(KindMultiClaimed, "blocks used by "+users+" but not shared in the refcount btree", "one owner", users, start, end)
	case len(file) > 0 && refc > 0 && uint64(len(file)) != refc:
		report(KindRefcMismatch, "reference count is not the number of file forks using the blocks",
			fmt.Sprint(len(file)), fmt.Sprint(refc), start, end)
	case len(file) == 0 && refc > 0:
		report(KindRefcMismatch, "refcount record for blocks no file uses", "0", fmt.Sprint(refc), start, end)
	}
}

// owners names a set of claims for a message.
func owners(cls []claim) string {
	count := map[string]int{}
	var names []string
	for _, c := range cls {
		n := c.owner()
		if count[n] == 0 {
			names = append(names, n)
		}
		count[n]++
	}
	slices.Sort(names)
	for i, n := range names {
		if count[n] > 1 {
			names[i] = fmt.Sprintf("%s (%d times)", n, count[n])
		}
	}
	if len(names) > 4 {
		names = append(names[:4], fmt.Sprintf("and %d more", len(names)-4))
	}
	return strings.Join(names, ", ")
}
