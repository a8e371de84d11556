package bmbt

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Allocator gives the fork its BMBT blocks and takes them back, inside the
// fork's transaction. *agf.Allocator satisfies it; tests use fakes.
type Allocator interface {
	Alloc(req agf.Request) (fsb uint64, length uint32, err error)
	Free(fsb uint64, length uint32) error
}

// IFork is one inode fork opened in a transaction: the decoded inode core
// and the fork's mapping, in the extents format while the records fit the
// fork and as a BMBT (root in the inode) once they do not, as the kernel's
// xfs_ifork. (The design calls it Fork; that name is the data/attr
// selector the read side already exports.)
//
// Every change goes through the btree engine or the in-inode list and is
// logged in the transaction; Log writes the core and the fork back into
// the inode buffer. An IFork lives as long as its transaction.
type IFork struct {
	tx    *log.Tx
	g     *ondisk.Geometry
	al    Allocator
	ino   uint64
	which Fork

	ibuf  *log.Buf // the inode's cluster buffer
	ioff  int      // the inode's offset in it
	core  *ondisk.Dinode
	fsize int // the fork's size in bytes

	format uint8
	exts   []ondisk.Extent // extents format: the records
	root   *inodeRoot      // btree format: the in-core root
	tree   *btree.Tree
	bufs   map[uint64]*log.Buf // BMBT blocks held by the transaction

	seq   uint64
	dirty bool
	err   error // first failure: the fork may be half changed, the transaction must be cancelled
}

// ErrOverlap is returned by Insert when the new extent is not in a hole.
var ErrOverlap = errors.New("extent overlaps the mapping")

// OpenFork reads inode ino in tx and opens one of its forks for change. The
// fork must be in the extents or btree format (a regular file's data fork,
// or an attr fork that has left the inode).
func OpenFork(tx *log.Tx, g *ondisk.Geometry, al Allocator, ino uint64, which Fork) (*IFork, error) {
	if !g.ValidIno(ino) {
		return nil, fmt.Errorf("inode %d: not a valid inode number", ino)
	}
	loc := g.LocateInode(ino)
	b, err := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, log.BufDino)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	ip := b.Data[loc.Offset : loc.Offset+g.InodeSize]
	d, err := ondisk.DecodeDinode(ip)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	if !d.CRCOK() {
		return nil, ondisk.Corruptf("inode %d: bad CRC", ino)
	}
	if err := d.Verify(g, ino); err != nil {
		return nil, err
	}
	if d.IsFree() {
		return nil, fmt.Errorf("inode %d: inode is free: %w", ino, ondisk.ErrNotFound)
	}
	f := &IFork{tx: tx, g: g, al: al, ino: ino, which: which, ibuf: b, ioff: loc.Offset, core: d,
		bufs: map[uint64]*log.Buf{}}
	fork := f.forkBytes()
	if which == AttrFork {
		if !d.HasAttrFork() {
			return nil, fmt.Errorf("inode %d: no attr fork: %w", ino, ondisk.ErrNotFound)
		}
		f.format = d.AFormat
	} else {
		f.format = d.Format
	}
	f.fsize = len(fork)
	switch f.format {
	case ondisk.FmtExtents:
		if f.exts, err = ondisk.DecodeExtents(fork, f.nextents()); err != nil {
			return nil, fmt.Errorf("inode %d: %v: %w", ino, which, err)
		}
		if err := ondisk.CheckExtents(f.exts, g); err != nil {
			return nil, fmt.Errorf("inode %d: %v: %w", ino, which, err)
		}
	case ondisk.FmtBtree:
		if f.root, err = rootFromFork(fork, ino, g.MetaUUID); err != nil {
			return nil, fmt.Errorf("inode %d: %v: bmbt root: %w", ino, which, err)
		}
		f.tree = f.newTree()
	default:
		return nil, fmt.Errorf("inode %d: %v in format %d has no block mapping: %w", ino, which, f.format, ondisk.ErrUnsupported)
	}
	return f, nil
}

// forkBytes is the fork inside the inode buffer.
func (f *IFork) forkBytes() []byte {
	ip := f.ibuf.Data[f.ioff : f.ioff+f.g.InodeSize]
	if f.which == AttrFork {
		return ondisk.AttrFork(ip, f.core, f.g)
	}
	return ondisk.DataFork(ip, f.core, f.g)
}

