package check

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/xfsimg/xfsimg/agi"
	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/ondisk"
)

// readBatch is the largest inode-chunk read: consecutive chunks are read
// together, so that an AG's inodes come in a few large sequential reads.
const readBatch = 2 << 20

// scanInodes reads every inode chunk the inobt lists and checks each
// inode in it. Consecutive chunks are read as one batch, and the next
// batch is read while the current one is checked, so that the device is
// kept busy.
func (s *agScan) scanInodes() {
	g := s.g
	chunkBytes := int64(ondisk.InodesPerChunk * g.InodeSize)
	offset := func(r ondisk.InobtRec) int64 {
		return s.g.AGBDaddr(s.agno, g.AginoAgbno(r.StartIno))<<ondisk.BBShift + int64(g.AginoOffset(r.StartIno)*g.InodeSize)
	}
	if cap(s.res.inodes) == 0 {
		s.res.inodes = make([]inodeInfo, 0, min(len(s.recs)*ondisk.InodesPerChunk, 1<<20))
	}
	type batch struct {
		i, j  int   // records recs[i:j]
		start int64 // byte offset of buf
		buf   []byte
		err   error
	}
	defer s.startDirs()()
	// Two buffers: one being checked, one being read. A batch bridges
	// small gaps between chunks (file data, directory blocks): one larger
	// read costs less than two requests.
	free := make(chan []byte, 2)
	free <- s.out.batch
	free <- s.out.batch2
	ready := make(chan batch, 1)
	go func() {
		defer close(ready)
		for i := 0; i < len(s.recs); {
			start := offset(s.recs[i])
			end := start + chunkBytes
			j := i + 1
			for ; j < len(s.recs); j++ {
				o := offset(s.recs[j])
				if o < end || o-end > prefetchGap || o+chunkBytes-start > readBatch {
					break
				}
				end = o + chunkBytes
			}
			keep := <-free
			buf, err := s.c.rd.readInto(&keep, start>>ondisk.BBShift, int(end-start))
			if err != nil {
				buf = keep
			}
			ready <- batch{i, j, start, buf, err}
			i = j
		}
	}()
	for b := range ready {
		if b.err != nil {
			s.add(s.here(finding(KindRead, "inode chunks %d..%d: %v", s.recs[b.i].StartIno, s.recs[b.j-1].StartIno, b.err), g.AginoAgbno(s.recs[b.i].StartIno)))
		} else {
			for k := b.i; k < b.j; k++ {
				o := offset(s.recs[k]) - b.start
				s.chunk(s.recs[k], b.buf[o:o+chunkBytes])
			}
			s.flushDirs(b.start, b.buf)
		}
		free <- b.buf[:0]
	}
	s.out.batch, s.out.batch2 = <-free, <-free
	s.res.chunks = make([]chunkInfo, len(s.recs))
	for i, r := range s.recs {
		s.res.chunks[i] = chunkInfo{startino: r.StartIno, holes: agi.HoleMask(r)}
	}
}

// chunk checks the 64 inodes of one chunk.
func (s *agScan) chunk(r ondisk.InobtRec, buf []byte) {
	isz := s.g.InodeSize
	holes := agi.HoleMask(r)
	n := 0
	for i := 0; i < ondisk.InodesPerChunk; i++ {
		if holes&(1<<i) != 0 {
			continue
		}
		n++
		ino := s.g.Ino(s.agno, r.StartIno+uint32(i))
		s.inode(ino, buf[i*isz:(i+1)*isz], r.Free&(1<<i) != 0)
	}
	s.c.tick(int64(n))
}

