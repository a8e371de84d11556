package log

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Reservation is what a transaction may consume. Blocks is the worst-case
// number of file system blocks it may allocate; Begin takes them from the
// in-core free count, and Commit or Cancel gives back what ModCounters did
// not use.
type Reservation struct {
	Blocks int64
	// Rsvd lets the reservation dip into the set-aside, as the kernel's
	// XFS_TRANS_RESERVE does for the transactions writeback needs to
	// finish work whose space was reserved earlier (delayed allocation
	// conversion, unwritten extent conversion): they must not fail.
	Rsvd bool
}

// Tx is a transaction: a set of buffer and inode changes that reach the
// log together or not at all. Its buffers stay locked until Commit or
// Cancel. A Tx is used by one goroutine.
type Tx struct {
	j      *Journal
	res    int64
	bufs   map[int64]*txBuf
	order  []*txBuf
	inodes map[uint64]uint32 // logged inodes and their ILog flags
	dfd    int64
	dic    int64
	dif    int64
	err    error // first misuse; Commit cancels and returns it
	done   bool
}

// txBuf is a buffer as one transaction holds it.
type txBuf struct {
	cb      *cbuf
	buf     *Buf
	base    []byte // contents before the transaction; nil: zeroes (NewBuf)
	created bool   // the transaction brought it into the cache
	dmap    []uint32
	stale   bool // Invalidate: the block was freed; drop it at commit
}

var errTxDone = errors.New("transaction already committed or cancelled")

// Begin starts a transaction. The reservation is taken from the in-core
// free block count at once; if it does not fit, Begin fails with an error
// wrapping ondisk.ErrNoSpace and nothing changes.
func (j *Journal) Begin(res Reservation) (*Tx, error) {
	if res.Blocks < 0 {
		return nil, fmt.Errorf("reservation of %d blocks", res.Blocks)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return nil, j.err
	}
	if j.closed {
		return nil, errors.New("journal closed")
	}
	avail := j.fdblocks - j.reserved - j.setAside
	if res.Rsvd {
		avail += j.setAside
	}
	if res.Blocks > avail {
		return nil, fmt.Errorf("reserve %d blocks with %d available: %w", res.Blocks, max(avail, 0), ondisk.ErrNoSpace)
	}
	j.reserved += res.Blocks
	return &Tx{j: j, res: res.Blocks, bufs: make(map[int64]*txBuf), inodes: make(map[uint64]uint32)}, nil
}

// Journal returns the journal the transaction belongs to.
func (tx *Tx) Journal() *Journal { return tx.j }

// ReadBuf returns the buffer at daddr as the committed state has it, locked
// for this transaction. The same transaction may get it again.
func (tx *Tx) ReadBuf(daddr int64, length int, typ BufType) (*Buf, error) {
	return tx.getBuf(daddr, length, typ, true, nil)
}

// ReadBufVerify is ReadBuf with a read verifier, run (as the kernel runs
// its verifiers) only when the buffer comes from the device: a cached
// buffer was verified when it was read, and a changed one carries a CRC
// that is only stamped at writeback. A buffer that fails is not cached.
func (tx *Tx) ReadBufVerify(daddr int64, length int, typ BufType, verify func([]byte) error) (*Buf, error) {
	return tx.getBuf(daddr, length, typ, true, verify)
}

// NewBuf returns a zeroed buffer for a block the transaction is about to
// fill (a newly allocated block), without reading it.
func (tx *Tx) NewBuf(daddr int64, length int, typ BufType) (*Buf, error) {
	return tx.getBuf(daddr, length, typ, false, nil)
}

