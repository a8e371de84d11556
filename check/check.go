// Package check is an offline consistency checker for XFS v5 file
// systems: it reads every piece of metadata it can reach and checks it
// against the format and against the rest, as `xfs_repair -n` does, and
// says in one line per finding where the problem is, what was expected and
// what was found. It never writes.
//
// The work is split as xfs_repair splits it. Per AG (in parallel, on a
// bounded pool of workers): the AG headers, the free-space, inode,
// reference-count and reverse-mapping btrees, and every inode of every
// inode chunk, read in large sequential reads, with their forks, BMBTs,
// directories and symlinks. Then per AG again: every block claimed by
// anything is swept against the free space, so that each block is free or
// used exactly once (or shared as the refcount btree says). Then once for
// the whole file system: directory entries against the inodes they name,
// "..", link counts, reachability from the root, and the superblock
// counters.
//
// Every count read from disk is bounded by the structure it lives in
// before anything is allocated from it, every walk visits each block at
// most once, and damage is reported and stepped over, so that a damaged
// image gives findings, not a panic or a hang.
package check

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// Options tune a check.
type Options struct {
	// Workers is how many AGs are checked at once; 0 means a pool sized
	// for the machine (a few more than the CPUs, so that I/O overlaps).
	Workers int
	// Progress, when set, is called from time to time with the number of
	// inodes checked so far and the number the AGIs announce. It may be
	// called from several goroutines, never concurrently.
	Progress func(done, total int64)
	// MaxPerKind caps the findings kept per kind (the rest are counted);
	// 0 means 200.
	MaxPerKind int
}

// Run checks the file system and returns what it found. An error means
// the check could not run at all (the device cannot be read); a damaged
// file system is a Report with findings.
func Run(f *xfs.FS, opts Options) (*Report, error) {
	c := newChecker(f, opts)
	if err := c.run(); err != nil {
		return nil, err
	}
	max := opts.MaxPerKind
	if max <= 0 {
		max = 200
	}
	c.report.finalize(max)
	return c.report, nil
}

// checker is the state of one run.
type checker struct {
	f    *xfs.FS
	g    *ondisk.Geometry
	sb   *ondisk.Superblock
	opts Options
	rd   *reader

	logState *log.State // nil when the log could not be read
	dirtyLog bool

	ags []*agResult // per AG, filled by the worker that scanned it

	mu       sync.Mutex
	report   *Report
	progress struct {
		sync.Mutex
		done, total atomic.Int64
		last        int64
	}
}

func newChecker(f *xfs.FS, opts Options) *checker {
	return &checker{
		f: f, g: f.Geo, sb: f.SB, opts: opts,
		rd:     &reader{dev: f.Dev, align: max(f.Dev.SectorSize(), 512)},
		report: &Report{Findings: []Finding{}, Kinds: []string{}},
	}
}

// add records findings; safe for concurrent use.
func (c *checker) add(fs ...Finding) {
	for i := range fs {
		fs[i].Message = strings.TrimSuffix(fs[i].Message, ": "+ondisk.ErrCorrupt.Error())
	}
	c.mu.Lock()
	c.report.Findings = append(c.report.Findings, fs...)
	c.mu.Unlock()
}

// finding builds a Finding with no location.
func finding(kind string, format string, args ...any) Finding {
	return Finding{Kind: kind, Severity: Problem, AG: -1, Block: -1, Inode: -1, Message: fmt.Sprintf(format, args...)}
}

func (fd Finding) at(ag int, block int64) Finding { fd.AG, fd.Block = ag, block; return fd }
func (fd Finding) ino(ino uint64) Finding         { fd.Inode = int64(ino); return fd }
func (fd Finding) exp(e, f any) Finding {
	fd.Expected, fd.Found = fmt.Sprint(e), fmt.Sprint(f)
	return fd
}
func (fd Finding) info() Finding { fd.Severity = Info; return fd }

func (c *checker) workers() int {
	n := c.opts.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0) + 2
	}
	return max(1, min(n, int(c.g.AGCount)))
}

