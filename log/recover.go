package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/xfsimg/xfsimg/ondisk"
)

// RecoverOptions control Recover.
type RecoverOptions struct {
	// DryRun parses the log and replays it in memory, reports what would
	// be written, and writes nothing.
	DryRun bool
}

// Report says what Recover found and did.
type Report struct {
	Clean  bool // the log was clean or empty: nothing to replay
	DryRun bool
	// The range replayed, after torn writes were dropped from the head
	// and the tail checked (see State).
	State State
	// Records and transactions read between tail and head.
	Records      int
	Transactions int            // committed transactions replayed
	Uncommitted  int            // transactions without a COMMIT: dropped, as the kernel drops them
	Items        map[string]int // items of committed transactions, by type name

	BufsReplayed, BufsSkipped, BufsCancelled       int // buffer items: replayed, skipped (block newer), cancelled
	InodesReplayed, InodesSkipped, InodesCancelled int // inode items likewise
	ICreates, ICreatesCancelled                    int // inode chunks initialised
	IntentsDone                                    int // intents whose done item is in the log too: nothing to do

	BuffersWritten int   // metadata buffers written back
	BytesWritten   int64 // their bytes
	BufferReads    int   // device reads of metadata
	LogReads       int64 // device reads of the log

	// Superblock counters before and after they were recomputed from the
	// AG headers, as the kernel does after replaying a dirty log.
	OldICount, OldIFree, OldFDBlocks uint64
	ICount, IFree, FDBlocks          uint64

	// NewHead is where the log's head is after the unmount record.
	NewHead LSN
}

// RefusedError is a log that holds something recovery does not replay
// (yet). Nothing was written.
type RefusedError struct {
	LSN  LSN    // the transaction's LSN; 0 when not about one transaction
	What string // e.g. "an EFI item"
}

func (e *RefusedError) Error() string {
	if e.LSN == 0 {
		return fmt.Sprintf("log recovery: %s, which xfsimg does not recover yet; mount the file system to recover it", e.What)
	}
	return fmt.Sprintf("log recovery: transaction at (%d,%d) holds %s, which xfsimg does not replay yet; mount the file system to recover it",
		e.LSN.Cycle(), e.LSN.Block(), e.What)
}

// Unwrap makes a refusal an ondisk.ErrUnsupported.
func (e *RefusedError) Unwrap() error { return ondisk.ErrUnsupported }

// intentDone pairs each intent item type with its done item.
var intentDone = map[uint16]uint16{
	ItemEFI32: ItemEFD, ItemRUI: ItemRUD, ItemCUI: ItemCUD, ItemBUI: ItemBUD, ItemATTRI: ItemATTRD, ItemXMI: ItemXMD,
}

var doneIntent = func() map[uint16]uint16 {
	m := map[uint16]uint16{}
	for i, d := range intentDone {
		m[d] = i
	}
	return m
}()

// cancelTable counts the cancel records of each buffer (blkno, length), as
// the kernel's buf_cancel table does: a buffer stays cancelled until its
// last cancel record has been passed.
type cancelTable map[[2]int64]int

func (c cancelTable) is(blkno int64, bbs int) bool { return c[[2]int64{blkno, int64(bbs)}] > 0 }

// put passes one cancel record; it reports whether the buffer was in the
// table.
func (c cancelTable) put(blkno int64, bbs int) bool {
	k := [2]int64{blkno, int64(bbs)}
	if c[k] == 0 {
		return false
	}
	if c[k]--; c[k] == 0 {
		delete(c, k)
	}
	return true
}

type pendingIntent struct {
	typ uint16
	lsn LSN
}

type recoverer struct {
	dev    ondisk.Storage
	sb     *ondisk.Superblock
	g      *ondisk.Geometry
	a      *Area
	st     *State
	cache  *bufCache
	cancel cancelTable
	rep    *Report
	recLSN LSN // LSN of the transactions whose buffers are pending
	// pass 1
	intents map[[2]uint64]pendingIntent // (type, id) -> intent not yet done
	want    map[int64]int               // buffers to prefetch: daddr -> blocks
	created map[int64]bool              // inode clusters an ICREATE writes whole: no need to read them
}