// inode checks one inode: its core, how the inobt sees it, its forks and
// what they map, and, for directories and symlinks, their contents.
func (s *agScan) inode(ino uint64, buf []byte, inobtFree bool) {
	c, g := s.c, s.g
	agbno := g.AginoAgbno(g.InoAgino(ino))
	at := func(f Finding) Finding { return f.at(int(s.agno), int64(agbno)).ino(ino) }
	d, err := ondisk.DecodeDinode(buf)
	if err != nil || d == nil {
		s.add(at(finding(KindInodeCorrupt, "not an inode: %v", err)))
		if !inobtFree {
			s.res.inodes = append(s.res.inodes, inodeInfo{ino: ino, flags: fBad})
		}
		return
	}
	if c.lsnAhead(d.LSN) {
		s.add(at(c.lsnFinding(d.LSN, "inode")))
	}
	if !d.CRCOK() {
		s.add(at(finding(KindCRC, "inode has a bad CRC").exp(fmt.Sprintf("0x%08x", ondisk.Checksum(buf, ondisk.DinodeCRCOff)), fmt.Sprintf("0x%08x", d.CRC))))
		// Go on with the contents, as xfs_repair does: the CRC says the
		// inode was damaged, the fields say how.
		fixed := append([]byte(nil), buf...)
		ondisk.StampCRC(fixed, ondisk.DinodeCRCOff)
		if d2, err := ondisk.DecodeDinode(fixed); err == nil {
			d, buf = d2, fixed
		}
	}
	for _, p := range s.inodeFields(ino, d, d.Mode != 0) {
		s.add(at(finding(KindInodeCorrupt, "%s", p)))
	}
	if (d.Mode == 0) != inobtFree {
		if inobtFree {
			s.add(at(finding(KindInobtFree, "inode in use is marked free in the inobt").exp("in use", "free")))
		} else {
			s.add(at(finding(KindInobtFree, "free inode is marked in use in the inobt").exp("free", "in use")))
		}
	}
	if d.Mode == 0 {
		if err := d.Verify(g, ino); err != nil {
			s.add(at(finding(KindInodeCorrupt, "free inode: %v", unwrapInode(err, ino))))
		}
		return
	}
	s.out.stats.Inodes++
	info := inodeInfo{ino: ino, mode: d.Mode, nlink: d.Nlink, next: d.NextUnlinked}
	if s.c.metaInode(ino) {
		info.flags |= fMeta
	}
	if d.IsDir() {
		info.flags |= fDir
	}
	// The counts that depend on what the forks hold are checked below with
	// their own kinds; the rest of the kernel's inode verifier here.
	loose := *d
	loose.NBlocks = 1 << 62
	if err := loose.Verify(g, ino); err != nil {
		s.add(at(finding(KindInodeCorrupt, "%v", unwrapInode(err, ino))))
		info.flags |= fBad
		s.res.inodes = append(s.res.inodes, info)
		return
	}
	data, dok := s.fork(ino, d, buf, bmbt.DataFork, at)
	attr, aok := s.fork(ino, d, buf, bmbt.AttrFork, at)
	if dok && aok {
		if want := data.blocks + attr.blocks; want != d.NBlocks {
			s.add(at(finding(KindInodeNblocks, "nblocks is not the blocks the forks map and their BMBTs use").
				exp(fmt.Sprintf("%d (%d data + %d attr + %d BMBT)", want, data.mapped, attr.mapped, data.bmbt+attr.bmbt), d.NBlocks)))
		}
	}
	switch {
	case d.IsDir() && dok:
		j := dirJob{ino: ino, format: d.Format, size: d.Size, exts: data.extents, idx: len(s.res.inodes), agbno: agbno}
		if d.Format == ondisk.FmtLocal {
			j.local = append([]byte(nil), ondisk.DataFork(buf, d, g)...)
		}
		s.pending = append(s.pending, j)
	case d.IsSymlink() && dok:
		s.symlink(ino, d, buf, data.extents, at)
	}
	s.res.inodes = append(s.res.inodes, info)
}

// Inode flag bits this checker knows (di_flags, di_flags2).
const (
	knownFlags  = 1<<15 - 1
	knownFlags2 = ondisk.DiFlags2Dax | ondisk.DiFlags2Reflink | ondisk.DiFlags2Cowextsize | ondisk.DiFlags2Bigtime | ondisk.DiFlags2Nrext64
)

