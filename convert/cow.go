package convert

import (
	"errors"
	"fmt"
	"sort"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/refcount"
)

// Copy on write, for files whose blocks may be shared (reflink). A write
// over shared blocks must not change them: it reserves delayed blocks in
// the COW fork, an in-core extent tree beside the data fork that never
// reaches the disk (xfs_reflink_reserve_cow). Writeback finds the COW fork
// first, converts its delayed extent to blocks recorded as staging extents
// in the refcount btree (so that a crash leaves nothing leaked: recovery
// frees them), and writes there; I/O completion remaps the written range
// into the data fork in one transaction, dropping a reference to the old
// blocks (xfs_reflink_end_cow). What the COW fork still holds when the file
// is evicted is given back (xfs_reflink_cancel_cow_range).

// defaultCowExtSize is XFS_DEFAULT_COWEXTSZ_HINT: COW reservations are
// aligned to 32 blocks unless the inode says otherwise.
const defaultCowExtSize = 32

// cext is an allocated COW extent: file blocks [off, off+len) staged at
// file system block fsb.
type cext struct {
	off, len, fsb uint64
}

func (c cext) end() uint64 { return c.off + c.len }

// cowFork is the COW fork: delayed extents and allocated ones, never
// overlapping. The caller holds the inode lock.
type cowFork struct {
	del  *dtree
	real []cext // by offset
}

// findReal returns the index of the allocated extent holding off.
func (c *cowFork) findReal(off uint64) (int, bool) {
	i := sort.Search(len(c.real), func(i int) bool { return c.real[i].end() > off })
	return i, i < len(c.real) && c.real[i].off <= off
}

// empty reports whether the fork holds nothing.
func (c *cowFork) empty() bool { return len(c.real) == 0 && c.del.t.Len() == 0 }

// lookup maps off in the COW fork: a delayed extent (kind mapDelalloc), an
// allocated one (mapUnwritten, cow), or nothing; next is where the next
// COW extent after off starts (MaxFileOff if none).
func (c *cowFork) lookup(off uint64) (m mapping, ok bool, next uint64) {
	if d, found := c.del.find(off); found {
		return mapping{off: d.off, len: d.len, kind: mapDelalloc, cow: true}, true, d.off
	}
	if i, found := c.findReal(off); found {
		r := c.real[i]
		return mapping{off: r.off, len: r.len, startBlock: r.fsb, kind: mapUnwritten, cow: true}, true, r.off
	}
	next = ondisk.MaxFileOff
	if d, found := c.del.next(off); found {
		next = d.off
	}
	if i, _ := c.findReal(off); i < len(c.real) {
		next = min(next, c.real[i].off)
	}
	return mapping{}, false, next
}

// prevEnd and nextStart bound a new COW reservation at off: the end of
// the COW extent before it and the start of the one after.
func (c *cowFork) bounds(off uint64) (lo, hi uint64) {
	hi = ondisk.MaxFileOff
	if d, ok := c.del.prev(off + 1); ok && d.off <= off {
		lo = max(lo, d.end())
	}
	if d, ok := c.del.next(off); ok {
		hi = min(hi, d.off)
	}
	i, _ := c.findReal(off)
	if i > 0 {
		lo = max(lo, c.real[i-1].end())
	}
	if i < len(c.real) {
		hi = min(hi, c.real[i].off)
	}
	return lo, hi
}

// insertReal adds an allocated extent.
func (c *cowFork) insertReal(x cext) {
	i, _ := c.findReal(x.off)
	c.real = append(c.real, cext{})
	copy(c.real[i+1:], c.real[i:])
	c.real[i] = x
}

// removeReal takes [lo, hi) out of the allocated extents and returns the
// pieces it took, in order.
func (c *cowFork) removeReal(lo, hi uint64) []cext {
	var out, keep []cext
	for _, r := range c.real {
		if r.end() <= lo || r.off >= hi {
			keep = append(keep, r)
			continue
		}
		a, b := max(lo, r.off), min(hi, r.end())
		out = append(out, cext{off: a, len: b - a, fsb: r.fsb + (a - r.off)})
		if r.off < a {
			keep = append(keep, cext{off: r.off, len: a - r.off, fsb: r.fsb})
		}
		if b < r.end() {
			keep = append(keep, cext{off: b, len: r.end() - b, fsb: r.fsb + (b - r.off)})
		}
	}
	c.real = keep
	return out
}

