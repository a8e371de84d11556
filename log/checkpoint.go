package log

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/xfsimg/xfsimg/ondisk"
)

// The committed item list (CIL) gathers what committed transactions changed
// since the last checkpoint, as the kernel's CIL does: each buffer and inode
// once, with the union of what was logged and the latest contents. A
// checkpoint writes it to the log as one transaction, then in place.

type cil struct {
	seq    uint64
	bufs   map[int64]*cilBuf
	inodes map[uint64]*cilInode
	bytes  int64 // log space of the items (regions and op headers)
	txs    int
}

// cilBuf is a buffer with committed changes: logged as a buffer item when
// its dirty map has bits, and written in place at write-back either way.
type cilBuf struct {
	daddr  int64
	typ    BufType
	image  []byte
	dmap   []uint32
	inodes map[int]uint64 // offsets of logged inodes (cluster buffers)
	bytes  int64          // its share of cil.bytes
}

type cilInode struct {
	ino   uint64
	flags uint32
	bytes int64
}

func newCIL(seq uint64) *cil {
	return &cil{seq: seq, bufs: map[int64]*cilBuf{}, inodes: map[uint64]*cilInode{}}
}

func (c *cil) empty() bool { return len(c.bufs) == 0 }

// add merges one committed buffer (and its logged inodes). Caller holds
// j.mu.
func (c *cil) add(it *commitItem, g *ondisk.Geometry) {
	tb := it.tb
	cb := c.bufs[tb.cb.daddr]
	if cb == nil {
		cb = &cilBuf{daddr: tb.cb.daddr, dmap: make([]uint32, len(tb.dmap)), inodes: map[int]uint64{}}
		c.bufs[cb.daddr] = cb
	}
	cb.typ = tb.buf.Type
	cb.image = it.image
	for i, w := range tb.dmap {
		cb.dmap[i] |= w
	}
	c.bytes -= cb.bytes
	cb.bytes = 0
	if anyBit(cb.dmap) {
		cb.bytes = bufItemBytes(cb.dmap)
	}
	c.bytes += cb.bytes
	for off, e := range it.inodes {
		cb.inodes[off] = e.ino
		ci := c.inodes[e.ino]
		if ci == nil {
			ci = &cilInode{ino: e.ino}
			c.inodes[e.ino] = ci
		}
		ci.flags |= e.flags
		c.bytes -= ci.bytes
		// Bound the item by the whole inode: the forks logged later in
		// the checkpoint are formatted from the latest image.
		ci.bytes = int64(5*OpHeaderSize+InodeLogFormatSize+g.InodeSize) + ondisk.LongBlockHeaderSize + 8
		c.bytes += ci.bytes
	}
	tb.cb.seq = c.seq
}

// drop removes a buffer a transaction invalidated (Tx.Invalidate): the
// checkpoint must neither log it nor write it in place, since its block is
// free and may already belong to someone else. Inodes logged in it go with
// it. Caller holds j.mu.
func (c *cil) drop(daddr int64) {
	cb := c.bufs[daddr]
	if cb == nil {
		return
	}
	c.bytes -= cb.bytes
	for _, ino := range cb.inodes {
		if ci := c.inodes[ino]; ci != nil {
			c.bytes -= ci.bytes
			delete(c.inodes, ino)
		}
	}
	delete(c.bufs, daddr)
}

// sbLoggedBytes is how much of the superblock sector is logged: struct
// xfs_dsb, as xfs_log_sb does.
const sbLoggedBytes = 264

// Superblock counter offsets (xfs_dsb), patched from the in-core counters
// whenever the superblock is logged.
const (
	sbICountOff   = 128
	sbIFreeOff    = 136
	sbFDBlocksOff = 144
)

// Checkpoint writes every committed change to the log as one transaction,
// then in place, then lets the tail move past it. With nothing committed it
// does nothing.
func (j *Journal) Checkpoint() error {
	j.ckptMu.Lock()
	defer j.ckptMu.Unlock()
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return err
	}
	c := j.cil
	if c.empty() {
		j.mu.Unlock()
		return nil
	}
	j.cil = newCIL(c.seq + 1)
	counters := [3]int64{j.icount, j.ifree, j.fdblocks}
	j.mu.Unlock()
	if err := j.push(c, counters); err != nil {
		return j.shutdown(err)
	}
	return nil
}

