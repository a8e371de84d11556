package convert

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/xfsimg/xfsimg/ondisk"
)

// inode is a file's in-core state while the session writes it: the VFS
// inode and the xfs_inode together.
//
// Locks, outermost first: iolock (the VFS i_rwsem: writes, truncates,
// punches of the file one at a time), ilock (the extent state: the delayed
// extents, the fork through transactions, the sizes), then the page
// cache's own mutex. Writeback takes no lock of the file's own: several
// writebacks of a file run at once, kept apart by the pages' busy flag
// (the kernel's writeback bit; see syncMode).
type inode struct {
	ino    uint64
	iolock sync.Mutex
	ilock  sync.RWMutex

	// seq is the data fork's if_seq: bumped under the exclusive ilock
	// on every change of its extents, delayed or real, so that a
	// writeback context can tell that a mapping it cached went stale.
	seq atomic.Uint64

	// cowSeq is the COW fork's if_seq, as seq is the data fork's.
	cowSeq atomic.Uint64

	// Guarded by ilock.
	del        *dtree
	cow        cowFork // the COW fork (reflink files)
	reflink    bool    // di_flags2 REFLINK: blocks may be shared
	cowExtSz   uint64  // the COW extent size hint, in blocks
	size       int64   // i_size: what reads see, past di_size while data is in flight
	diskSize   int64   // di_size as committed
	flags      uint16  // di_flags
	timesDirty bool    // mtime and ctime to set in the next transaction
	writeErr   error   // why writes, truncates and punches are refused, if they are

	// last caches the last mapping read from the fork, valid while seq
	// has not moved: writes and writeback look the same extent up again
	// and again, and each fork lookup is a transaction.
	last atomic.Pointer[cachedMap]

	pc pageCache
}

// inode returns the in-core inode, reading it on first use.
func (s *Session) inode(ino uint64) (*inode, error) {
	s.mu.Lock()
	ip := s.inodes[ino]
	s.mu.Unlock()
	if ip != nil {
		return ip, nil
	}
	var core ondisk.Dinode
	var writeErr error
	err := s.view(ino, func(t *txn) error {
		if err := t.checkInode(true); err != nil {
			return err
		}
		writeErr = t.checkInode(false)
		core = *t.f.Core()
		return nil
	})
	if err != nil {
		return nil, err
	}
	ip = &inode{ino: ino, del: newDtree(), size: core.Size, diskSize: core.Size, flags: core.Flags, writeErr: writeErr,
		cow: cowFork{del: newDtree()}, reflink: core.Flags2&ondisk.DiFlags2Reflink != 0, cowExtSz: cowExtSize(&core)}
	ip.pc.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.inodes[ino]; old != nil {
		return old, nil
	}
	s.inodes[ino] = ip
	return ip, nil
}

// worstIndlen is xfs_bmap_worst_indlen: the BMBT blocks mapping length
// blocks could need in the worst case, each record its own extent, plus
// a split at every level above.
func (s *Session) worstIndlen(length uint64) uint64 {
	leaf := uint64(ondisk.BmbtMaxRecs(s.g.BlockSize, true))
	node := uint64(ondisk.BmbtMaxRecs(s.g.BlockSize, false))
	levels := uint64(s.maxLevels)
	maxrecs := leaf
	var total uint64
	for level := uint64(0); level < levels; level++ {
		length = (length + maxrecs - 1) / maxrecs
		total += length
		if length == 1 {
			return total + levels - level - 1
		}
		maxrecs = node
	}
	return total
}

// mapping is what a file block maps to: a real extent (written or
// unwritten), a delayed extent, or a hole, with its extent's range.
type mapping struct {
	off, len   uint64 // file blocks
	startBlock uint64 // real extents: the file system block of off
	kind       mapKind
	cow        bool // an extent of the COW fork
}

type mapKind uint8

const (
	mapHole mapKind = iota
	mapDelalloc
	mapUnwritten
	mapWritten
)

func (m mapping) end() uint64            { return m.off + m.len }
func (m mapping) covers(off uint64) bool { return off >= m.off && off < m.end() }
func (m mapping) real() bool             { return m.kind == mapUnwritten || m.kind == mapWritten }

func (k mapKind) String() string {
	return [...]string{"hole", "delalloc", "unwritten", "written"}[k]
}

func (m mapping) String() string {
	fork := ""
	if m.cow {
		fork = " (COW)"
	}
	return fmt.Sprintf("[%d,+%d) %v at %d%s", m.off, m.len, m.kind, m.startBlock, fork)
}

type cachedMap struct {
	m   mapping
	seq uint64
}

// lookup maps file block off from the delayed extents and the fork. The
// caller holds ilock (either way).
func (s *Session) lookup(ip *inode, off uint64) (mapping, error) {
	if d, ok := ip.del.find(off); ok {
		return mapping{off: d.off, len: d.len, kind: mapDelalloc}, nil
	}
	seq := ip.seq.Load()
	if c := ip.last.Load(); c != nil && c.seq == seq && c.m.covers(off) {
		return c.m, nil
	}
	var m mapping
	err := s.view(ip.ino, func(t *txn) error {
		var err error
		m, err = t.lookupReal(ip, off)
		return err
	})
	if err == nil {
		ip.last.Store(&cachedMap{m: m, seq: seq})
	}
	return m, err
}

// lookupReal maps off from the fork in an open transaction; a hole runs to
// the next real or delayed extent.
func (t *txn) lookupReal(ip *inode, off uint64) (mapping, error) {
	e, ok, err := t.f.Lookup(off)
	if err != nil {
		return mapping{}, err
	}
	if ok {
		return realMapping(e), nil
	}
	end := uint64(ondisk.MaxFileOff)
	if e.BlockCount != 0 {
		end = e.StartOff
	}
	if d, ok := ip.del.next(off); ok {
		end = min(end, d.off)
	}
	return mapping{off: off, len: end - off, kind: mapHole}, nil
}

// realMapping is the mapping of a fork extent.
func realMapping(e ondisk.Extent) mapping {
	k := mapWritten
	if e.Unwritten {
		k = mapUnwritten
	}
	return mapping{off: e.StartOff, len: e.BlockCount, startBlock: e.StartBlock, kind: k}
}