// inodeFields checks the fields that the kernel's verifier leaves to
// xfs_repair or checks before the mode matters: on any inode the flag bits
// and the unlinked pointer; on inodes in use the timestamps, the obsolete
// link count and the realtime inodes of a file system without realtime
// (xfs_repair ignores those fields of free inodes).
func (s *agScan) inodeFields(ino uint64, d *ondisk.Dinode, inUse bool) []string {
	var out []string
	g := s.g
	if u := d.Flags &^ knownFlags; u != 0 {
		out = append(out, fmt.Sprintf("unknown di_flags bits 0x%x", u))
	}
	if u := d.Flags2 &^ knownFlags2; u != 0 {
		out = append(out, fmt.Sprintf("unknown di_flags2 bits 0x%x", u))
	}
	if d.Flags2&ondisk.DiFlags2Reflink != 0 && !s.c.sb.HasReflink() {
		out = append(out, "reflink flag on a file system without reflink")
	}
	if n := d.NextUnlinked; n != ondisk.NullAGIno {
		agbno := uint64(n) >> g.InoPBLog
		if (g.AGInoLog < 32 && n>>g.AGInoLog != 0) || agbno <= uint64(ondisk.AGFLBlock(g)) || agbno >= uint64(s.size) {
			out = append(out, fmt.Sprintf("next_unlinked 0x%x is neither null nor an inode of the AG", n))
		}
	}
	if !inUse {
		return out
	}
	if d.Flags2&ondisk.DiFlags2Bigtime == 0 {
		for _, ts := range []struct {
			name string
			t    ondisk.Timestamp
		}{{"atime", d.Atime}, {"mtime", d.Mtime}, {"ctime", d.Ctime}, {"crtime", d.Crtime}} {
			if ts.t.Nsec >= 1e9 {
				out = append(out, fmt.Sprintf("%s nanoseconds %d, not below one second", ts.name, ts.t.Nsec))
			}
		}
	}
	if d.Version == 3 && d.OnLink != 0 {
		out = append(out, fmt.Sprintf("obsolete v1 link count field is %d on a v3 inode", d.OnLink))
	}
	sb := s.c.sb
	if (ino == sb.RBMIno || ino == sb.RSumIno) && sb.RBlocks == 0 && d.Size != 0 {
		out = append(out, fmt.Sprintf("realtime inode has size %d without a realtime device", d.Size))
	}
	return out
}

// unwrapInode drops the "inode N: " prefix the verifier adds, since the
// finding names the inode.
func unwrapInode(err error, ino uint64) string {
	s := err.Error()
	p := fmt.Sprintf("inode %d: ", ino)
	for len(s) >= len(p) && s[:len(p)] == p {
		s = s[len(p):]
	}
	return s
}

// metaInode reports the inodes the superblock names besides the root:
// they are in use without a name.
func (c *checker) metaInode(ino uint64) bool {
	sb := c.sb
	for _, m := range []uint64{sb.RBMIno, sb.RSumIno, sb.UQuotIno, sb.GQuotIno, sb.PQuotIno} {
		if m == ino && m != 0 && m != ondisk.NullFSIno {
			return true
		}
	}
	return false
}

// forkResult is what one fork maps.
type forkResult struct {
	extents []ondisk.Extent
	mapped  uint64 // blocks in the extents
	bmbt    uint64 // BMBT blocks (the root in the inode excluded)
	blocks  uint64 // mapped + bmbt
}