func (f *IFork) nextents() uint64 {
	if f.which == AttrFork {
		return uint64(f.core.ANExtents)
	}
	return f.core.NExtents
}

func (f *IFork) setNextents(n uint64) {
	if f.which == AttrFork {
		f.core.ANExtents = uint32(n)
	} else {
		f.core.NExtents = n
	}
}

func (f *IFork) setFormat(fmt uint8) {
	f.format = fmt
	if f.which == AttrFork {
		f.core.AFormat = fmt
	} else {
		f.core.Format = fmt
	}
}

// MaxExtents is how many records the fork holds in the extents format
// (XFS_IFORK_MAXEXT): its size, which the inode's forkoff sets, over 16.
func (f *IFork) MaxExtents() int { return f.fsize / ondisk.ExtentSize }

// Format is the fork's current format (ondisk.FmtExtents or FmtBtree).
func (f *IFork) Format() uint8 { return f.format }

// Height is the BMBT height counting the in-inode root (0 in the extents
// format).
func (f *IFork) Height() int {
	if f.format != ondisk.FmtBtree {
		return 0
	}
	return f.root.Height()
}

// NExtents is the fork's record count.
func (f *IFork) NExtents() uint64 { return f.nextents() }

// Ino is the inode number.
func (f *IFork) Ino() uint64 { return f.ino }

// Core is the decoded inode core. Callers change size, flags and times in
// it and then call Log; the fork keeps format, nblocks and nextents.
func (f *IFork) Core() *ondisk.Dinode { return f.core }

// Seq counts the changes to the fork's mapping; every Insert, Remove and
// SetState that changes a record bumps it (the kernel's if_seq). It starts
// from SetSeq's value, so an in-core inode can carry it across
// transactions.
func (f *IFork) Seq() uint64 { return f.seq }

// SetSeq sets the sequence number a fresh IFork continues from.
func (f *IFork) SetSeq(s uint64) { f.seq = s }

func (f *IFork) changed() {
	f.seq++
	f.dirty = true
}

// Err is the first error a change hit. After one, the fork and the
// transaction's buffers may be half changed: cancel the transaction.
func (f *IFork) Err() error { return f.err }

func (f *IFork) fail(err error) error {
	if f.err == nil {
		f.err = err
	}
	return err
}

// Lookup returns the extent that maps file block off (ok true), or else the
// first extent after off (ok false; a zero BlockCount when there is none).
func (f *IFork) Lookup(off uint64) (ondisk.Extent, bool, error) {
	if f.err != nil {
		return ondisk.Extent{}, false, f.err
	}
	x, found, next, hasNext, err := f.seek(off)
	if err != nil {
		return ondisk.Extent{}, false, err
	}
	if found && x.End() > off {
		return x, true, nil
	}
	if !hasNext {
		return ondisk.Extent{}, false, nil
	}
	return next, false, nil
}

// Around returns, with one lookup, the last extent starting at or before
// off and the first one starting after it.
func (f *IFork) Around(off uint64) (le ondisk.Extent, hasLE bool, next ondisk.Extent, hasNext bool, err error) {
	if f.err != nil {
		return le, false, next, false, f.err
	}
	return f.seek(off)
}

// Prev returns the last extent that starts before off (the kernel's
// "previous" record of a lookup at off).
func (f *IFork) Prev(off uint64) (ondisk.Extent, bool, error) {
	if f.err != nil {
		return ondisk.Extent{}, false, f.err
	}
	if off == 0 {
		return ondisk.Extent{}, false, nil
	}
	x, ok, _, _, err := f.seek(off - 1)
	return x, ok, err
}

