package log

import (
	"errors"
	"fmt"
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// ErrDirtyLog: the log holds changes that are not in place yet. The journal
// refuses to write until the kernel or `xfsimg recover` has replayed them.
var ErrDirtyLog = errors.New("log is dirty")

// ErrShutdown wraps the error that stopped the journal (a failed write, or a
// test hook that simulated a crash). Nothing is written after it.
var ErrShutdown = errors.New("journal shut down")

// Hooks are called at the named points of a checkpoint. An error stops the
// checkpoint there, as a crash would: nothing after it is written, and the
// journal refuses further work (Close included).
type Hooks struct {
	AfterDataFlush      func() error // file data the caller wrote is durable
	AfterLogWrite       func() error // log records written, not flushed
	AfterLogFlush       func() error // checkpoint durable: a mount would replay it
	AfterWriteback      func() error // metadata written in place, not flushed
	AfterWritebackFlush func() error // in place and durable; the tail moves next
}

// Options tune the journal.
type Options struct {
	Hooks Hooks
	// CheckpointBytes: checkpoint when the committed-but-unwritten changes
	// would take more log space than this. 0 means a quarter of the log,
	// capped at 8 MiB. Larger values are capped at a quarter of the log:
	// two consecutive checkpoints must fit in the log together (see
	// maxCheckpointBytes).
	CheckpointBytes int
}

// Stats count what the journal wrote.
type Stats struct {
	Transactions int64 `json:"transactions"` // committed transactions that changed something
	Checkpoints  int64 `json:"checkpoints"`
	Records      int64 `json:"records"`      // log records, the unmount record included
	LogBytes     int64 `json:"log_bytes"`    // bytes written to the log: headers, ops, padding
	HeaderBytes  int64 `json:"header_bytes"` // record header blocks
	OpBytes      int64 `json:"op_bytes"`     // op headers and logged regions (the payload)
	PadBytes     int64 `json:"pad_bytes"`    // padding to the record roundoff (512, log sector or stripe unit)
	RegionBytes  int64 `json:"region_bytes"` // logged regions alone (item formats and data)
}

// Journal writes transactions into the file system's internal log. It keeps
// changed metadata in an in-memory buffer cache until a checkpoint writes it
// to the log and then in place.
type Journal struct {
	dev  ondisk.Storage
	sb   *ondisk.Superblock
	g    *ondisk.Geometry
	opt  Options
	area *Area
	meta ondisk.UUID // stamped in metadata (sb_meta_uuid)

	mu        sync.Mutex // guards everything below up to ckptMu
	cond      *sync.Cond // signalled when a buffer lock is released
	bufs      map[int64]*cbuf
	maxBufBBs int64  // longest cached buffer, bounds overlap searches
	evictGen  uint64 // bumped when a buffer leaves the cache
	cil       *cil
	fdblocks  int64 // committed in-core counters
	icount    int64
	ifree     int64
	reserved  int64  // blocks held by open transactions and delayed allocations
	delalloc  int64  // the part of reserved held by delayed allocations (Reserve)
	setAside  int64  // free blocks no reservation may take (xfs_alloc_set_aside)
	written   uint64 // sequence of the last checkpoint written back
	stats     Stats
	err       error // non-nil once shut down
	closed    bool

	ckptMu sync.Mutex // one checkpoint at a time; held across its I/O
	w      *logWriter // guarded by ckptMu
}

// Open prepares to write transactions into the log of the file system on
// dev. sb must be the verified primary superblock read from dev. The log
// must be clean: a dirty log is refused with an error wrapping ErrDirtyLog.
func Open(dev ondisk.Storage, sb *ondisk.Superblock, g *ondisk.Geometry, opt Options) (*Journal, error) {
	if err := sb.Verify(); err != nil {
		return nil, err
	}
	if err := sb.WritableFeatures(); err != nil {
		return nil, err
	}
	if err := checkOnDiskSuperblock(dev, sb); err != nil {
		return nil, err
	}
	area := NewArea(dev, g, sb.UUID)
	st, err := area.FindState()
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	if !st.Clean {
		return nil, fmt.Errorf("%w: run xfsimg recover or mount the file system first", ErrDirtyLog)
	}
	w, err := newLogWriter(area, sb, st)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		dev: dev, sb: sb, g: g, opt: opt, area: area, meta: sb.MetadataUUID(),
		bufs:     make(map[int64]*cbuf),
		fdblocks: int64(sb.FDBlocks), icount: int64(sb.ICount), ifree: int64(sb.IFree),
		setAside: int64(sb.AGCount) * 8,
		w:        w,
	}
	j.cond = sync.NewCond(&j.mu)
	j.cil = newCIL(1)
	limit := int(w.maxCheckpointBytes() / 2)
	if j.opt.CheckpointBytes <= 0 {
		j.opt.CheckpointBytes = min(limit, 8<<20)
	}
	j.opt.CheckpointBytes = min(j.opt.CheckpointBytes, limit)
	return j, nil
}