// Recover replays a dirty log into the file system on dev as the kernel
// does at mount: pass 1 collects cancelled buffers, pass 2 replays the
// committed transactions in order with the kernel's rules (buffer items
// by dirty chunk, skipped when the block on disk is newer; inode items
// into their cluster buffers; new inode chunks). Nothing is written until
// the whole log has been replayed in memory and every buffer passed the
// checks its write verifier would make; then the buffers go to disk in
// address order, the superblock counters are recomputed from the AG
// headers, and an unmount record leaves the log clean. A log holding items
// recovery does not replay is refused (RefusedError) with nothing written,
// as is a corrupt one.
func Recover(dev ondisk.Storage, opts RecoverOptions) (*Report, error) {
	rep := &Report{DryRun: opts.DryRun, Items: map[string]int{}}
	sb, err := ondisk.ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	if sb.FeaturesIncompat&ondisk.IncompatNeedsRepair != 0 {
		return nil, ondisk.Unsupportedf("log recovery: the file system is marked as needing repair (run xfs_repair)")
	}
	g := ondisk.NewGeometry(sb)
	a := NewArea(dev, g, sb.UUID)
	a.LogSUnit = sb.LogSUnit
	if a.Start < 0 || (a.Start+a.BBs)<<ondisk.BBShift > dev.Size() {
		return nil, ondisk.Corruptf("log recovery: the log (%d blocks at daddr %d) is outside the device", a.BBs, a.Start)
	}
	st, err := a.FindState()
	if err != nil {
		return nil, fmt.Errorf("log recovery: %w", err)
	}
	rep.OldICount, rep.OldIFree, rep.OldFDBlocks = sb.ICount, sb.IFree, sb.FDBlocks
	rep.ICount, rep.IFree, rep.FDBlocks = sb.ICount, sb.IFree, sb.FDBlocks
	if st.Empty || st.Clean {
		rep.Clean, rep.State, rep.NewHead = true, *st, st.Head
		return rep, nil
	}
	if err := a.VerifyState(st); err != nil {
		return nil, fmt.Errorf("log recovery: %w", err)
	}
	rep.State = *st
	if st.Clean {
		// Only a torn write after an unmount record: clear it away as
		// mount does, so that the head is found after the unmount record.
		rep.Clean = true
		if !opts.DryRun {
			if err := a.clearAfterHead(st); err != nil {
				return nil, err
			}
			if err := dev.Flush(); err != nil {
				return nil, err
			}
		}
		rep.NewHead = st.Head
		return rep, nil
	}
	if sb.LSN != ^uint64(0) && LSN(sb.LSN) > st.Head {
		return nil, ondisk.Corruptf("log recovery: metadata LSN ahead of the log: the superblock has (%d,%d), the head is (%d,%d)",
			LSN(sb.LSN).Cycle(), LSN(sb.LSN).Block(), st.Head.Cycle(), st.Head.Block())
	}
	r := &recoverer{
		dev: dev, sb: sb, g: g, a: a, st: st, rep: rep,
		cache:   newBufCache(dev, int64(sb.DBlocks)<<g.BlockLog),
		cancel:  cancelTable{},
		intents: map[[2]uint64]pendingIntent{},
		want:    map[int64]int{},
		created: map[int64]bool{},
	}
	if err := r.replay(); err != nil {
		return nil, err
	}
	if err := r.finish(); err != nil {
		return nil, err
	}
	if opts.DryRun {
		rep.NewHead = st.Head
		return rep, nil
	}
	if err := r.write(); err != nil {
		return nil, err
	}
	return rep, nil
}

func (r *recoverer) refuse(t *Transaction, what string) error {
	return &RefusedError{LSN: t.LSN, What: what}
}