func (tx *Tx) getBuf(daddr int64, length int, typ BufType, read bool, verify func([]byte) error) (*Buf, error) {
	if tx.done {
		return nil, errTxDone
	}
	if err := tx.j.checkRange(daddr, length); err != nil {
		return nil, err
	}
	if tb := tx.bufs[daddr]; tb != nil {
		if len(tb.cb.data) != length {
			return nil, fmt.Errorf("buffer at daddr %d: asked for %d bytes, held with %d", daddr, length, len(tb.cb.data))
		}
		// A block freed earlier in this transaction and now taken again
		// (a btree block freed to the AGFL and handed out again) is live
		// once more.
		tb.stale = false
		if !read {
			clear(tb.cb.data)
		}
		tb.buf.Type = typ
		return tb.buf, nil
	}
	j := tx.j
	j.mu.Lock()
	cb, created, err := j.lockBuf(tx, daddr, length)
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	tb := &txBuf{cb: cb, created: created}
	switch {
	case created && read:
		_, err := j.dev.ReadAt(cb.data, daddr<<ondisk.BBShift)
		if err != nil {
			err = fmt.Errorf("read buffer at daddr %d: %w", daddr, err)
		} else if verify != nil {
			err = verify(cb.data)
		}
		if err != nil {
			j.mu.Lock()
			j.evict(cb)
			cb.owner = nil
			j.cond.Broadcast()
			j.mu.Unlock()
			return nil, err
		}
		tb.base = append([]byte(nil), cb.data...)
	case created:
		// Zeroed already; its previous contents were never read.
	case read:
		tb.base = cb.snap
	default:
		tb.base = cb.snap
		clear(cb.data)
	}
	tb.buf = &Buf{Daddr: daddr, Data: cb.data, Type: typ, tb: tb}
	tb.dmap = make([]uint32, (length/BufChunkSize+31)/32)
	tx.bufs[daddr] = tb
	tx.order = append(tx.order, tb)
	return tb.buf, nil
}

// checkRange refuses buffers the journal must never hold: outside the data
// device's file system blocks, inside the log, or of a size the log format
// cannot describe.
func (j *Journal) checkRange(daddr int64, length int) error {
	if length <= 0 || length%ondisk.BBSize != 0 || length > maxBufBytes {
		return fmt.Errorf("buffer at daddr %d: length %d", daddr, length)
	}
	end := daddr + int64(length>>ondisk.BBShift)
	fsEnd := int64(j.g.DBlocks) << (j.g.BlockLog - ondisk.BBShift)
	if daddr < 0 || end > fsEnd {
		return fmt.Errorf("buffer at daddr %d (%d bytes) outside the file system", daddr, length)
	}
	if daddr < j.area.Start+j.area.BBs && end > j.area.Start {
		return fmt.Errorf("buffer at daddr %d (%d bytes) inside the log", daddr, length)
	}
	return nil
}

// ReadMeta reads like Journal.ReadMeta, but shows this transaction's own
// uncommitted changes in the buffers it holds.
func (tx *Tx) ReadMeta(daddr int64, length int) ([]byte, error) {
	return tx.j.readMeta(daddr, length, tx)
}

// LogBuf records that bytes [off, off+n) of b changed. The log carries the
// 128-byte chunks they touch.
func (tx *Tx) LogBuf(b *Buf, off, n int) {
	if tx.done {
		return
	}
	if b == nil || b.tb == nil || tx.bufs[b.Daddr] != b.tb {
		tx.fail(fmt.Errorf("LogBuf: buffer not held by this transaction"))
		return
	}
	if off < 0 || n < 0 || off+n > len(b.Data) {
		tx.fail(fmt.Errorf("LogBuf: bytes [%d, %d) outside the %d-byte buffer at daddr %d", off, off+n, len(b.Data), b.Daddr))
		return
	}
	for c := off / BufChunkSize; n > 0 && c <= (off+n-1)/BufChunkSize; c++ {
		b.tb.dmap[c/32] |= 1 << (c % 32)
	}
}

