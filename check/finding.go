package check

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity says whether a finding is a problem (the file system is not
// consistent) or information (worth knowing, nothing is wrong).
type Severity string

const (
	Problem Severity = "problem"
	Info    Severity = "info"
)

// Finding kinds: stable machine names, one per invariant. Btree kinds come
// from the btree walk (btree.Kind*), directory kinds from dir.Verify
// (dir.Kind*); both are passed through unchanged.
const (
	// Superblock, log and AG headers.
	KindSBHeader      = "sb-header"        // primary superblock field wrong for the geometry
	KindSBSecondary   = "sb-secondary"     // a secondary superblock disagrees with the primary
	KindSBIcount      = "sb-icount"        // sb_icount is not the number of allocated inodes
	KindSBIfree       = "sb-ifree"         // sb_ifree is not the number of free inodes
	KindSBFdblocks    = "sb-fdblocks"      // sb_fdblocks is not the free block count
	KindLogDirty      = "log-dirty"        // the log holds changes not written in place
	KindLogCorrupt    = "log-corrupt"      // the log head or tail cannot be found
	KindLSNAhead      = "lsn-ahead"        // a metadata LSN newer than the log head
	KindCRC           = "crc"              // a block or inode does not match its CRC
	KindRead          = "read"             // a read failed
	KindAGFHeader     = "agf-header"       // AGF magic, version, identity, roots or levels wrong
	KindAGFFreeblks   = "agf-freeblks"     // agf_freeblks is not the free blocks in the bnobt
	KindAGFLongest    = "agf-longest"      // agf_longest is not the longest free extent
	KindAGFBtreeblks  = "agf-btreeblks"    // agf_btreeblks is not the non-root free-space (and rmap) btree blocks
	KindAGFFlcount    = "agf-flcount"      // agf_flcount does not match the AGFL ring
	KindAGFRmapblocks = "agf-rmapblocks"   // agf_rmapblocks is not the rmapbt's size
	KindAGFRefcblocks = "agf-refcntblocks" // agf_refcntblocks is not the refcount btree's size
	KindAGFLHeader    = "agfl-header"      // AGFL magic or identity wrong
	KindAGFLEntry     = "agfl-entry"       // an AGFL entry that is not a block of the AG
	KindAGFLFree      = "agfl-free-block"  // an AGFL block also in the free-space btrees
	KindAGIHeader     = "agi-header"       // AGI magic, version, identity, roots or levels wrong
	KindAGICount      = "agi-count"        // agi_count is not the inodes in the inobt
	KindAGIFreecount  = "agi-freecount"    // agi_freecount is not the free inodes in the inobt
	KindAGIBlocks     = "agi-blocks"       // agi_iblocks/fblocks is not the size of the inode btrees
	KindAGIUnlinked   = "agi-unlinked"     // an unlinked list that is broken

	// Free space and block usage.
	KindBnobtRecord   = "bnobt-record"           // a free extent outside the AG or overlapping another
	KindCntbtRecord   = "cntbt-record"           // likewise in the cntbt
	KindFreeMismatch  = "bnobt-cntbt-mismatch"   // the two free-space btrees disagree
	KindFreeInUse     = "free-extent-in-use"     // a free extent covers blocks in use
	KindMultiClaimed  = "block-multiply-claimed" // a block used by two owners (not shared per refcountbt)
	KindUnaccounted   = "block-unaccounted"      // a block neither free nor used
	KindRefcRecord    = "refcount-record"        // a refcount record outside the AG or malformed
	KindRefcMismatch  = "refcount-mismatch"      // refcount disagrees with the number of owners
	KindInobtRecord   = "inobt-record"           // an inode chunk record that cannot be right
	KindInobtFree     = "inobt-free-mismatch"    // inobt free bit disagrees with the inode
	KindFinobtMissing = "finobt-mismatch"        // finobt is not the inobt records with free inodes

	// Inodes.
	KindInodeCorrupt  = "inode-corrupt"   // the inode fails verification
	KindInodeNblocks  = "inode-nblocks"   // di_nblocks is not the blocks the forks use
	KindInodeNextents = "inode-nextents"  // di_nextents/di_anextents is not the extent count
	KindExtentRange   = "extent-range"    // an extent outside the file system or an AG
	KindExtentOrder   = "extent-order"    // extents of a fork overlap or are out of order
	KindSymlink       = "symlink-corrupt" // a symlink target that cannot be read back

	// Directories and the namespace.
	KindDirEntryFree  = "dir-entry-free-inode" // an entry naming a free inode
	KindDirEntryBad   = "dir-entry-bad-inode"  // an entry naming no inode at all
	KindDirEntryFType = "dir-entry-ftype"      // an entry's file type is not the inode's
	KindDirDotdot     = "dir-dotdot"           // ".." is not the directory's parent
	KindDirMultiLink  = "dir-multiple-parents" // a directory named by two entries
	KindRootIno       = "root-inode"           // the root inode is missing or not a directory
	KindNlink         = "nlink"                // link count is not the number of names
	KindUnreachable   = "inode-unreachable"    // an inode in use that no directory leads to

	// Notes.
	KindSuppressed = "suppressed" // more findings of a kind than the report keeps
)

// Finding is one inconsistency (or note), located as precisely as the
// checker knows it.
type Finding struct {
	Kind     string   `json:"kind"`
	Severity Severity `json:"severity"`
	AG       int      `json:"ag"`               // -1 when not in one AG
	Block    int64    `json:"block"`            // AG block when AG >= 0, else file-system block; -1 none
	Blocks   int64    `json:"blocks,omitempty"` // length of a run of blocks starting at Block, when more than one
	Inode    int64    `json:"inode"`            // -1 none
	Expected string   `json:"expected,omitempty"`
	Found    string   `json:"found,omitempty"`
	Message  string   `json:"message"`
}

// String is the finding as one line: where, what, expected and found.
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", f.Kind)
	var where []string
	if f.AG >= 0 {
		where = append(where, fmt.Sprintf("AG %d", f.AG))
	}
	if f.Block >= 0 {
		switch {
		case f.Blocks > 1 && f.AG >= 0:
			where = append(where, fmt.Sprintf("blocks %d-%d (%d)", f.Block, f.Block+f.Blocks-1, f.Blocks))
		case f.AG >= 0:
			where = append(where, fmt.Sprintf("block %d", f.Block))
		default:
			where = append(where, fmt.Sprintf("fs block %d", f.Block))
		}
	}
	if f.Inode >= 0 {
		where = append(where, fmt.Sprintf("inode %d", f.Inode))
	}
	if len(where) > 0 {
		b.WriteString(strings.Join(where, " "))
		b.WriteString(": ")
	}
	b.WriteString(f.Message)
	if f.Expected != "" || f.Found != "" {
		fmt.Fprintf(&b, " (expected %s, found %s)", f.Expected, f.Found)
	}
	if f.Severity == Info {
		b.WriteString(" [info]")
	}
	return b.String()
}

