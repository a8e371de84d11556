package agf

// Request is one allocation (xfs_alloc_arg), as alloc-design.md fixes it.
//
// Placeholder on the mapping branch so that bmbt and convert compile
// against the agreed type before the allocator lands; the alloc branch
// owns the real definition and this file goes when it is merged.
type Request struct {
	Target   uint64 // AG-encoded fsb near which to allocate (the inode's block, or the end of the previous extent)
	MinLen   uint32 // fewest blocks acceptable (>= 1)
	MaxLen   uint32 // most blocks wanted (capped at ondisk.MaxExtLen and the AG's usable size)
	Align    uint32 // start alignment in blocks (1 = none)
	MinLeft  uint32 // blocks that must stay free in the chosen AG afterwards (for BMBT splits)
	Exact    bool   // only at Target (xfs_alloc_ag_vextent_exact); fail (not error) if not free
	Metadata bool   // a btree block (not counted as user data)
}