// checkOnDiskSuperblock makes sure sb is what the device holds: the journal
// logs the primary superblock from its cache, and counters from sb.
func checkOnDiskSuperblock(dev ondisk.Storage, sb *ondisk.Superblock) error {
	buf := ondisk.AlignedBuffer(int(sb.SectSize), 4096)
	if _, err := dev.ReadAt(buf, 0); err != nil {
		return fmt.Errorf("read superblock: %w", err)
	}
	disk, err := ondisk.DecodeSuperblock(buf)
	if err != nil {
		return err
	}
	if err := disk.Verify(); err != nil {
		return err
	}
	if disk.UUID != sb.UUID || disk.FDBlocks != sb.FDBlocks || disk.ICount != sb.ICount || disk.IFree != sb.IFree ||
		disk.LogStart != sb.LogStart || disk.LogBlocks != sb.LogBlocks {
		return fmt.Errorf("superblock changed on disk since it was read")
	}
	return nil
}

// Geometry and Superblock give what the journal was opened with.
func (j *Journal) Geometry() *ondisk.Geometry     { return j.g }
func (j *Journal) Superblock() *ondisk.Superblock { return j.sb }

// FreeBlocks is the in-core free block count: committed changes included,
// blocks reserved by open transactions excluded.
func (j *Journal) FreeBlocks() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fdblocks - j.reserved
}

// Counters returns the committed in-core superblock counters.
func (j *Journal) Counters() (fdblocks, icount, ifree int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fdblocks, j.icount, j.ifree
}

// Stats returns what the journal has written so far.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// Err is the error that shut the journal down, or nil.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// shutdown records the first fatal error; later calls keep the first.
func (j *Journal) shutdown(err error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = fmt.Errorf("%w: %w", ErrShutdown, err)
	}
	return j.err
}

// Close writes everything committed, logs the superblock with the in-core
// counters (the kernel does the same at unmount, since v5 counters are
// lazy), writes it in place and ends the log with an unmount record, so
// that the log is clean. A journal that never committed anything writes
// nothing. Close does not close dev. After a shutdown Close writes nothing
// and returns the shutdown error.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	if j.err != nil {
		err := j.err
		j.closed = true
		j.mu.Unlock()
		return err
	}
	open := j.stats.Transactions > 0 || !j.cil.empty()
	j.mu.Unlock()
	if open {
		if err := j.logSuperblock(); err != nil {
			return err
		}
		if err := j.Checkpoint(); err != nil {
			return err
		}
		if err := j.writeUnmount(); err != nil {
			return err
		}
	}
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	return nil
}

// logSuperblock commits a transaction that logs the primary superblock;
// the checkpoint fills in the counters.
func (j *Journal) logSuperblock() error {
	tx, err := j.Begin(Reservation{})
	if err != nil {
		return err
	}
	b, err := tx.ReadBuf(0, int(j.sb.SectSize), BufSB)
	if err != nil {
		tx.Cancel()
		return err
	}
	tx.LogBuf(b, 0, sbLoggedBytes)
	return tx.Commit()
}

func (j *Journal) writeUnmount() error {
	j.ckptMu.Lock()
	defer j.ckptMu.Unlock()
	if err := j.Err(); err != nil {
		return err
	}
	_, st, err := j.w.writeUnmount()
	j.addStats(st, 1)
	if err != nil {
		return j.shutdown(err)
	}
	if err := j.dev.Flush(); err != nil {
		return j.shutdown(err)
	}
	return nil
}

func (j *Journal) addStats(st recStats, recs int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stats.Records += recs
	j.stats.LogBytes += st.total
	j.stats.HeaderBytes += st.header
	j.stats.OpBytes += st.ops
	j.stats.PadBytes += st.pad
	j.stats.RegionBytes += st.regions
}