// fork reads one fork's mapping (extent list or BMBT), checks it and
// claims its blocks. ok is false when the counts cannot be trusted.
func (s *agScan) fork(ino uint64, d *ondisk.Dinode, buf []byte, which bmbt.Fork, at func(Finding) Finding) (forkResult, bool) {
	g := s.g
	var res forkResult
	m := &bmbt.Mapping{Geo: g, Store: bmbt.BlockStore{Geo: g, Read: s.c.rd.read}, Ino: ino}
	own := ownData
	if which == bmbt.AttrFork {
		if !d.HasAttrFork() {
			return res, true
		}
		m.Format, m.Fork, m.NExtents = d.AFormat, ondisk.AttrFork(buf, d, g), uint64(d.ANExtents)
		own = ownAttr
	} else {
		m.Format, m.Fork, m.NExtents = d.Format, ondisk.DataFork(buf, d, g), d.NExtents
	}
	name := which.String()
	switch m.Format {
	case ondisk.FmtExtents:
		exts, err := ondisk.DecodeExtents(m.Fork, m.NExtents)
		if err != nil {
			s.add(at(finding(KindInodeCorrupt, "%s: %v", name, err)))
			return res, false
		}
		res.extents = exts
	case ondisk.FmtBtree:
		t, err := m.Tree()
		if err != nil {
			s.add(at(finding(KindInodeCorrupt, "%s: %v", name, err)))
			return res, false
		}
		// A BMBT never holds more records than the inode's count says (the
		// verifier bounded it); a few more are read so that a count that is
		// too small shows, but no more than that.
		limit := m.NExtents + 1
		var exts []ondisk.Extent
		st, probs := s.c.walkTree(t, s.out, ownBmbt, func(r []byte) {
			if uint64(len(exts)) < limit {
				exts = append(exts, ondisk.DecodeExtent(r))
			}
		})
		res.bmbt = uint64(st.Blocks)
		res.extents = exts
		if probs > 0 {
			// The extents that could be read are still claimed, so that
			// their blocks do not show up as lost; the counts are not
			// compared, the damage is reported.
			s.extents(ino, exts, own, name, at)
			return res, false
		}
		if uint64(st.Records) != m.NExtents {
			f := finding(KindInodeNextents, "%s extent count is not the number of BMBT records", name).exp(st.Records, m.NExtents)
			s.add(at(f))
		}
	default:
		return res, true
	}
	ok := s.extents(ino, res.extents, own, name, at)
	for _, e := range res.extents {
		res.mapped += e.BlockCount
	}
	res.blocks = res.mapped + res.bmbt
	s.out.stats.Extents += int64(len(res.extents))
	return res, ok
}

// extents checks a fork's extent list (the kernel's per-record rules and
// the order of a mapping) and claims each valid extent's blocks.
func (s *agScan) extents(ino uint64, exts []ondisk.Extent, own ownerKind, name string, at func(Finding) Finding) bool {
	g := s.g
	ok := true
	lo := uint64(ondisk.AGFLBlock(g))
	var prevEnd uint64
	for i, e := range exts {
		switch {
		case e.BlockCount == 0:
			s.add(at(finding(KindExtentRange, "%s extent %d %v has no blocks", name, i, e)))
			ok = false
			continue
		case e.End() > ondisk.MaxFileOff:
			s.add(at(finding(KindExtentRange, "%s extent %d %v runs past the largest file offset", name, i, e)))
			ok = false
			continue
		}
		if i > 0 && e.StartOff < prevEnd {
			s.add(at(finding(KindExtentOrder, "%s extent %d %v starts inside or before the previous extent", name, i, e).
				exp(fmt.Sprintf("file offset at least %d", prevEnd), e.StartOff)))
			ok = false
		}
		prevEnd = max(prevEnd, e.End())
		agno, agbno := g.FSBAgno(e.StartBlock), uint64(g.FSBAgbno(e.StartBlock))
		switch {
		case agno >= g.AGCount || e.StartBlock>>g.AGBlkLog >= uint64(g.AGCount):
			s.add(at(finding(KindExtentRange, "%s extent %d %v starts beyond the last AG", name, i, e).exp(fmt.Sprintf("AG below %d", g.AGCount), agno)))
			ok = false
		case agbno <= lo || agbno+e.BlockCount > uint64(g.AGSize(agno)):
			s.add(at(finding(KindExtentRange, "%s extent %d %v is not inside the data blocks of AG %d", name, i, e, agno).
				exp(fmt.Sprintf("blocks %d..%d", lo+1, g.AGSize(agno)-1), fmt.Sprintf("%d..%d", agbno, agbno+e.BlockCount-1))))
			ok = false
		default:
			s.out.claimAG(agno, uint32(agbno), uint32(e.BlockCount), own, ino)
		}
	}
	return ok
}

// extentMapper maps directory blocks through a sorted extent list.
type extentMapper []ondisk.Extent

func (m extentMapper) Map(fb uint64) (uint64, bool, error) {
	i := sort.Search(len(m), func(i int) bool { return m[i].End() > fb })
	if i == len(m) || m[i].StartOff > fb {
		return 0, false, nil
	}
	return m[i].StartBlock + (fb - m[i].StartOff), true, nil
}

func (m extentMapper) LastMapped() (uint64, error) {
	if len(m) == 0 {
		return 0, nil
	}
	return m[len(m)-1].End(), nil
}