// LogInfo is the state of the internal log.
type LogInfo struct {
	Clean     bool   `json:"clean"`
	HeadCycle uint32 `json:"head_cycle"`
	HeadBlock uint32 `json:"head_block"`
	Error     string `json:"error,omitempty"`
}

// Stats counts what the checker went through.
type Stats struct {
	AGs         int   `json:"ags"`
	Inodes      int64 `json:"inodes"`      // inodes in use
	Directories int64 `json:"directories"` // directories read
	Entries     int64 `json:"entries"`     // directory entries, "." and ".." excluded
	Blocks      int64 `json:"metadata_blocks"`
	Extents     int64 `json:"extents"`
}

// Report is the result of a check.
type Report struct {
	Findings []Finding `json:"findings"`
	// Problems counts findings of severity Problem, including those left
	// out beyond the per-kind cap; Suppressed says how many were left out.
	Problems   int            `json:"problems"`
	Kinds      []string       `json:"kinds"` // kinds with problems, sorted
	Suppressed map[string]int `json:"suppressed,omitempty"`
	Log        LogInfo        `json:"log"`
	Stats      Stats          `json:"stats"`
}

// Clean reports whether no problem was found (notes may exist).
func (r *Report) Clean() bool { return r.Problems == 0 }

// Has reports whether a finding of kind was made.
func (r *Report) Has(kind string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Kind == kind }) || r.Suppressed[kind] > 0
}

// Summary is the one-line verdict: "clean", or "N problems in M kinds".
func (r *Report) Summary() string {
	notes := 0
	for _, f := range r.Findings {
		if f.Severity == Info {
			notes++
		}
	}
	s := "clean"
	if r.Problems > 0 {
		s = fmt.Sprintf("%d %s in %d %s", r.Problems, plural(r.Problems, "problem", "problems"),
			len(r.Kinds), plural(len(r.Kinds), "kind", "kinds"))
	}
	if notes > 0 {
		s += fmt.Sprintf(" (%d %s)", notes, plural(notes, "note", "notes"))
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// finalize sorts findings, caps each kind at max and fills the counters.
func (r *Report) finalize(max int) {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.AG, b.AG), cmp.Compare(a.Block, b.Block), cmp.Compare(a.Inode, b.Inode),
			cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Message, b.Message))
	})
	// Identical findings (the same block reached from two places) once.
	r.Findings = slices.Compact(r.Findings)
	per := map[string]int{}
	kinds := map[string]bool{}
	kept := r.Findings[:0]
	r.Problems = 0
	for _, f := range r.Findings {
		if f.Severity == Problem {
			r.Problems++
			kinds[f.Kind] = true
		}
		per[f.Kind]++
		if per[f.Kind] > max {
			if r.Suppressed == nil {
				r.Suppressed = map[string]int{}
			}
			r.Suppressed[f.Kind]++
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	for k, n := range r.Suppressed {
		r.Findings = append(r.Findings, Finding{Kind: KindSuppressed, Severity: Info, AG: -1, Block: -1, Inode: -1,
			Message: fmt.Sprintf("%d more %s findings not listed", n, k)})
	}
	slices.SortStableFunc(r.Findings[len(kept):], func(a, b Finding) int { return cmp.Compare(a.Message, b.Message) })
	r.Kinds = r.Kinds[:0]
	for k := range kinds {
		r.Kinds = append(r.Kinds, k)
	}
	slices.Sort(r.Kinds)
}