// tick advances the progress count by n inodes.
func (c *checker) tick(n int64) {
	if c.opts.Progress == nil {
		return
	}
	done := c.progress.done.Add(n)
	c.progress.Lock()
	defer c.progress.Unlock()
	if done-c.progress.last >= 512 || done >= c.progress.total.Load() {
		c.progress.last = done
		c.opts.Progress(done, max(c.progress.total.Load(), done))
	}
}

func (c *checker) run() error {
	c.report.Stats.AGs = int(c.g.AGCount)
	c.checkLog()
	c.checkSuperblock()
	c.ags = make([]*agResult, c.g.AGCount)
	for i := range c.ags {
		c.ags[i] = &agResult{agno: uint32(i)}
	}
	if c.opts.Progress != nil {
		var total int64
		for agno := uint32(0); agno < c.g.AGCount; agno++ {
			if a, err := c.f.AGIRaw(agno); err == nil {
				total += int64(min(a.Count, c.maxInodes(agno)))
			}
		}
		c.progress.total.Store(total)
		c.opts.Progress(0, total)
	}

	// Phase 1: each AG's headers, btrees and inodes, on a worker pool.
	// Claims on blocks are collected per target AG by each worker.
	nw := c.workers()
	outs := make([]*workerOut, nw)
	next := make(chan uint32)
	var wg sync.WaitGroup
	for w := range outs {
		outs[w] = newWorkerOut(c.g.AGCount)
		wg.Add(1)
		go func(out *workerOut) {
			defer wg.Done()
			for agno := range next {
				c.scanAG(agno, out)
			}
		}(outs[w])
	}
	for agno := uint32(0); agno < c.g.AGCount; agno++ {
		next <- agno
	}
	close(next)
	wg.Wait()
	for _, o := range outs {
		c.add(o.findings...)
		o.findings = nil
	}

	// Phase 2: per AG, every claim against the free space.
	claims := make([][]claim, c.g.AGCount)
	for _, o := range outs {
		for agno, cl := range o.claims {
			claims[agno] = append(claims[agno], cl...)
			o.claims[agno] = nil
		}
	}
	next2 := make(chan uint32)
	for range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for agno := range next2 {
				c.add(c.sweepAG(agno, claims[agno])...)
				claims[agno] = nil
			}
		}()
	}
	for agno := uint32(0); agno < c.g.AGCount; agno++ {
		next2 <- agno
	}
	close(next2)
	wg.Wait()

	// Phase 3: the namespace and the counters.
	var edges []edge
	for _, o := range outs {
		edges = append(edges, o.edges...)
		c.report.Stats.Inodes += o.stats.Inodes
		c.report.Stats.Directories += o.stats.Directories
		c.report.Stats.Entries += o.stats.Entries
		c.report.Stats.Blocks += o.stats.Blocks
		c.report.Stats.Extents += o.stats.Extents
	}
	c.checkNamespace(edges)
	c.checkCounters()
	return nil
}

// maxInodes is how many inodes AG agno can hold at most.
func (c *checker) maxInodes(agno uint32) uint32 {
	return uint32(min(uint64(c.g.AGSize(agno))<<c.g.InoPBLog, 1<<32-1))
}

// checkLog finds the log head, whether the log is clean, and keeps the
// head for the LSN checks.
func (c *checker) checkLog() {
	st, err := log.NewArea(c.f.Dev, c.g, c.sb.UUID).FindState()
	if err != nil {
		c.report.Log.Error = err.Error()
		c.add(finding(KindLogCorrupt, "cannot find the log head: %v; metadata LSNs are not checked", err))
		return
	}
	if st.LastRecord >= 0 && (int64(st.LastLSN.Block()) != st.LastRecord || st.Head.Less(st.LastLSN)) {
		// The head LSN comes from this record: if it lies, every LSN
		// comparison would too.
		c.report.Log.Error = "last record's LSN does not match its place"
		c.add(finding(KindLogCorrupt, "the last log record (at log block %d) carries an LSN that is not its own; metadata LSNs are not checked", st.LastRecord).
			exp(fmt.Sprintf("%d:%d", st.Head.Cycle(), st.LastRecord), fmt.Sprintf("%d:%d", st.LastLSN.Cycle(), st.LastLSN.Block())))
		return
	}
	c.logState = st
	c.report.Log.Clean = st.Clean
	c.report.Log.HeadCycle, c.report.Log.HeadBlock = st.Head.Cycle(), st.Head.Block()
	if !st.Clean {
		c.dirtyLog = true
		c.add(finding(KindLogDirty, "the log holds changes that are not yet written in place (last record at log block %d); "+
			"mount the file system or run `xfsimg recover` to replay it, then check again", st.LastRecord).
			exp("a clean log", "a dirty log"))
	}
}