// replay runs both passes over the log. The range is read once; when it
// fits in memory, pass 2 replays the transactions pass 1 assembled.
func (r *recoverer) replay() error {
	a, st := r.a, r.st
	tail, head := int64(st.Tail.Block()), int64(st.Head.Block())
	keep := a.distance(tail, head)*ondisk.BBSize <= maxCacheBytes
	var txs []*Transaction
	unc, err := a.walkRange(tail, head, Walk{
		Record: func(*Record) error { r.rep.Records++; return nil },
		Transaction: func(t *Transaction) error {
			if keep {
				txs = append(txs, t)
			}
			return r.pass1(t)
		},
	})
	if err != nil {
		return fmt.Errorf("log recovery: %w", err)
	}
	r.rep.Uncommitted = len(unc)
	if err := r.checkIntents(); err != nil {
		return err
	}
	if err := r.cache.prefetch(r.want); err != nil {
		return fmt.Errorf("log recovery: %w", err)
	}
	r.want, r.created = nil, nil
	if keep {
		for _, t := range txs {
			if err := r.pass2(t); err != nil {
				return r.wrap(err)
			}
		}
	} else if _, err := a.walkRange(tail, head, Walk{Transaction: r.pass2}); err != nil {
		return r.wrap(err)
	}
	r.cache.drain()
	if a.rr != nil {
		r.rep.LogReads = a.rr.reads
	}
	return nil
}

func (r *recoverer) wrap(err error) error {
	var re *RefusedError
	if errors.As(err, &re) {
		return re
	}
	return fmt.Errorf("log recovery: %w", err)
}

// pass1 builds the cancel table, pairs intents with their done items,
// refuses what recovery does not replay, and notes the buffers pass 2 will
// read.
func (r *recoverer) pass1(t *Transaction) error {
	r.rep.Transactions++
	for i := range t.Items {
		it := &t.Items[i]
		r.rep.Items[it.TypeName()]++
		switch it.Type {
		case ItemBuf:
			f, err := DecodeBufLogFormat(it.Regions[0])
			if err != nil {
				return err
			}
			if f.Flags&BlfCancel != 0 {
				r.cancel[[2]int64{f.Blkno, int64(f.Len)}]++
				continue
			}
			if why, ok := bufTypeSupported(f); !ok {
				return r.refuse(t, why)
			}
			if !r.created[f.Blkno] {
				r.want[f.Blkno] = int(f.Len)
			}
		case ItemInode:
			f, err := DecodeInodeLogFormat(it.Regions[0])
			if err != nil {
				return err
			}
			if f.Fields&(ILogDOwner|ILogAOwner) != 0 {
				return r.refuse(t, "an inode item changing a fork's block owners (extent swap)")
			}
			if f.Len > 0 && !r.created[f.Blkno] {
				r.want[f.Blkno] = int(f.Len)
			}
		case ItemICreate:
			if ic, err := decodeICreate(it.Regions[0]); err == nil && ic.AG < r.g.AGCount && r.g.ClusterFSBs > 0 {
				for i := uint32(0); i < min(ic.Length, r.g.AGBlocks)/r.g.ClusterFSBs; i++ {
					r.created[r.g.AGBDaddr(ic.AG, ic.AGBno+i*r.g.ClusterFSBs)] = true
				}
			}
		default:
			if err := r.intent(t, it); err != nil {
				return err
			}
		}
	}
	return nil
}

// intent tracks an intent or done item; any other item type is refused.
func (r *recoverer) intent(t *Transaction, it *Item) error {
	_, isIntent := intentDone[it.Type]
	intent, isDone := doneIntent[it.Type]
	if !isIntent && !isDone {
		return r.refuse(t, article(it.TypeName())+" item")
	}
	if len(it.Regions[0]) < 16 {
		return ondisk.Corruptf("%s item of %d bytes", it.TypeName(), len(it.Regions[0]))
	}
	id := binary.LittleEndian.Uint64(it.Regions[0][8:])
	if isIntent {
		r.intents[[2]uint64{uint64(it.Type), id}] = pendingIntent{it.Type, t.LSN}
		return nil
	}
	// A done item whose intent is before the tail releases nothing.
	k := [2]uint64{uint64(intent), id}
	if _, ok := r.intents[k]; ok {
		delete(r.intents, k)
		r.rep.IntentsDone++
	}
	return nil
}