// blockReader reads directory blocks for package dir, from the blocks
// read ahead when it has them.
type blockReader struct {
	s     *agScan
	cache *blockCache
}

func (r blockReader) ReadBlocks(fsb uint64, n int) ([]byte, error) {
	g := r.s.g
	if n < 1 || !g.ValidFSB(fsb) || !g.ValidFSB(fsb+uint64(n)-1) {
		return nil, ondisk.Corruptf("directory block %d+%d outside the file system", fsb, n)
	}
	if b := r.cache.get(fsb, n, g.BlockSize); b != nil {
		return b, nil
	}
	return r.s.c.rd.read(g.FSBDaddr(fsb), n*g.BlockSize)
}

// blockCache holds runs of blocks read ahead, sorted by start.
type blockCache struct {
	runs []cacheRun
}

type cacheRun struct {
	start uint64 // AG-encoded block
	n     uint64
	buf   []byte
}

// get returns blocks [fsb, fsb+n) if one run holds them all.
func (c *blockCache) get(fsb uint64, n, bs int) []byte {
	if c == nil {
		return nil
	}
	i := sort.Search(len(c.runs), func(i int) bool { return c.runs[i].start+c.runs[i].n > fsb })
	if i == len(c.runs) || c.runs[i].start > fsb || fsb+uint64(n) > c.runs[i].start+c.runs[i].n {
		return nil
	}
	off := (fsb - c.runs[i].start) * uint64(bs)
	return c.runs[i].buf[off : off+uint64(n*bs) : off+uint64(n*bs)]
}

// Read-ahead of directory blocks: the blocks of a batch's directories are
// read in runs, bridging gaps of up to prefetchGap bytes (reading a little
// more is cheaper than another request), each run at most prefetchRun
// bytes, at most prefetchTotal bytes per batch.
const (
	prefetchGap   = 256 << 10
	prefetchRun   = 1 << 20
	prefetchTotal = 16 << 20
)