// Invalidate records that the block under b was freed (a btree block given
// back to the free space): at commit the buffer leaves the transaction, the
// committed list and the cache, so it is neither logged nor written in
// place, and whatever it held before is never replayed over the block's next
// owner (xfs_trans_binval). Cancel undoes it with the rest. Getting the
// buffer again in the same transaction (the block was handed out again)
// makes it live again.
//
// Why no cancel item (XFS_BLF_CANCEL) is logged: recovery replays only the
// last checkpoint, because every checkpoint's records name their own start
// as the log tail and a checkpoint is written in place and flushed before
// the next one starts. An older copy of the block in an earlier checkpoint
// is therefore never replayed. A copy in the checkpoint being built is
// dropped here, so that checkpoint carries none. A copy in a checkpoint
// being written while this transaction commits is written in place by it
// (stale, but the block is free) and is behind the tail of every later
// checkpoint. A kernel that replays from an older tail never sees this
// log: the journal only writes after a clean unmount record.
//
// What the block must not do is receive file data before the checkpoint
// that frees it is in place: a crash in between would bring back the old
// owner. The allocator keeps such blocks busy for file data (agf), as the
// kernel's busy extent list does.
func (tx *Tx) Invalidate(b *Buf) {
	if tx.done {
		return
	}
	if b == nil || b.tb == nil || tx.bufs[b.Daddr] != b.tb {
		tx.fail(fmt.Errorf("Invalidate: buffer not held by this transaction"))
		return
	}
	b.tb.stale = true
}

// LogInode records that inode ino changed. Its bytes live in its cluster
// buffer, which the transaction must hold (ReadBuf of the inode's
// ClusterDaddr and ClusterLen, type BufDino). flags are ILog* bits: the core
// is always logged; ILogD*/ILogA* add the data and attribute forks. As in
// the kernel, di_next_unlinked is not part of the inode item (recovery
// keeps the on-disk value): a change to it must be logged with LogBuf on
// the cluster buffer.
func (tx *Tx) LogInode(ino uint64, flags uint32) {
	if tx.done {
		return
	}
	g := tx.j.g
	if !g.ValidIno(ino) {
		tx.fail(fmt.Errorf("LogInode: bad inode number %d", ino))
		return
	}
	loc := g.LocateInode(ino)
	tb := tx.bufs[loc.ClusterDaddr]
	if tb == nil || len(tb.cb.data) != loc.ClusterLen {
		tx.fail(fmt.Errorf("LogInode: inode %d: its cluster buffer (daddr %d) is not held by this transaction", ino, loc.ClusterDaddr))
		return
	}
	tb.buf.Type = BufDino
	tx.inodes[ino] |= flags | ILogCore
}

// ModCounters changes the in-core superblock counters by the given deltas
// at commit. Blocks taken from free space (negative fdblocks) come out of
// the transaction's reservation.
func (tx *Tx) ModCounters(fdblocks, icount, ifree int64) {
	if tx.done {
		return
	}
	tx.dfd += fdblocks
	tx.dic += icount
	tx.dif += ifree
	if -tx.dfd > tx.res {
		tx.fail(fmt.Errorf("transaction uses %d blocks with %d reserved: %w", -tx.dfd, tx.res, ondisk.ErrNoSpace))
	}
}

func (tx *Tx) fail(err error) {
	if tx.err == nil {
		tx.err = err
	}
}

// Cancel undoes every change the transaction made to its buffers, releases
// them and gives back its reservation. It leaves no trace.
func (tx *Tx) Cancel() {
	if tx.done {
		return
	}
	tx.done = true
	j := tx.j
	for _, tb := range tx.order {
		if !tb.created {
			copy(tb.cb.data, tb.base)
		}
	}
	j.mu.Lock()
	for _, tb := range tx.order {
		if tb.created {
			j.evict(tb.cb)
			tb.cb.owner = nil
			continue
		}
		j.unlockBuf(tb.cb)
	}
	j.reserved -= tx.res
	j.cond.Broadcast()
	j.mu.Unlock()
}