// checkIntents refuses a log with an intent whose work is not known to be
// done: the kernel would finish it after replay.
func (r *recoverer) checkIntents() error {
	if len(r.intents) == 0 {
		return nil
	}
	var first *pendingIntent
	for _, p := range r.intents {
		if first == nil || p.lsn < first.lsn {
			p := p
			first = &p
		}
	}
	return &RefusedError{LSN: first.lsn, What: fmt.Sprintf("%s item without its %s", article(ItemName(first.typ)), ItemName(intentDone[first.typ]))}
}

// pass2 replays one committed transaction, its items in the kernel's
// order: buffers and new inode chunks, then inodes (and intents, which need
// nothing), then inode buffers of unlinked lists, then cancel records.
func (r *recoverer) pass2(t *Transaction) error {
	if t.LSN != r.recLSN {
		r.cache.drain()
		r.recLSN = t.LSN
	}
	var bufs, others, ibufs, cancels []*Item
	for i := range t.Items {
		it := &t.Items[i]
		switch it.Type {
		case ItemBuf:
			f, err := DecodeBufLogFormat(it.Regions[0])
			if err != nil {
				return err
			}
			switch {
			case f.Flags&BlfCancel != 0:
				cancels = append([]*Item{it}, cancels...)
			case f.Flags&BlfInodeBuf != 0:
				ibufs = append([]*Item{it}, ibufs...)
			default:
				bufs = append(bufs, it)
			}
		case ItemICreate:
			bufs = append(bufs, it)
		default:
			others = append(others, it)
		}
	}
	for _, list := range [][]*Item{bufs, others, ibufs, cancels} {
		for _, it := range list {
			var err error
			switch it.Type {
			case ItemBuf:
				err = r.replayBuf(t, it)
			case ItemInode:
				err = r.replayInode(t, it)
			case ItemICreate:
				err = r.replayICreate(t, it)
			}
			if err != nil {
				var re *RefusedError
				if errors.As(err, &re) {
					return err
				}
				return fmt.Errorf("transaction at (%d,%d): %w", t.LSN.Cycle(), t.LSN.Block(), err)
			}
		}
	}
	return nil
}

// replayBuf is xlog_recover_buf_commit_pass2.
func (r *recoverer) replayBuf(t *Transaction, it *Item) error {
	f, err := DecodeBufLogFormat(it.Regions[0])
	if err != nil {
		return err
	}
	if f.Flags&BlfCancel != 0 {
		if r.cancel.put(f.Blkno, int(f.Len)) {
			return nil
		}
	} else if r.cancel.is(f.Blkno, int(f.Len)) {
		r.rep.BufsCancelled++
		return nil
	}
	b, err := r.cache.get(f.Blkno, int(f.Len))
	if err != nil {
		return err
	}
	if lsn := bufLSN(b.data, r.g.MetaUUID, r.sb.UUID); lsn != 0 && lsn != -1 && lsn >= int64(t.LSN) {
		r.rep.BufsSkipped++
		return nil
	}
	if f.Flags&BlfInodeBuf != 0 {
		if err := replayInodeBuffer(f, it.Regions, b.data, r.g.InodeSize); err != nil {
			return err
		}
	} else {
		if why, ok := bufTypeSupported(f); !ok {
			return r.refuse(t, why)
		}
		if err := replayRegions(f, it.Regions, b.data); err != nil {
			return err
		}
		if !bufTypeMatches(f.Type(), b.data) {
			return ondisk.Corruptf("buffer at daddr %d logged as %s holds magic 0x%08x", f.Blkno, bufTypeName(f.Type()), binary.BigEndian.Uint32(b.data))
		}
		if f.Type() != BufDino {
			if b.pending == 0 {
				r.cache.pending = append(r.cache.pending, b)
			}
			b.pending = t.LSN
		}
	}
	b.dirty = true
	r.rep.BufsReplayed++
	return nil
}