// Extents returns every record of the fork in file-offset order.
func (f *IFork) Extents() ([]ondisk.Extent, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.format == ondisk.FmtExtents {
		return append([]ondisk.Extent(nil), f.exts...), nil
	}
	var out []ondisk.Extent
	n := f.nextents()
	err := f.tree.Records(func(rec []byte) error {
		if uint64(len(out)) >= n {
			return ondisk.Corruptf("inode %d: bmbt holds more than the inode's %d extents", f.ino, n)
		}
		out = append(out, ondisk.DecodeExtent(rec))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != n {
		return nil, ondisk.Corruptf("inode %d: bmbt holds %d extents, inode says %d", f.ino, len(out), n)
	}
	return out, nil
}

// checkExtent applies the record rules to an extent about to be stored.
func (f *IFork) checkExtent(e ondisk.Extent) error {
	if e.BlockCount == 0 || e.BlockCount > ondisk.MaxExtLen {
		return fmt.Errorf("inode %d: extent %v: length outside 1..%d", f.ino, e, ondisk.MaxExtLen)
	}
	if e.End() > ondisk.MaxFileOff || e.End() < e.StartOff {
		return fmt.Errorf("inode %d: extent %v: past the largest file offset", f.ino, e)
	}
	if e.Unwritten && f.which == AttrFork {
		return fmt.Errorf("inode %d: extent %v: unwritten extents belong to the data fork only", f.ino, e)
	}
	if err := ondisk.CheckExtents([]ondisk.Extent{e}, f.g); err != nil {
		return fmt.Errorf("inode %d: %w", f.ino, err)
	}
	return nil
}

// contiguous reports whether b can follow a in one record: adjacent in the
// file and on disk, the same state, and the sum no longer than a record
// holds.
func contiguous(a, b ondisk.Extent) bool {
	return a.End() == b.StartOff && a.StartBlock+a.BlockCount == b.StartBlock &&
		a.Unwritten == b.Unwritten && a.BlockCount+b.BlockCount <= ondisk.MaxExtLen
}

// Insert maps the extent e, which must lie in a hole, merging it with a
// neighbour it continues (same state, contiguous in the file and on disk,
// the merged length at most MaxExtLen) as xfs_bmap_add_extent_hole_real
// does. The blocks count in di_nblocks.
func (f *IFork) Insert(e ondisk.Extent) error {
	if f.err != nil {
		return f.err
	}
	if err := f.checkExtent(e); err != nil {
		return err
	}
	l, lok, r, rok, err := f.seek(e.StartOff)
	if err != nil {
		return err
	}
	if lok && l.End() > e.StartOff {
		return fmt.Errorf("inode %d: insert %v: %w %v", f.ino, e, ErrOverlap, l)
	}
	if rok && r.StartOff < e.End() {
		return fmt.Errorf("inode %d: insert %v: %w %v", f.ino, e, ErrOverlap, r)
	}
	if err := f.mergeWith(e, l, lok, r, rok); err != nil {
		return f.fail(err)
	}
	f.core.NBlocks += e.BlockCount
	return f.finish()
}

// mergeInsert puts e into a hole with the neighbour merges of
// xfs_bmap_add_extent_hole_real.
func (f *IFork) mergeInsert(e ondisk.Extent) error {
	left, lok, right, rok, err := f.seek(e.StartOff)
	if err != nil {
		return err
	}
	return f.mergeWith(e, left, lok, right, rok)
}

// mergeWith is mergeInsert with the records around the hole already
// looked up: left, the last one starting before e, and right, the first
// one after it.
func (f *IFork) mergeWith(e, left ondisk.Extent, lok bool, right ondisk.Extent, rok bool) error {
	lc := lok && contiguous(left, e)
	rc := rok && contiguous(e, right) && (!lc || left.BlockCount+e.BlockCount+right.BlockCount <= ondisk.MaxExtLen)
	f.changed()
	switch {
	case lc && rc:
		if err := f.del(right.StartOff); err != nil {
			return err
		}
		left.BlockCount += e.BlockCount + right.BlockCount
		return f.update(left.StartOff, left)
	case lc:
		left.BlockCount += e.BlockCount
		return f.update(left.StartOff, left)
	case rc:
		old := right.StartOff
		right.StartOff, right.StartBlock = e.StartOff, e.StartBlock
		right.BlockCount += e.BlockCount
		return f.update(old, right)
	}
	return f.insert(e)
}

// Remove unmaps the file blocks [off, off+length): extents inside go,
// extents across an edge are trimmed, and one that covers the whole range
// with room on both sides is split in two. It returns the unmapped pieces
// in file order; the caller frees their blocks. di_nblocks drops by them.
func (f *IFork) Remove(off, length uint64) ([]ondisk.Extent, error) {
	if f.err != nil {
		return nil, f.err
	}
	if length == 0 {
		return nil, nil
	}
	end := off + length
	if end < off || end > ondisk.MaxFileOff {
		return nil, fmt.Errorf("inode %d: remove [%d, +%d): past the largest file offset", f.ino, off, length)
	}
	removed, err := f.carve(off, end, func(ondisk.Extent) bool { return true })
	if err != nil {
		return nil, f.fail(err)
	}
	for _, p := range removed {
		f.core.NBlocks -= p.BlockCount
	}
	return removed, f.finish()
}

// carve takes the mapping of [off, end) out of every record that pick
// accepts, leaving the parts outside the range in place, and returns the
// pieces taken.
func (f *IFork) carve(off, end uint64, pick func(ondisk.Extent) bool) ([]ondisk.Extent, error) {
	var out []ondisk.Extent
	x, ok, err := f.le(off)
	if err != nil {
		return nil, err
	}
	if !ok || x.End() <= off {
		if x, ok, err = f.ge(off); err != nil {
			return nil, err
		}
	}
	for ok && x.StartOff < end {
		a, b := max(x.StartOff, off), min(x.End(), end)
		if pick(x) {
			out = append(out, ondisk.Extent{StartOff: a, StartBlock: x.StartBlock + (a - x.StartOff), BlockCount: b - a, Unwritten: x.Unwritten})
			if err := f.cut(x, a, b); err != nil {
				return nil, err
			}
		}
		if x, ok, err = f.ge(b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cut removes [a, b) from record x (which covers it).
func (f *IFork) cut(x ondisk.Extent, a, b uint64) error {
	f.changed()
	head := ondisk.Extent{StartOff: x.StartOff, StartBlock: x.StartBlock, BlockCount: a - x.StartOff, Unwritten: x.Unwritten}
	tail := ondisk.Extent{StartOff: b, StartBlock: x.StartBlock + (b - x.StartOff), BlockCount: x.End() - b, Unwritten: x.Unwritten}
	switch {
	case head.BlockCount == 0 && tail.BlockCount == 0:
		return f.del(x.StartOff)
	case head.BlockCount == 0:
		return f.update(x.StartOff, tail)
	case tail.BlockCount == 0:
		return f.update(x.StartOff, head)
	}
	if err := f.update(x.StartOff, head); err != nil {
		return err
	}
	return f.insert(tail)
}

// SetState marks the mapped blocks of [off, off+length) unwritten or
// written, splitting the extents at the range's edges and merging each
// changed piece with the neighbours it now continues, as
// xfs_bmap_add_extent_unwritten_real does. Holes in the range stay holes.
func (f *IFork) SetState(off, length uint64, unwritten bool) error {
	if f.err != nil {
		return f.err
	}
	if unwritten && f.which == AttrFork {
		return fmt.Errorf("inode %d: unwritten extents belong to the data fork only", f.ino)
	}
	end := off + length
	if length == 0 {
		return nil
	}
	if end < off || end > ondisk.MaxFileOff {
		return fmt.Errorf("inode %d: set state [%d, +%d): past the largest file offset", f.ino, off, length)
	}
	// One record at a time, so that each flipped piece meets the records
	// as they are after the previous one (the kernel converts one mapping
	// per call).
	pos := off
	for pos < end {
		x, ok, err := f.Lookup(pos)
		if err != nil {
			return f.fail(err)
		}
		if !ok {
			if x.BlockCount == 0 || x.StartOff >= end {
				break
			}
			pos = x.StartOff
			continue
		}
		b := min(x.End(), end)
		if x.Unwritten != unwritten {
			piece := ondisk.Extent{StartOff: pos, StartBlock: x.StartBlock + (pos - x.StartOff), BlockCount: b - pos, Unwritten: unwritten}
			if err := f.cut(x, pos, b); err != nil {
				return f.fail(err)
			}
			if err := f.mergeInsert(piece); err != nil {
				return f.fail(err)
			}
		}
		pos = b
	}
	return f.finish()
}

// finish puts the fork back in the format its record count calls for:
// a BMBT whose records fit the inode again becomes an extent list
// (xfs_bmap_btree_to_extents).
func (f *IFork) finish() error {
	if f.format == ondisk.FmtBtree && f.nextents() <= uint64(f.MaxExtents()) {
		if err := f.toExtents(); err != nil {
			return f.fail(err)
		}
	}
	return nil
}