// cowExtSize is xfs_get_cowextsz_hint.
func cowExtSize(core *ondisk.Dinode) uint64 {
	if core.Flags2&ondisk.DiFlags2Cowextsize != 0 && core.CowExtSize != 0 {
		return uint64(core.CowExtSize)
	}
	return defaultCowExtSize
}

// sharedRun is xfs_reflink_trim_around_shared for the written mapping m
// over file blocks [from, to): whether the blocks from from on are shared,
// and for how many blocks that holds.
func (s *Session) sharedRun(m mapping, from, to uint64) (bool, uint64, error) {
	fsb := m.startBlock + (from - m.off)
	g := s.g
	agno, agbno := g.FSBAgno(fsb), g.FSBAgbno(fsb)
	n := min(to-from, uint64(g.AGBlocks-agbno))
	tx, err := s.j.Begin(log.Reservation{})
	if err != nil {
		return false, 0, err
	}
	defer tx.Cancel()
	w, err := refcount.Open(tx, g, agf.NewAllocator(tx, g), agno)
	if err != nil {
		return false, 0, err
	}
	fbno, flen, ok, err := w.Shared(agbno, uint32(n))
	switch {
	case err != nil:
		return false, 0, err
	case !ok:
		return false, n, nil
	case fbno == agbno:
		return true, uint64(flen), nil
	}
	return false, uint64(fbno - agbno), nil
}

// reserveCow is xfs_bmapi_reserve_delalloc on the COW fork for the shared
// file blocks [off, off+n): the range widened to the COW extent size
// (xfs_bmap_extsize_align) but not over the COW extents around it, and
// its blocks reserved from the free count. The caller holds ilock.
func (s *Session) reserveCow(ip *inode, off, n uint64) (dext, error) {
	ext := ip.cowExtSz
	aoff := off / ext * ext
	aend := (off + n + ext - 1) / ext * ext
	lo, hi := ip.cow.bounds(off)
	aoff, aend = max(aoff, lo), min(aend, hi, aoff+ondisk.MaxExtLen)
	alen := aend - aoff
	ind := s.worstIndlen(alen)
	if err := s.j.Reserve(int64(alen+ind), s.keepBlocks()); err != nil {
		return dext{}, err
	}
	d := dext{off: aoff, len: alen, indlen: ind}
	if back := ip.cow.del.add(d, s.worstIndlen); back > 0 {
		s.j.Unreserve(int64(back))
	}
	ip.cowSeq.Add(1)
	return d, nil
}

// errCowGone is the kernel's -EAGAIN from a COW fork conversion: the COW
// extent the writeback saw is gone (remapped or cancelled meanwhile); the
// block is looked up once more, in the data fork.
var errCowGone = errors.New("COW extent gone")

// convertCow is xfs_bmapi_convert_delalloc on the COW fork: under the
// exclusive lock, look blk up again in the COW fork and allocate the whole
// delayed extent there, recording its blocks as staging extents, until
// the allocation covers blk.
func (s *Session) convertCow(ip *inode, blk uint64) (mapping, uint64, error) {
	for {
		ip.ilock.Lock()
		m, ok, _ := ip.cow.lookup(blk)
		if !ok || m.kind != mapDelalloc {
			seq := ip.cowSeq.Load()
			ip.ilock.Unlock()
			if !ok {
				return mapping{}, seq, errCowGone
			}
			return m, seq, nil
		}
		d, _ := ip.cow.del.find(blk)
		x, err := s.allocCow(ip, d)
		if err != nil {
			ip.ilock.Unlock()
			return mapping{}, 0, err
		}
		covered := blk < x.end()
		if covered {
			m, _, _ = ip.cow.lookup(blk)
		}
		seq := ip.cowSeq.Load()
		ip.ilock.Unlock()
		if covered {
			return m, seq, nil
		}
		s.hook(HookAfterPartialAlloc, ip.ino, blk)
	}
}