// finish does what mount does once the log is replayed: refuses unlinked
// inodes it would have to free, and recomputes the superblock counters
// from the AG headers (xfs_initialize_perag_data); then every buffer to be
// written is stamped and checked.
func (r *recoverer) finish() error {
	g, sb := r.g, r.sb
	var free, flcount, btree, icount, ifree uint64
	sectBBs := g.SectSize >> ondisk.BBShift
	for agno := uint32(0); agno < g.AGCount; agno++ {
		fb, err := r.cache.get(g.AGFDaddr(agno), sectBBs)
		if err != nil {
			return fmt.Errorf("log recovery: AGF %d: %w", agno, err)
		}
		agf, err := ondisk.DecodeAGF(fb.data)
		if err == nil {
			err = agf.Verify(g, agno)
		}
		if err != nil {
			return fmt.Errorf("log recovery: after replay: AGF %d: %w", agno, err)
		}
		ib, err := r.cache.get(g.AGIDaddr(agno), sectBBs)
		if err != nil {
			return fmt.Errorf("log recovery: AGI %d: %w", agno, err)
		}
		agi, err := ondisk.DecodeAGI(ib.data)
		if err == nil {
			err = agi.Verify(g, agno, sb)
		}
		if err != nil {
			return fmt.Errorf("log recovery: after replay: AGI %d: %w", agno, err)
		}
		for _, u := range agi.Unlinked {
			if u != nullAgino {
				return &RefusedError{What: fmt.Sprintf("inodes on AG %d's unlinked list after replay (inode %d first: deleted files not yet freed)", agno, g.Ino(agno, u))}
			}
		}
		free += uint64(agf.FreeBlks)
		flcount += uint64(agf.FLCount)
		btree += uint64(agf.BtreeBlks)
		icount += uint64(agi.Count)
		ifree += uint64(agi.FreeCount)
	}
	fdblocks := free + flcount + btree
	if fdblocks > sb.DBlocks || ifree > icount {
		return ondisk.Corruptf("log recovery: after replay the AG headers count %d free blocks of %d and %d free inodes of %d", fdblocks, sb.DBlocks, ifree, icount)
	}
	sbBuf, err := r.cache.get(0, sectBBs)
	if err != nil {
		return fmt.Errorf("log recovery: superblock: %w", err)
	}
	be := binary.BigEndian
	be.PutUint64(sbBuf.data[128:], icount)
	be.PutUint64(sbBuf.data[136:], ifree)
	be.PutUint64(sbBuf.data[144:], fdblocks)
	sbBuf.dirty = true
	r.rep.ICount, r.rep.IFree, r.rep.FDBlocks = icount, ifree, fdblocks
	for _, b := range r.cache.bufs {
		if !b.dirty {
			continue
		}
		b.stamp()
		if err := verifyForWrite(b, g, sb); err != nil {
			return fmt.Errorf("log recovery: after replay: %w", err)
		}
		r.rep.BuffersWritten++
		r.rep.BytesWritten += int64(len(b.data))
	}
	r.rep.BufferReads = r.cache.reads
	return nil
}

// write puts the replayed buffers on disk in address order, contiguous
// ones in one write, flushes, and leaves the log clean.
func (r *recoverer) write() error {
	var dirty []*rbuf
	for _, b := range r.cache.bufs {
		if b.dirty {
			dirty = append(dirty, b)
		}
	}
	sort.Slice(dirty, func(i, j int) bool { return dirty[i].daddr < dirty[j].daddr })
	for i := 1; i < len(dirty); i++ {
		if p := dirty[i-1]; p.daddr+int64(len(p.data)/ondisk.BBSize) > dirty[i].daddr {
			return ondisk.Unsupportedf("log recovery: buffers at daddr %d and %d overlap", p.daddr, dirty[i].daddr)
		}
	}
	const maxRun = 8 << 20
	for i := 0; i < len(dirty); {
		j, n := i+1, len(dirty[i].data)
		for j < len(dirty) && dirty[j].daddr == dirty[j-1].daddr+int64(len(dirty[j-1].data)/ondisk.BBSize) && n+len(dirty[j].data) <= maxRun {
			n += len(dirty[j].data)
			j++
		}
		run := ondisk.AlignedBuffer(n, 4096)
		off := 0
		for _, b := range dirty[i:j] {
			off += copy(run[off:], b.data)
		}
		if _, err := r.dev.WriteAt(run, dirty[i].daddr<<ondisk.BBShift); err != nil {
			return fmt.Errorf("log recovery: write daddr %d: %w", dirty[i].daddr, err)
		}
		i = j
	}
	if err := r.dev.Flush(); err != nil {
		return err
	}
	if err := r.a.clearAfterHead(r.st); err != nil {
		return err
	}
	if err := r.dev.Flush(); err != nil {
		return err
	}
	// The unmount record goes out through the journal's own record writer,
	// which pads, packs and splits records as the kernel does for every
	// log geometry (stripe units with extended headers included).
	w, err := newLogWriter(r.a, r.sb, r.st)
	if err != nil {
		return err
	}
	if _, _, err := w.writeUnmount(); err != nil {
		return err
	}
	r.rep.NewHead = MakeLSN(w.cycle, uint32(w.head))
	return r.dev.Flush()
}

