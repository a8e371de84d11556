package convert

import (
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Per-AG metadata reservations (the kernel's xfs_ag_resv, type METADATA):
// at mount the kernel sets aside, in every AG, room for the refcount btree
// (reflink) and the free inode btree (finobt) to grow to their largest,
// less what they already use. Ordinary allocations (file data, BMBT
// blocks) may not dip into it: the AG's longest usable extent and its
// available space both shrink by it, and the free block count the kernel
// reports leaves it out. Allocating as the kernel does, and failing with
// ENOSPC where it does, needs the same numbers.

// btreeCalcSize is xfs_btree_calc_size: the blocks a short-form btree
// needs for records at the given minimum fill of leaves and nodes.
func btreeCalcSize(leafMin, nodeMin, records uint64) uint64 {
	var blocks uint64
	for level, n := 0, records; n > 1; level++ {
		per := leafMin
		if level > 0 {
			per = nodeMin
		}
		n = (n + per - 1) / per
		blocks += n
	}
	return blocks
}

// agReservations computes each AG's reservation from its AGF and AGI.
func (s *Session) agReservations() ([]uint32, error) {
	g, sb := s.g, s.sb
	out := make([]uint32, g.AGCount)
	logAG := ^uint32(0)
	if sb.LogStart != 0 {
		logAG = g.FSBAgno(sb.LogStart)
	}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		agblocks := uint64(g.AGSize(agno))
		if agno == logAG {
			agblocks -= uint64(sb.LogBlocks)
		}
		var ask, used uint64
		if sb.HasReflink() {
			buf, err := s.j.ReadMeta(g.AGFDaddr(agno), g.SectSize)
			if err != nil {
				return nil, err
			}
			agf, err := ondisk.DecodeAGF(buf)
			if err != nil {
				return nil, fmt.Errorf("agf %d: %w", agno, err)
			}
			leaf := uint64(ondisk.RefcountMaxRecs(g.BlockSize, true) / 2)
			node := uint64(ondisk.RefcountMaxRecs(g.BlockSize, false) / 2)
			ask += btreeCalcSize(leaf, node, agblocks)
			used += uint64(agf.RefcountBlocks)
		}
		if sb.HasFinobt() {
			buf, err := s.j.ReadMeta(g.AGIDaddr(agno), g.SectSize)
			if err != nil {
				return nil, err
			}
			agi, err := ondisk.DecodeAGI(buf)
			if err != nil {
				return nil, fmt.Errorf("agi %d: %w", agno, err)
			}
			leaf := uint64(ondisk.InobtMaxRecs(g.BlockSize, true) / 2)
			node := uint64(ondisk.InobtMaxRecs(g.BlockSize, false) / 2)
			ask += btreeCalcSize(leaf, node, agblocks*uint64(g.InoPerBlock)/ondisk.InodesPerChunk)
			if sb.HasInobtCnt() {
				used += uint64(agi.FBlocks)
			} else {
				// Without the counters the kernel walks the tree; a
				// finobt is one block until inodes churn a lot.
				used++
			}
		}
		if ask > used {
			out[agno] = uint32(ask - used)
		}
	}
	return out, nil
}

// defaultResBlks is the reserve pool the kernel keeps at mount for
// transactions that must not fail (xfs_default_resblks): 5% of the blocks,
// at most 8192. Ordinary allocations cannot use it.
func (s *Session) defaultResBlks() int64 {
	return min(int64(s.g.DBlocks)/20, 8192)
}