// allocCow allocates COW delayed extent d from its start, as much as one
// allocation gets, and stages the blocks in the refcount btree. The COW
// fork has no BMBT: the indirect reservation goes back whole. The caller
// holds ilock exclusively.
func (s *Session) allocCow(ip *inode, d dext) (cext, error) {
	t, err := s.beginRsvd(ip.ino)
	if err != nil {
		return cext{}, err
	}
	if err := t.tx.TakeReserved(int64(d.len + d.indlen)); err != nil {
		t.cancel()
		return cext{}, err
	}
	fail := func(err error) (cext, error) {
		if rerr := t.tx.ReturnReserved(int64(d.len + d.indlen)); rerr != nil {
			err = fmt.Errorf("%w (and %w)", err, rerr)
		}
		t.cancel()
		return cext{}, fmt.Errorf("inode %d: convert COW extent [%d,+%d): %w", ip.ino, d.off, d.len, err)
	}
	// The target: after the COW extent before (xfs_bmap_adjacent on the
	// COW fork), or the inode.
	var prev *ondisk.Extent
	if i, _ := ip.cow.findReal(d.off); i > 0 {
		r := ip.cow.real[i-1]
		prev = &ondisk.Extent{StartOff: r.off, StartBlock: r.fsb, BlockCount: r.len}
	}
	length := min(d.len, ondisk.MaxExtLen)
	target := s.adjacent(s.inodeFSB(ip.ino), d.off, length, prev, nil)
	fsb, n, err := t.allocData(target, length, 0)
	if err != nil {
		return fail(err)
	}
	w, err := refcount.Open(t.tx, s.g, t.al.al, s.g.FSBAgno(fsb))
	if err != nil {
		return fail(err)
	}
	if err := w.AllocCow(s.g.FSBAgbno(fsb), n); err != nil {
		return fail(err)
	}
	left := d.len - uint64(n)
	var leftInd uint64
	if left > 0 {
		leftInd = min(s.worstIndlen(left), d.indlen)
	}
	// The rest of d stays delayed with its share; the indirect blocks
	// beyond it go back to the free count when the transaction commits.
	if err := t.tx.ReturnReserved(int64(left + leftInd)); err != nil {
		t.cancel()
		return cext{}, err
	}
	if err := t.commit(); err != nil {
		return cext{}, err
	}
	x := cext{off: d.off, len: uint64(n), fsb: fsb}
	ip.cow.del.del(d)
	if left > 0 {
		ip.cow.del.put(dext{off: x.end(), len: left, indlen: leftInd})
	}
	ip.cow.insertReal(x)
	ip.cowSeq.Add(1)
	s.addStats(func(st *Stats) {
		st.DelallocConverted++
		st.ExtentsCreated++
		st.BlocksAlloc += int64(n)
	})
	return x, nil
}

// reserveShared makes COW reservations over the shared blocks of the
// written mapping m within file blocks [from, to), where the COW fork has
// none yet, appending them to got. On failure it returns the block it
// stopped at (what is before it is reserved).
func (s *Session) reserveShared(ip *inode, m mapping, from, to uint64, got *[]dext) (uint64, error) {
	for q := from; q < to; {
		c, ok, next := ip.cow.lookup(q)
		if ok {
			q = min(to, c.end())
			continue
		}
		shared, n, err := s.sharedRun(m, q, min(to, next))
		if err != nil {
			return q, err
		}
		if shared {
			d, err := s.reserveCow(ip, q, n)
			if err != nil {
				return q, err
			}
			*got = append(*got, d)
		}
		q += n
	}
	return to, nil
}

// dropCowDelalloc takes COW fork blocks [lo, hi) out of the delayed
// extents and gives their reservation back.
func (s *Session) dropCowDelalloc(ip *inode, lo, hi uint64) {
	data, ind := ip.cow.del.remove(lo, hi, s.worstIndlen)
	if data+ind > 0 {
		s.j.Unreserve(int64(data + ind))
		ip.cowSeq.Add(1)
	}
}