// Commit adds the transaction's changes to the committed list (the CIL) and
// releases its buffers. Readers see them at once; they reach the log at the
// next checkpoint, which Commit starts itself when the committed changes
// outgrow Options.CheckpointBytes. A transaction that fails its checks is
// cancelled and leaves no trace.
func (tx *Tx) Commit() error {
	if tx.done {
		return errTxDone
	}
	j := tx.j
	if tx.err != nil {
		tx.Cancel()
		return tx.err
	}
	items, stale, err := tx.prepare()
	if err != nil {
		tx.Cancel()
		return err
	}
	var est int64
	for _, it := range items {
		est += it.bytes
	}
	if est+j.w.recordOverhead(est) > j.w.maxCheckpointBytes() {
		tx.Cancel()
		return fmt.Errorf("transaction needs %d bytes of log, more than a checkpoint may take: %w", est, ondisk.ErrNoSpace)
	}
	// Make room first when this transaction would push the committed
	// changes past what one checkpoint may hold.
	j.mu.Lock()
	full := !j.cil.empty() && j.cil.bytes+est+j.w.recordOverhead(j.cil.bytes+est) > j.w.maxCheckpointBytes()
	j.mu.Unlock()
	if full {
		if err := j.Checkpoint(); err != nil {
			tx.Cancel()
			return err
		}
	}
	j.mu.Lock()
	if j.err != nil {
		j.mu.Unlock()
		tx.Cancel()
		return j.err
	}
	tx.done = true
	c := j.cil
	for _, it := range items {
		c.add(it, j.g)
	}
	for _, tb := range stale {
		c.drop(tb.cb.daddr)
	}
	j.fdblocks += tx.dfd
	j.icount += tx.dic
	j.ifree += tx.dif
	j.reserved -= tx.res
	if len(items) > 0 || len(stale) > 0 || tx.dfd != 0 || tx.dic != 0 || tx.dif != 0 {
		j.stats.Transactions++
		c.txs++
	}
	for _, tb := range tx.order {
		if tb.stale {
			// Freed: nothing of it may be written back, so it leaves
			// the cache; readers see the device, and the block is free.
			tb.cb.owner, tb.cb.snap, tb.cb.absent = nil, nil, false
			j.evict(tb.cb)
			continue
		}
		j.unlockBuf(tb.cb)
	}
	push := c.bytes+j.w.recordOverhead(c.bytes) > int64(j.opt.CheckpointBytes)
	j.mu.Unlock()
	if push {
		return j.Checkpoint()
	}
	return nil
}

// commitItem is one buffer's contribution to the CIL.
type commitItem struct {
	tb     *txBuf
	image  []byte            // committed contents (the locked buffer's: copy before unlocking)
	inodes map[int]ilogEntry // logged inodes by offset in the buffer
	bytes  int64             // log space estimate
}

type ilogEntry struct {
	ino   uint64
	flags uint32
}