// flushDirs reads ahead the blocks of the directories found in the last
// inode batch and hands the directories to the directory goroutines.
// Blocks inside the batch just read (batchStart, batch) are copied from
// it rather than read again.
func (s *agScan) flushDirs(batchStart int64, batch []byte) {
	if len(s.pending) == 0 {
		return
	}
	jobs := s.pending
	s.pending = nil
	g := s.g
	bs := uint64(g.BlockSize)
	var want []uint64
	for _, j := range jobs {
		for _, e := range j.exts {
			if uint64(len(want))+e.BlockCount > prefetchTotal/bs {
				break
			}
			for b := uint64(0); b < e.BlockCount; b++ {
				want = append(want, e.StartBlock+b)
			}
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	var runs []cacheRun
	var total uint64
	for i := 0; i < len(want); {
		start, end := want[i], want[i]+1
		j := i + 1
		for j < len(want) && g.FSBAgno(want[j]) == g.FSBAgno(start) && (want[j]-end)*bs <= prefetchGap && (want[j]+1-start)*bs <= prefetchRun {
			end = want[j] + 1
			j++
		}
		i = j
		if !g.ValidFSB(start) || !g.ValidFSB(end-1) || total+(end-start)*bs > prefetchTotal {
			continue
		}
		total += (end - start) * bs
		r := cacheRun{start: start, n: end - start}
		if off := g.FSBOffset(start) - batchStart; off >= 0 && off+int64(r.n*bs) <= int64(len(batch)) {
			r.buf = append([]byte(nil), batch[off:off+int64(r.n*bs)]...)
		}
		runs = append(runs, r)
	}
	// Read the runs a few at a time; a run that fails is left out (the
	// directory reads its blocks itself and reports what fails).
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func(r *cacheRun) {
			defer wg.Done()
			defer func() { <-sem }()
			if r.buf != nil {
				return
			}
			if b, err := s.c.rd.read(g.FSBDaddr(r.start), int(r.n*bs)); err == nil {
				r.buf = b
			}
		}(&runs[i])
	}
	wg.Wait()
	cache := &blockCache{runs: slices.DeleteFunc(runs, func(r cacheRun) bool { return r.buf == nil })}
	for _, j := range jobs {
		j.cache = cache
		s.dirs <- j
	}
}

// dirJob is a directory to check. Directories are checked by a few
// goroutines beside the inode scan, so that many directory block reads
// are in flight at once, as xfs_repair's prefetch does.
type dirJob struct {
	ino    uint64
	format uint8
	size   int64
	local  []byte // the data fork, for shortform
	exts   []ondisk.Extent
	idx    int // in res.inodes
	agbno  uint32
	cache  *blockCache // blocks read ahead for this batch of directories
}

// dirOut is what one directory goroutine collects.
type dirOut struct {
	findings []Finding
	edges    []edge
	parents  [][2]uint64 // res.inodes index, ".."
	stats    Stats
}

// dirWorkers is how many directories each AG worker has in flight.
const dirWorkers = 8

// startDirs starts the directory goroutines; the returned function waits
// for them and merges what they found.
func (s *agScan) startDirs() func() {
	s.dirs = make(chan dirJob, 4*dirWorkers)
	outs := make([]dirOut, dirWorkers)
	var wg sync.WaitGroup
	for w := range outs {
		wg.Add(1)
		go func(out *dirOut) {
			defer wg.Done()
			for j := range s.dirs {
				s.directory(j, out)
			}
		}(&outs[w])
	}
	return func() {
		close(s.dirs)
		wg.Wait()
		for i := range outs {
			o := &outs[i]
			s.out.findings = append(s.out.findings, o.findings...)
			s.out.edges = append(s.out.edges, o.edges...)
			s.out.stats.Directories += o.stats.Directories
			s.out.stats.Entries += o.stats.Entries
			for _, p := range o.parents {
				s.res.inodes[p[0]].parent = p[1]
			}
		}
	}
}

// directory verifies a directory's blocks and collects its entries for
// the namespace checks.
func (s *agScan) directory(j dirJob, out *dirOut) {
	g := s.g
	out.stats.Directories++
	at := func(f Finding) Finding { return f.at(int(s.agno), int64(j.agbno)).ino(j.ino) }
	dd := dir.New(g, j.ino, j.format, j.size, j.local, extentMapper(j.exts), blockReader{s, j.cache})
	dd.Salvage()
	if err := dd.Verify(); err != nil {
		for _, e := range splitErr(err) {
			out.findings = append(out.findings, at(finding(dir.KindOf(e), "directory: %s", trimDirPrefix(e.Error(), j.ino))))
		}
	}
	if lsn, daddr := dd.MaxLSN(); s.c.lsnAhead(lsn) {
		fsb := g.DaddrFSB(daddr)
		out.findings = append(out.findings, s.c.lsnFinding(lsn, "directory block").at(int(g.FSBAgno(fsb)), int64(g.FSBAgbno(fsb))).ino(j.ino))
	}
	ents, _ := dd.Entries() // damage was reported by Verify; take what is readable
	for _, e := range ents {
		switch e.Name {
		case ".":
		case "..":
			out.parents = append(out.parents, [2]uint64{uint64(j.idx), e.Ino})
		default:
			out.edges = append(out.edges, edge{dir: j.ino, target: e.Ino, ftype: e.FType, name: e.Name})
			out.stats.Entries++
		}
	}
}

func splitErr(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, splitErr(e)...)
		}
		return out
	}
	return []error{err}
}

// trimDirPrefix drops "directory N: " prefixes, since the finding names
// the inode.
func trimDirPrefix(s string, ino uint64) string {
	p := fmt.Sprintf("directory %d: ", ino)
	for len(s) >= len(p) && s[:len(p)] == p {
		s = s[len(p):]
	}
	return s
}