// endCow is xfs_reflink_end_cow for a completed write to COW blocks: the
// written range moves into the data fork, a COW extent at a time.
func (s *Session) endCow(io *ioend) error {
	ip := io.ip
	end := io.off + uint64(len(io.pages))
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	for off := io.off; off < end; {
		i, ok := ip.cow.findReal(off)
		if !ok {
			// Remapped already, by another writeback's completion
			// (xfs_reflink_end_cow_extent skips such a range): the
			// data fork must map the block where the data went.
			// Anything else (a COW extent cancelled under the
			// write) would be data written to blocks the file does
			// not own: say so rather than lose it quietly.
			m, err := s.lookup(ip, off)
			if err != nil {
				return err
			}
			if !m.real() || m.startBlock+(off-m.off) != io.dblk+(off-io.off) {
				return fmt.Errorf("inode %d: file block %d was written to COW block %d, which is no longer its own (%v): %w",
					ip.ino, off, io.dblk+(off-io.off), m, ondisk.ErrCorrupt)
			}
			n := min(end, m.end()) - off
			if i < len(ip.cow.real) {
				n = min(n, ip.cow.real[i].off-off)
			}
			off += n
			continue
		}
		c := ip.cow.real[i]
		n := min(end, c.end()) - off
		if err := s.remapCow(ip, off, n, c.fsb+(off-c.off)); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// remapCow is xfs_reflink_end_cow_extent: in one transaction, file blocks
// [off, off+n) leave the data fork (their references dropped: blocks no
// other file holds are freed), the COW blocks at fsb take their place,
// written, their staging record goes, and the on-disk size moves up to
// the data written. The caller holds ilock exclusively.
func (s *Session) remapCow(ip *inode, off, n, fsb uint64) error {
	tx, err := s.j.Begin(log.Reservation{Blocks: int64(2*s.maxLevels + 2*ondisk.RefcountMaxLevels(s.g)), Rsvd: true})
	if err != nil {
		return err
	}
	t, err := s.beginTx(tx, ip.ino, int64(2*s.maxLevels))
	if err != nil {
		return err
	}
	// A delayed extent of the data fork under the COW extent (the COW
	// reservation was widened over it) has nothing to write any more.
	s.dropDelalloc(ip, off, off+n)
	pieces, err := t.f.Remove(off, n)
	if err != nil {
		t.cancel()
		return err
	}
	if err := t.free(pieces); err != nil {
		t.cancel()
		return err
	}
	if err := t.f.Insert(ondisk.Extent{StartOff: off, StartBlock: fsb, BlockCount: n}); err != nil {
		t.cancel()
		return err
	}
	t.al.cowDone = append(t.al.cowDone, ondisk.Extent{StartBlock: fsb, BlockCount: n})
	bs := int64(s.g.BlockSize)
	newSize := min(ip.size, int64(off+n)*bs)
	grow := newSize > ip.diskSize
	if grow {
		t.f.Core().Size = newSize
	}
	if ip.timesDirty {
		t.touch()
		ip.timesDirty = false
	}
	if err := t.commit(); err != nil {
		return err
	}
	ip.cow.removeReal(off, off+n)
	ip.seq.Add(1)
	ip.cowSeq.Add(1)
	if grow {
		ip.diskSize = newSize
	}
	s.addStats(func(st *Stats) { st.ExtentsCreated++ })
	return nil
}

// cancelCow is xfs_reflink_cancel_cow_range over file blocks [lo, hi):
// delayed COW extents give their reservation back, allocated ones their
// blocks and staging records, one transaction each. The caller holds
// ilock exclusively.
func (s *Session) cancelCow(ip *inode, lo, hi uint64) error {
	s.dropCowDelalloc(ip, lo, hi)
	for {
		i, _ := ip.cow.findReal(lo)
		if i >= len(ip.cow.real) || ip.cow.real[i].off >= hi {
			return nil
		}
		c := ip.cow.real[i]
		a, b := max(lo, c.off), min(hi, c.end())
		fsb := c.fsb + (a - c.off)
		t, err := s.begin(ip.ino, int64(2*ondisk.AllocMaxLevels(s.g)))
		if err != nil {
			return err
		}
		t.al.cowDone = append(t.al.cowDone, ondisk.Extent{StartBlock: fsb, BlockCount: b - a})
		if err := t.al.Free(fsb, uint32(b-a)); err != nil {
			t.cancel()
			return err
		}
		if err := t.commit(); err != nil {
			return err
		}
		ip.cow.removeReal(a, b)
		ip.cowSeq.Add(1)
		s.addStats(func(st *Stats) {
			st.BlocksFreed += int64(b - a)
		})
	}
}