// totalRecShift is XLOG_TOTAL_REC_SHIFT: the blocks that the in-flight
// records of a v2 log can span (8 records of 256 KiB).
const totalRecShift = maxICLogs * maxRecordBytes / ondisk.BBSize

// clearAfterHead is xlog_clear_stale_blocks: the blocks in front of the
// head that a crash may have left in the head's cycle (torn records) get
// empty headers of the previous cycle, up to the span of the in-flight
// records but never into the tail, so that the head is found where
// recovery left it.
func (a *Area) clearAfterHead(st *State) error {
	last, err := a.readHeader(st.LastRecord)
	if err != nil {
		return err
	}
	tail := last.TailLSN
	hc, hb := st.Head.Cycle(), int64(st.Head.Block())
	tc, tb := tail.Cycle(), int64(tail.Block())
	var dist int64
	switch {
	case hc == tc:
		if hb < tb || hb >= a.BBs {
			return ondisk.Corruptf("log: head (%d,%d) behind the tail (%d,%d)", hc, hb, tc, tb)
		}
		dist = tb + a.BBs - hb
	case hc == tc+1 && hb < tb:
		dist = tb - hb
	default:
		return ondisk.Corruptf("log: head (%d,%d) and tail (%d,%d) are inconsistent", hc, hb, tc, tb)
	}
	n := min(dist, totalRecShift)
	if n <= 0 {
		return nil
	}
	first := min(n, a.BBs-hb)
	if err := a.writeEmptyRecords(hc-1, hb, first, tail); err != nil {
		return err
	}
	if n > first {
		return a.writeEmptyRecords(hc, 0, n-first, tail)
	}
	return nil
}

// writeEmptyRecords writes n cleared record headers (xlog_add_record: no
// data, h_len 0) of the given cycle from log block blk on.
func (a *Area) writeEmptyRecords(cycle uint32, blk, n int64, tail LSN) error {
	buf := ondisk.AlignedBuffer(int(n)*ondisk.BBSize, 4096)
	be := binary.BigEndian
	for i := int64(0); i < n; i++ {
		b := buf[i*ondisk.BBSize:]
		be.PutUint32(b[0:], HeaderMagic)
		be.PutUint32(b[4:], cycle)
		be.PutUint32(b[8:], Version2)
		be.PutUint64(b[16:], uint64(MakeLSN(cycle, uint32(blk+i))))
		be.PutUint64(b[24:], uint64(tail))
		be.PutUint32(b[0x12c:], FmtLinuxLE)
		copy(b[0x130:0x140], a.UUID[:])
	}
	if _, err := a.Dev.WriteAt(buf, (a.Start+blk)<<ondisk.BBShift); err != nil {
		return fmt.Errorf("log: clear blocks %d-%d: %w", blk, blk+n-1, err)
	}
	return nil
}

// article puts "a" or "an" before an item name, as it is read out: an EFI,
// an RUI, a CUI, a BUI.
func article(name string) string {
	if strings.HasPrefix(name, "unknown") || name != "" && strings.ContainsRune("AEFHILMNORSX", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}