// push writes one checkpoint: data flush, log records, flush, metadata in
// place stamped with the checkpoint's LSN, flush. Caller holds ckptMu.
func (j *Journal) push(c *cil, counters [3]int64) error {
	if sb := c.bufs[0]; sb != nil && sb.typ == BufSB {
		be := binary.BigEndian
		be.PutUint64(sb.image[sbICountOff:], uint64(max(counters[0], 0)))
		be.PutUint64(sb.image[sbIFreeOff:], uint64(max(counters[1], 0)))
		be.PutUint64(sb.image[sbFDBlocksOff:], uint64(max(counters[2], 0)))
		for ch := 0; ch*BufChunkSize < sbLoggedBytes; ch++ {
			sb.dmap[ch/32] |= 1 << (ch % 32)
		}
	}
	bufs := make([]*cilBuf, 0, len(c.bufs))
	for _, b := range c.bufs {
		bufs = append(bufs, b)
	}
	sort.Slice(bufs, func(a, b int) bool { return bufs[a].daddr < bufs[b].daddr })
	items, err := j.formatItems(c, bufs)
	if err != nil {
		return err
	}
	tid := newTid()
	var th [TransHeaderSize]byte
	nregions := 0
	for _, it := range items {
		nregions += len(it)
	}
	TransHeader{Magic: TransMagic, Type: TransCheckpoint, Tid: tid, NumItems: uint32(nregions)}.Encode(th[:])
	ops := []op{
		{client: ClientTransaction, flags: OpStart},
		{client: ClientTransaction, data: th[:]},
	}
	for _, it := range items {
		ops = append(ops, it...)
	}
	ops = append(ops, op{client: ClientTransaction, flags: OpCommit})

	recs, regions, err := j.w.pack(tid, ops)
	if err != nil {
		return err
	}
	hooks := j.opt.Hooks
	// File data the caller wrote must be durable before a checkpoint that
	// maps it can be replayed.
	if err := j.dev.Flush(); err != nil {
		return fmt.Errorf("data flush: %w", err)
	}
	if err := call(hooks.AfterDataFlush); err != nil {
		return err
	}
	start := j.w.head
	tail := MakeLSN(j.w.cycle, uint32(j.w.head)) // everything older is in place
	out, lsn, st := j.w.layout(recs, tail)
	st.regions = regions
	j.addStats(st, int64(len(recs)))
	if err := j.w.writeOut(out, start); err != nil {
		return err
	}
	if err := call(hooks.AfterLogWrite); err != nil {
		return err
	}
	if err := j.dev.Flush(); err != nil {
		return fmt.Errorf("log flush: %w", err)
	}
	if err := call(hooks.AfterLogFlush); err != nil {
		return err
	}
	for _, b := range bufs {
		img := ondisk.AlignedBuffer(len(b.image), 4096)
		copy(img, b.image)
		offs := make([]int, 0, len(b.inodes))
		for off := range b.inodes {
			offs = append(offs, off)
		}
		if err := stampBuffer(img, b.typ, lsn, j.g, offs); err != nil {
			return fmt.Errorf("buffer at daddr %d: %w", b.daddr, err)
		}
		if _, err := j.dev.WriteAt(img, b.daddr<<ondisk.BBShift); err != nil {
			return fmt.Errorf("write-back: %w", err)
		}
	}
	if err := call(hooks.AfterWriteback); err != nil {
		return err
	}
	if err := j.dev.Flush(); err != nil {
		return fmt.Errorf("write-back flush: %w", err)
	}
	if err := call(hooks.AfterWritebackFlush); err != nil {
		return err
	}
	j.mu.Lock()
	j.written = c.seq
	j.stats.Checkpoints++
	for _, b := range bufs {
		if cb := j.bufs[b.daddr]; cb != nil && cb.owner == nil && cb.seq <= c.seq {
			j.evict(cb)
		}
	}
	j.mu.Unlock()
	return nil
}

func call(h func() error) error {
	if h == nil {
		return nil
	}
	return h()
}

func newTid() uint32 {
	for {
		if t := rand.Uint32(); t != 0 && t != 0xffffffff {
			return t
		}
	}
}

// formatItems turns the CIL into log items, each a list of ops: buffer
// items in disk order, then inode items by inode number.
func (j *Journal) formatItems(c *cil, bufs []*cilBuf) ([][]op, error) {
	var items [][]op
	for _, b := range bufs {
		if !anyBit(b.dmap) {
			continue
		}
		runs := chunkRuns(b.dmap)
		f := BufLogFormat{
			Size:    uint16(1 + len(runs)),
			Flags:   uint16(b.typ) << blfTypeShift,
			Len:     uint16(len(b.image) >> ondisk.BBShift),
			Blkno:   b.daddr,
			DataMap: b.dmap,
		}
		fb := make([]byte, f.EncodedSize())
		f.Encode(fb)
		item := []op{{client: ClientTransaction, data: fb}}
		for _, r := range runs {
			item = append(item, op{client: ClientTransaction, data: b.image[r[0]*BufChunkSize : r[1]*BufChunkSize], split: true})
		}
		items = append(items, item)
	}
	inos := make([]uint64, 0, len(c.inodes))
	for ino := range c.inodes {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(a, b int) bool { return inos[a] < inos[b] })
	for _, ino := range inos {
		ci := c.inodes[ino]
		loc := j.g.LocateInode(ino)
		b := c.bufs[loc.ClusterDaddr]
		if b == nil {
			return nil, fmt.Errorf("inode %d logged without its cluster buffer", ino)
		}
		it, err := formatInode(b.image[loc.Offset:loc.Offset+j.g.InodeSize], ino, ci.flags, loc, j.g)
		if err != nil {
			return nil, err
		}
		items = append(items, it.ops())
	}
	return items, nil
}
