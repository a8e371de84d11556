package check

import (
	"fmt"
	"sort"

	"github.com/xfsimg/xfsimg/ondisk"
)

// reader reads metadata straight from the device. Unlike the file
// system's shared cache it is safe for concurrent use, and each buffer
// belongs to its caller.
type reader struct {
	dev   ondisk.Storage
	align int
}

// maxRead bounds one read, whatever a damaged count asks for.
const maxRead = 64 << 20

func (r *reader) read(daddr int64, n int) ([]byte, error) {
	off := daddr << ondisk.BBShift
	if daddr < 0 || n <= 0 || n > maxRead || off+int64(n) > r.dev.Size() {
		return nil, ondisk.Corruptf("read of %d bytes at daddr %d outside the device", n, daddr)
	}
	buf := ondisk.AlignedBuffer(n, r.align)
	if _, err := r.dev.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// readInto is read into a buffer kept by the caller (grown as needed), for
// the large inode-chunk reads that each worker makes one after another. The
// bytes are only valid until the next readInto with the same buffer.
func (r *reader) readInto(keep *[]byte, daddr int64, n int) ([]byte, error) {
	off := daddr << ondisk.BBShift
	if daddr < 0 || n <= 0 || n > maxRead || off+int64(n) > r.dev.Size() {
		return nil, ondisk.Corruptf("read of %d bytes at daddr %d outside the device", n, daddr)
	}
	if cap(*keep) < n {
		*keep = ondisk.AlignedBuffer(max(n, readBatch), r.align)
	}
	buf := (*keep)[:n]
	if _, err := r.dev.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// ownerKind says what uses a block.
type ownerKind uint8

const (
	ownFree     ownerKind = iota // a free extent (bnobt)
	ownHeaders                   // superblock, AGF, AGI, AGFL sectors
	ownLog                       // the internal log
	ownBnobt                     // blocks of the trees, by tree
	ownCntbt                     //
	ownInobt                     //
	ownFinobt                    //
	ownRefcbt                    //
	ownRmapbt                    //
	ownAGFL                      // a block on the AGFL
	ownInodes                    // an inode chunk
	ownData                      // an extent of an inode's data fork
	ownAttr                      // an extent of an inode's attr fork
	ownBmbt                      // a BMBT block of an inode
	ownCow                       // a COW staging extent (refcountbt)
	ownRefcount                  // not an owner: a refcount record, count in ino
)

func (k ownerKind) String() string {
	return [...]string{"free space", "AG headers", "the internal log", "bnobt", "cntbt", "inobt", "finobt",
		"refcountbt", "rmapbt", "the AGFL", "an inode chunk", "data fork", "attr fork", "BMBT",
		"COW staging", "refcount"}[k]
}

// fileOwned reports an owner that may share blocks through reflink.
func (k ownerKind) fileOwned() bool { return k == ownData || k == ownAttr }

// claim is a run of blocks in one AG and what uses it.
type claim struct {
	start, len uint32
	kind       ownerKind
	ino        uint64 // inode for file owners; refcount for ownRefcount
}

func (cl claim) owner() string {
	switch cl.kind {
	case ownData, ownAttr, ownBmbt:
		return fmt.Sprintf("inode %d %s", cl.ino, cl.kind)
	}
	return cl.kind.String()
}

// workerOut is what one worker collects over the AGs it checks.
type workerOut struct {
	findings []Finding
	claims   [][]claim // by AG the blocks are in
	edges    []edge
	stats    Stats
	batch    []byte // the inode-chunk read buffers
	batch2   []byte
}

func newWorkerOut(agcount uint32) *workerOut {
	return &workerOut{claims: make([][]claim, agcount)}
}

func (o *workerOut) add(fs ...Finding) { o.findings = append(o.findings, fs...) }

// claimAG records that blocks [start, start+n) of AG agno are used.
func (o *workerOut) claimAG(agno, start, n uint32, kind ownerKind, ino uint64) {
	if n == 0 {
		return
	}
	cl := o.claims[agno]
	// Consecutive blocks of one owner (an inode's extents, a tree's blocks
	// read in order) merge into one claim.
	if k := len(cl) - 1; k >= 0 && cl[k].kind == kind && cl[k].ino == ino && cl[k].start+cl[k].len == start && kind != ownRefcount {
		cl[k].len += n
		return
	}
	o.claims[agno] = append(cl, claim{start: start, len: n, kind: kind, ino: ino})
}

// edge is one directory entry other than "." and "..".
type edge struct {
	dir, target uint64
	ftype       uint8
	name        string
}

// Inode flags.
const (
	fDir       = 1 << iota // a directory
	fBad                   // failed verification: its contents are not trusted
	fUnlinked              // on an AGI unlinked list
	fReached               // reached from the root
	fMeta                  // a metadata inode (quota, realtime): no name expected
	fNamed                 // named by at least one entry
	fDirParent             // has an entry parent
)

// inodeInfo is what the namespace checks need of an inode in use.
type inodeInfo struct {
	ino         uint64
	mode        uint16
	flags       uint16
	nlink       uint32
	names       uint32 // entries naming it
	subdirs     uint32 // directories: entries in it naming directories
	next        uint32 // di_next_unlinked
	parent      uint64 // directories: what ".." names
	entryParent uint64 // directories: the first directory found naming it
}

// chunkInfo is one inode chunk as the inobt records it.
type chunkInfo struct {
	startino uint32
	holes    uint64
}

// agResult is what the namespace and counter checks need of one AG.
type agResult struct {
	agno   uint32
	chunks []chunkInfo // sorted by startino
	inodes []inodeInfo // in use, sorted by ino
	agf    *ondisk.AGF // nil when unusable
	agi    *ondisk.AGI // nil when unusable
	counts agCounts    // computed from the trees
	have   struct{ free, inodes bool }
}

// agCounts are the counters as the trees give them.
type agCounts struct {
	freeBlocks uint64 // blocks in the bnobt's extents
	flcount    uint64
	btreeBlks  uint64 // non-root bnobt, cntbt and rmapbt blocks
	icount     uint64
	ifree      uint64
}

// inodeStatus says what an inode number names.
type inodeStatus int

const (
	inoInvalid inodeStatus = iota // not an inode number of this file system
	inoNoChunk                    // in no inode chunk (or in a hole of one)
	inoFree                       // an inode of a chunk, free on disk
	inoInUse                      // an inode in use
)

// lookup classifies ino and returns its info when in use.
func (c *checker) lookup(ino uint64) (inodeStatus, *inodeInfo) {
	if !c.g.ValidIno(ino) {
		return inoInvalid, nil
	}
	ag := c.ags[c.g.InoAgno(ino)]
	if i := sort.Search(len(ag.inodes), func(i int) bool { return ag.inodes[i].ino >= ino }); i < len(ag.inodes) && ag.inodes[i].ino == ino {
		return inoInUse, &ag.inodes[i]
	}
	agino := c.g.InoAgino(ino)
	i := sort.Search(len(ag.chunks), func(i int) bool { return ag.chunks[i].startino+ondisk.InodesPerChunk > agino })
	if i < len(ag.chunks) && ag.chunks[i].startino <= agino && ag.chunks[i].holes&(1<<(agino-ag.chunks[i].startino)) == 0 {
		return inoFree, nil
	}
	return inoNoChunk, nil
}
