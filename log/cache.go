package log

import (
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// The buffer cache is an overlay of metadata buffers over the device, keyed
// by disk address. It holds a buffer while a transaction uses it and, once
// committed, until a checkpoint has written it in place. Readers see the
// committed contents: the device, with every committed-but-unwritten change
// laid over it.
//
// Each buffer has a lock owned by one transaction from its first ReadBuf or
// NewBuf until Commit or Cancel, as the kernel's xfs_buf lock is held by a
// transaction. Transactions that lock several buffers must take them in a
// consistent order (AG headers by AG number, as the kernel does), or two of
// them can wait for each other forever.

// maxBufBytes is the largest buffer the log format can describe: the dirty
// map of a buffer item covers 64 KiB (XFS_BLF_DATAMAP_SIZE).
const maxBufBytes = maxBufMapWords * 32 * BufChunkSize

// cbuf is one cached buffer.
type cbuf struct {
	daddr int64
	data  []byte // live contents; only the owner may change them
	owner *Tx
	// While owned: the committed contents for other readers and for Cancel.
	// absent means there were none in the cache (read the device).
	snap   []byte
	spare  []byte // a former snap's storage, reused by the next owner
	absent bool
	// seq is the checkpoint sequence of the CIL that last took this buffer;
	// the buffer is pending write-back while seq > Journal.written.
	seq uint64
}

func (b *cbuf) bbs() int64 { return int64(len(b.data)) >> ondisk.BBShift }

// Buf is a buffer locked by a transaction. Data is the buffer's contents in
// on-disk format; change it in place and report the change with LogBuf (or
// LogInode for inodes in a cluster buffer).
type Buf struct {
	Daddr int64
	Data  []byte
	Type  BufType
	tb    *txBuf
}

// ReadMeta returns a copy of length bytes at disk address daddr as the
// committed state has them: the device with every committed change over
// it. Changes of transactions still open are not visible. It implements
// xfs.MetaReader, so the read path can run over the journal.
func (j *Journal) ReadMeta(daddr int64, length int) ([]byte, error) {
	return j.readMeta(daddr, length, nil)
}

// readMeta overlays the cache on a device read; buffers owned by tx show
// tx's own changes.
func (j *Journal) readMeta(daddr int64, length int, tx *Tx) ([]byte, error) {
	if daddr < 0 || length <= 0 || daddr<<ondisk.BBShift+int64(length) > j.dev.Size() {
		return nil, fmt.Errorf("metadata read of %d bytes at daddr %d outside the device", length, daddr)
	}
	out := ondisk.AlignedBuffer(length, j.align(length))
	for {
		j.mu.Lock()
		gen := j.evictGen
		j.mu.Unlock()
		// Read the device without the lock; a buffer written back and
		// evicted meanwhile would leave the read stale, so retry then.
		if _, err := j.dev.ReadAt(out, daddr<<ondisk.BBShift); err != nil {
			return nil, err
		}
		j.mu.Lock()
		if j.evictGen != gen {
			j.mu.Unlock()
			continue
		}
		end := daddr + int64((length+ondisk.BBSize-1)>>ondisk.BBShift)
		j.overlapping(daddr, end, func(b *cbuf) {
			src := b.data
			if b.owner != nil && b.owner != tx {
				if b.absent {
					return
				}
				src = b.snap
			}
			overlay(out, daddr, src, b.daddr)
		})
		j.mu.Unlock()
		return out, nil
	}
}

// overlay copies the part of src (at disk address sd) that falls in dst (at
// disk address dd).
func overlay(dst []byte, dd int64, src []byte, sd int64) {
	so, do := int64(0), (sd-dd)<<ondisk.BBShift
	if do < 0 {
		so, do = -do, 0
	}
	if so >= int64(len(src)) || do >= int64(len(dst)) {
		return
	}
	copy(dst[do:], src[so:])
}

// overlapping calls fn for every cached buffer that intersects the disk
// address range [start, end). Caller holds j.mu.
func (j *Journal) overlapping(start, end int64, fn func(*cbuf)) {
	if len(j.bufs) == 0 {
		return
	}
	// Few buffers: walk them all. Many: probe the addresses that could
	// start an overlapping buffer.
	if int64(len(j.bufs)) < end-start+j.maxBufBBs {
		for _, b := range j.bufs {
			if b.daddr < end && b.daddr+b.bbs() > start {
				fn(b)
			}
		}
		return
	}
	for d := start - j.maxBufBBs + 1; d < end; d++ {
		if b, ok := j.bufs[d]; ok && b.daddr+b.bbs() > start {
			fn(b)
		}
	}
}

// lockBuf returns the cached buffer at daddr locked for tx, creating it
// (with absent set and no data) when the cache has none. It waits while
// another transaction owns it. Caller holds j.mu.
func (j *Journal) lockBuf(tx *Tx, daddr int64, length int) (b *cbuf, created bool, err error) {
	for {
		if j.err != nil {
			return nil, false, j.err
		}
		b = j.bufs[daddr]
		if b == nil {
			break
		}
		if len(b.data) != length {
			return nil, false, fmt.Errorf("buffer at daddr %d: asked for %d bytes, cached with %d", daddr, length, len(b.data))
		}
		if b.owner == nil || b.owner == tx {
			if b.owner == nil {
				b.owner = tx
				b.snap = append(b.spare[:0], b.data...)
				b.absent = false
			}
			return b, false, nil
		}
		j.cond.Wait()
	}
	end := daddr + int64(length>>ondisk.BBShift)
	var clash *cbuf
	j.overlapping(daddr, end, func(o *cbuf) { clash = o })
	if clash != nil {
		return nil, false, fmt.Errorf("buffer at daddr %d (%d bytes) overlaps the cached buffer at daddr %d (%d bytes)",
			daddr, length, clash.daddr, len(clash.data))
	}
	b = &cbuf{daddr: daddr, owner: tx, absent: true, data: ondisk.AlignedBuffer(length, j.align(length))}
	j.bufs[daddr] = b
	j.maxBufBBs = max(j.maxBufBBs, int64(length>>ondisk.BBShift))
	return b, true, nil
}

// align is the alignment a buffer of length bytes needs for direct I/O on
// the device: its logical sector (the device bounces anything else), or
// 4096 when that is unknown; less padding than a page for small buffers.
func (j *Journal) align(length int) int {
	a := j.dev.SectorSize()
	if a < ondisk.BBSize || a&(a-1) != 0 {
		a = 4096
	}
	return min(a, 4096)
}

// unlockBuf releases tx's lock. A buffer with nothing pending leaves the
// cache: the device has its contents. Caller holds j.mu.
func (j *Journal) unlockBuf(b *cbuf) {
	if b.snap != nil {
		b.spare = b.snap
	}
	b.owner, b.snap, b.absent = nil, nil, false
	if b.seq <= j.written {
		j.evict(b)
	}
	j.cond.Broadcast()
}

// evict drops a buffer whose contents are on the device. Caller holds j.mu.
func (j *Journal) evict(b *cbuf) {
	if j.bufs[b.daddr] == b {
		delete(j.bufs, b.daddr)
		j.evictGen++
	}
}