// symlink checks a symlink's target: inline, or in remote blocks with one
// header per extent (the buffer the kernel reads for it), pieces in order,
// adding up to the size.
func (s *agScan) symlink(ino uint64, d *ondisk.Dinode, buf []byte, exts []ondisk.Extent, at func(Finding) Finding) {
	g := s.g
	if d.Format == ondisk.FmtLocal {
		if _, err := ondisk.LocalSymlink(buf, d, g); err != nil {
			s.add(at(finding(KindSymlink, "%s", unwrapInode(err, ino))))
		}
		return
	}
	if d.Size <= 0 || d.Size >= ondisk.SymlinkMaxLen {
		s.add(at(finding(KindSymlink, "symlink size outside 1..%d", ondisk.SymlinkMaxLen-1).exp(fmt.Sprintf("1..%d", ondisk.SymlinkMaxLen-1), d.Size)))
		return
	}
	var got int64
	for _, e := range exts {
		// A target under 1 KiB never needs more than a few blocks.
		if e.BlockCount > 4 || got >= d.Size {
			s.add(at(finding(KindSymlink, "symlink extent %v is more than a %d-byte target needs", e, d.Size)))
			return
		}
		daddr := g.FSBDaddr(e.StartBlock)
		b, err := s.c.rd.read(daddr, int(e.BlockCount)*g.BlockSize)
		if err != nil {
			s.add(at(finding(KindRead, "symlink block %d: %v", e.StartBlock, err)))
			return
		}
		agno, agbno := int(g.FSBAgno(e.StartBlock)), int64(g.FSBAgbno(e.StartBlock))
		hdr, data, err := ondisk.DecodeSymlinkBlock(b)
		if err == nil && !hdr.CRCOK() {
			// Report the CRC and go on with the contents.
			s.add(finding(KindCRC, "symlink block has a bad CRC").at(agno, agbno).ino(ino))
			ondisk.StampCRC(b, ondisk.SymlinkCRCOff)
			hdr, data, err = ondisk.DecodeSymlinkBlock(b)
		}
		if err == nil {
			err = hdr.Verify(b, g, ino, daddr)
		}
		if err != nil {
			s.add(finding(KindSymlink, "symlink block: %v", err).at(agno, agbno).ino(ino))
			return
		}
		if s.c.lsnAhead(hdr.LSN) {
			s.add(s.c.lsnFinding(hdr.LSN, "symlink block").at(agno, agbno).ino(ino))
		}
		if int64(hdr.Offset) != got {
			s.add(finding(KindSymlink, "symlink block holds the wrong piece of the target").exp(fmt.Sprintf("offset %d", got), hdr.Offset).at(agno, agbno).ino(ino))
			return
		}
		got += int64(len(data))
	}
	if got != d.Size {
		s.add(at(finding(KindSymlink, "symlink blocks hold a target of another length").exp(d.Size, got)))
	}
}

// unlinked follows the AGI's unlinked lists: each inode on them in use,
// hashed to its bucket, on one list once. They are exempt from the
// reachability check: they are open but deleted, to be freed at mount.
func (s *agScan) unlinked() {
	a := s.res.agi
	if a == nil {
		return
	}
	inodes := s.res.inodes
	find := func(agino uint32) *inodeInfo {
		ino := s.g.Ino(s.agno, agino)
		i := sort.Search(len(inodes), func(i int) bool { return inodes[i].ino >= ino })
		if i < len(inodes) && inodes[i].ino == ino {
			return &inodes[i]
		}
		return nil
	}
	hdrBlk := uint32(s.g.AGIDaddr(s.agno)-s.g.AGBDaddr(s.agno, 0)) >> (s.g.BlockLog - ondisk.BBShift)
	for b, head := range a.Unlinked {
		for agino, steps := head, 0; agino != ondisk.NullAGIno; steps++ {
			ip := find(agino)
			switch {
			case ip == nil:
				s.add(s.here(finding(KindAGIUnlinked, "unlinked list %d reaches inode %d, which is not in use", b, s.g.Ino(s.agno, agino)), hdrBlk))
			case ip.flags&fUnlinked != 0 || steps > len(inodes):
				s.add(s.here(finding(KindAGIUnlinked, "unlinked list %d reaches inode %d a second time", b, ip.ino), hdrBlk))
			case agino%ondisk.AGIUnlinkedBuckets != uint32(b):
				s.add(s.here(finding(KindAGIUnlinked, "unlinked list %d holds inode %d of another bucket", b, ip.ino), hdrBlk))
				ip.flags |= fUnlinked
				agino = ip.next
				continue
			default:
				ip.flags |= fUnlinked
				agino = ip.next
				continue
			}
			break
		}
	}
}