// prepare checks the transaction and copies what it commits: every byte it
// changed must be in a logged chunk or a logged part of a logged inode,
// every logged buffer must be metadata the journal can stamp and verify,
// and every logged inode must be a valid inode of its own number. The
// buffers are still locked, so their bytes are stable.
func (tx *Tx) prepare() ([]*commitItem, []*txBuf, error) {
	g := tx.j.g
	byBuf := map[*txBuf]map[int]ilogEntry{}
	for ino, flags := range tx.inodes {
		loc := g.LocateInode(ino)
		tb := tx.bufs[loc.ClusterDaddr]
		if byBuf[tb] == nil {
			byBuf[tb] = map[int]ilogEntry{}
		}
		byBuf[tb][loc.Offset] = ilogEntry{ino, flags}
	}
	var items []*commitItem
	var stale []*txBuf
	for _, tb := range tx.order {
		if tb.stale {
			stale = append(stale, tb)
			continue
		}
		data := tb.cb.data
		inodes := byBuf[tb]
		logged := anyBit(tb.dmap)
		if err := tx.checkUnlogged(tb, inodes); err != nil {
			return nil, nil, err
		}
		if !logged && len(inodes) == 0 {
			continue
		}
		typ := tb.buf.Type
		if logged {
			if err := checkBuffer(data, typ, g); err != nil {
				return nil, nil, fmt.Errorf("buffer at daddr %d: %w", tb.cb.daddr, err)
			}
		}
		it := &commitItem{tb: tb, inodes: inodes}
		if logged {
			it.bytes += bufItemBytes(tb.dmap)
		}
		for off, e := range inodes {
			item, err := formatInode(data[off:off+g.InodeSize], e.ino, e.flags, g.LocateInode(e.ino), g)
			if err != nil {
				return nil, nil, err
			}
			it.bytes += item.bytes()
		}
		if typ == BufDino {
			// Inodes in the cluster that changed inside logged chunks
			// but are not logged as inodes are written as they are:
			// their CRCs must already be right.
			for _, r := range chunkRuns(tb.dmap) {
				if err := inodeSlotsOK(data, g, r[0]*BufChunkSize, r[1]*BufChunkSize); err != nil {
					return nil, nil, fmt.Errorf("buffer at daddr %d: %w", tb.cb.daddr, err)
				}
			}
		}
		// The transaction holds the buffer until Commit has added it to
		// the CIL, which copies it then.
		it.image = data
		items = append(items, it)
	}
	return items, stale, nil
}

// checkUnlogged refuses changes to bytes that neither a logged chunk nor a
// logged inode covers: recovery would not reproduce them.
func (tx *Tx) checkUnlogged(tb *txBuf, inodes map[int]ilogEntry) error {
	data := tb.cb.data
	var covered [][2]int
	for _, r := range chunkRuns(tb.dmap) {
		covered = append(covered, [2]int{r[0] * BufChunkSize, r[1] * BufChunkSize})
	}
	g := tx.j.g
	for off, e := range inodes {
		for _, r := range inodeLoggedRanges(data[off:off+g.InodeSize], e.flags, g) {
			covered = append(covered, [2]int{off + r[0], off + r[1]})
		}
		if tb.base != nil {
			// The old forks too: a fork that moved or shrank changed.
			for _, r := range inodeLoggedRanges(tb.base[off:off+g.InodeSize], e.flags, g) {
				covered = append(covered, [2]int{off + r[0], off + r[1]})
			}
		}
	}
	sort.Slice(covered, func(a, b int) bool { return covered[a][0] < covered[b][0] })
	pos := 0
	check := func(to int) error {
		if tb.base != nil && pos < to && bytes.Equal(data[pos:to], tb.base[pos:to]) {
			return nil // the common case, at memory speed
		}
		for i := pos; i < to; i++ {
			var old byte
			if tb.base != nil {
				old = tb.base[i]
			}
			if data[i] != old {
				return fmt.Errorf("buffer at daddr %d: byte %d changed but not logged", tb.cb.daddr, i)
			}
		}
		return nil
	}
	for _, r := range covered {
		if r[0] > pos {
			if err := check(min(r[0], len(data))); err != nil {
				return err
			}
		}
		pos = max(pos, r[1])
	}
	return check(len(data))
}

func anyBit(m []uint32) bool {
	for _, w := range m {
		if w != 0 {
			return true
		}
	}
	return false
}

// chunkRuns lists the runs of set bits of a dirty map as [first, end)
// chunk numbers.
func chunkRuns(m []uint32) [][2]int {
	f := BufLogFormat{DataMap: m}
	return f.ChunkRuns()
}

// bufItemBytes is the log space of a buffer item with dirty map m: the
// format region, one region per run of dirty chunks, their op headers.
func bufItemBytes(m []uint32) int64 {
	runs := chunkRuns(m)
	n := int64(OpHeaderSize + bufFmtFixed + 4*len(m))
	for _, r := range runs {
		n += int64(OpHeaderSize + (r[1]-r[0])*BufChunkSize)
	}
	return n
}