// lsnAhead reports whether a metadata LSN is newer than the log head: a
// recovery would then skip changes it must replay.
func (c *checker) lsnAhead(lsn uint64) bool {
	if c.logState == nil || lsn == 0 || lsn == ^uint64(0) {
		return false
	}
	h := c.logState.Head
	cyc, blk := uint32(lsn>>32), uint32(lsn)
	return cyc > h.Cycle() || (cyc == h.Cycle() && blk > h.Block())
}

func (c *checker) lsnFinding(lsn uint64, what string) Finding {
	h := c.logState.Head
	return finding(KindLSNAhead, "%s LSN is ahead of the log head", what).
		exp(fmt.Sprintf("at most %d:%d", h.Cycle(), h.Block()), fmt.Sprintf("%d:%d", uint32(lsn>>32), uint32(lsn)))
}

// checkSuperblock checks what the primary superblock says about the
// geometry that xfs.Open did not already refuse, as xfs_repair's
// superblock checks do.
func (c *checker) checkSuperblock() {
	sb := c.sb
	if c.lsnAhead(sb.LSN) {
		c.add(c.lsnFinding(sb.LSN, "superblock").at(0, 0))
	}
	bad := func(format string, args ...any) Finding {
		return finding(KindSBHeader, "superblock: "+format, args...).at(0, 0)
	}
	if sb.FeaturesIncompat&ondisk.IncompatNeedsRepair != 0 {
		c.add(bad("marked as needing repair (NEEDSREPAIR)").exp("not set", "set"))
	}
	if u := sb.FeaturesCompat; u != 0 {
		c.add(bad("unknown compatible features 0x%x", u).exp(0, fmt.Sprintf("0x%x", u)))
	}
	if u := sb.FeaturesROCompat &^ ondisk.SupportedROCompat; u != 0 {
		c.add(bad("unknown read-only compatible features 0x%x", u).exp(0, fmt.Sprintf("0x%x", u)))
	}
	if (sb.Unit == 0) != (sb.Width == 0) || (sb.Unit != 0 && sb.Width%sb.Unit != 0) {
		c.add(bad("stripe width is not a multiple of the stripe unit").exp(fmt.Sprintf("a multiple of %d", sb.Unit), sb.Width))
	}
	if sb.HasSpinodes() {
		chunk := uint32(ondisk.InodesPerChunk * int(sb.InodeSize) / int(sb.BlockSize))
		if sb.InoAlignmt != max(chunk, 1) {
			c.add(bad("inode alignment must be the chunk size with sparse inodes").exp(max(chunk, 1), sb.InoAlignmt))
		}
		if want := max(uint32(c.g.ClusterSize)>>c.g.BlockLog, 1); sb.SpinoAlign != want {
			c.add(bad("sparse inode alignment is not the inode cluster size").exp(want, sb.SpinoAlign))
		}
	}
	if sb.RBlocks != 0 || sb.RExtents != 0 {
		c.add(finding(KindSBHeader, "a realtime device is configured; realtime files are not checked").info())
	}
	if buf, err := c.rd.read(0, c.g.SectSize); err == nil {
		c.sbTail(buf, 0)
	}
}

// sbTail: the bytes of a superblock sector past the structure are zero.
func (c *checker) sbTail(buf []byte, agno uint32) Finding {
	for i := sbStructSize; i < len(buf); i++ {
		if buf[i] != 0 {
			f := finding(KindSBHeader, "superblock sector has data past the superblock at byte %d", i).at(int(agno), 0).exp(0, fmt.Sprintf("0x%02x", buf[i]))
			if agno > 0 {
				f.Kind = KindSBSecondary
				return f
			}
			c.add(f)
			return f
		}
	}
	return Finding{}
}

// sbStructSize is the size of the v5 superblock structure (to the end of
// sb_meta_uuid); the rest of its sector is zero.
const sbStructSize = 264
