package check

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/agi"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/refcount"
	"github.com/xfsimg/xfsimg/rmap"
)

// agScan is the phase-1 work on one AG.
type agScan struct {
	c     *checker
	g     *ondisk.Geometry
	agno  uint32
	size  uint32 // blocks in the AG
	out   *workerOut
	res   *agResult
	store agf.AGStore
	recs  []ondisk.InobtRec // valid inobt records, in order

	lastIBlk uint32 // last inode block claimed
	iblkSet  bool

	dirs    chan dirJob // directories to check, while the inode scan runs
	pending []dirJob    // directories of the current inode batch
}

func (c *checker) scanAG(agno uint32, out *workerOut) {
	s := &agScan{c: c, g: c.g, agno: agno, size: c.g.AGSize(agno), out: out, res: c.ags[agno],
		store: agf.AGStore{Geo: c.g, Agno: agno, Read: c.rd.read}}
	s.headers()
	s.freeSpace()
	s.inodeTrees()
	s.scanInodes()
	s.unlinked()
}

func (s *agScan) add(f Finding) { s.out.add(f) }

// here locates a finding at block agbno of this AG.
func (s *agScan) here(f Finding, agbno uint32) Finding { return f.at(int(s.agno), int64(agbno)) }

// headers claims the header sectors and the log, and checks the
// superblock copy of AGs other than 0.
func (s *agScan) headers() {
	s.out.claimAG(s.agno, 0, ondisk.AGFLBlock(s.g)+1, ownHeaders, 0)
	g := s.g
	if g.LogBlocks > 0 && g.FSBAgno(g.LogStart) == s.agno {
		start := g.FSBAgbno(g.LogStart)
		n := min(uint64(g.LogBlocks), uint64(s.size)-min(uint64(start), uint64(s.size)))
		s.out.claimAG(s.agno, start, uint32(n), ownLog, 0)
	}
	if s.agno == 0 {
		return
	}
	buf, err := s.c.rd.read(g.AGHeaderDaddr(s.agno, 0), g.SectSize)
	if err != nil {
		s.add(s.here(finding(KindRead, "superblock copy: %v", err), 0))
		return
	}
	sb, err := ondisk.DecodeSuperblock(buf)
	if err != nil {
		s.add(s.here(finding(KindSBSecondary, "superblock copy: %v", err), 0))
		return
	}
	if !sb.CRCOK() {
		s.add(s.here(finding(KindCRC, "superblock copy has a bad CRC"), 0))
	}
	p := s.c.sb
	// The geometry and features every copy must share (rootino and the
	// counters are only kept in the primary).
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"magicnum", sb.MagicNum, p.MagicNum}, {"blocksize", sb.BlockSize, p.BlockSize},
		{"dblocks", sb.DBlocks, p.DBlocks}, {"rblocks", sb.RBlocks, p.RBlocks}, {"rextents", sb.RExtents, p.RExtents},
		{"uuid", sb.UUID, p.UUID}, {"logstart", sb.LogStart, p.LogStart}, {"rextsize", sb.RExtSize, p.RExtSize},
		{"agblocks", sb.AGBlocks, p.AGBlocks}, {"agcount", sb.AGCount, p.AGCount}, {"rbmblocks", sb.RBMBlocks, p.RBMBlocks},
		{"logblocks", sb.LogBlocks, p.LogBlocks},
		// The kernel sets the attr and quota bits in the primary only.
		{"versionnum", sb.VersionNum &^ (sbVersionAttr | sbVersionQuota), p.VersionNum &^ (sbVersionAttr | sbVersionQuota)},
		{"sectsize", sb.SectSize, p.SectSize}, {"inodesize", sb.InodeSize, p.InodeSize}, {"inopblock", sb.InoPBlock, p.InoPBlock},
		{"blocklog", sb.BlockLog, p.BlockLog}, {"sectlog", sb.SectLog, p.SectLog}, {"inodelog", sb.InodeLog, p.InodeLog},
		{"inopblog", sb.InoPBLog, p.InoPBLog}, {"agblklog", sb.AGBlkLog, p.AGBlkLog}, {"rextslog", sb.RExtSLog, p.RExtSLog},
		{"imax_pct", sb.IMaxPct, p.IMaxPct}, {"inoalignmt", sb.InoAlignmt, p.InoAlignmt},
		{"unit", sb.Unit, p.Unit}, {"width", sb.Width, p.Width}, {"dirblklog", sb.DirBlkLog, p.DirBlkLog},
		{"logsectlog", sb.LogSectLog, p.LogSectLog}, {"logsectsize", sb.LogSectSize, p.LogSectSize},
		{"logsunit", sb.LogSUnit, p.LogSUnit}, {"features2", sb.Features2, p.Features2},
		{"features_compat", sb.FeaturesCompat, p.FeaturesCompat}, {"features_ro_compat", sb.FeaturesROCompat, p.FeaturesROCompat},
		{"features_incompat", sb.FeaturesIncompat, p.FeaturesIncompat},
		{"features_log_incompat", sb.FeaturesLogIncomp, p.FeaturesLogIncomp},
		{"spino_align", sb.SpinoAlign, p.SpinoAlign}, {"meta_uuid", sb.MetaUUID, p.MetaUUID},
	} {
		if f.got != f.want {
			s.add(s.here(finding(KindSBSecondary, "superblock copy: %s differs from the primary", f.name).exp(f.want, f.got), 0))
		}
	}
	if f := s.c.sbTail(buf, s.agno); f.Kind != "" {
		s.add(f)
	}
	if s.c.lsnAhead(sb.LSN) {
		s.add(s.here(s.c.lsnFinding(sb.LSN, "superblock copy"), 0))
	}
}

// Version bits the kernel sets in the primary superblock only.
const (
	sbVersionAttr  = 0x10
	sbVersionQuota = 0x40
)

// walk runs the btree walk on t, claiming its blocks for kind and turning
// its problems into findings. It returns the walk's statistics and how
// many problems it had.
func (s *agScan) walk(t *btree.Tree, kind ownerKind, rec func([]byte)) (btree.WalkStats, int) {
	return s.c.walkTree(t, s.out, kind, rec)
}

// walkTree walks an AG tree (kind names the tree) or, for long trees, an
// inode's BMBT.
func (c *checker) walkTree(t *btree.Tree, out *workerOut, kind ownerKind, rec func([]byte)) (btree.WalkStats, int) {
	g := c.g
	long := t.Ops.Long()
	problems := 0
	locate := func(ptr uint64) (int, int64) {
		if ptr == ondisk.NullFSBlock {
			return -1, -1
		}
		if long {
			if !g.ValidFSB(ptr) {
				return -1, int64(ptr)
			}
			return int(g.FSBAgno(ptr)), int64(g.FSBAgbno(ptr))
		}
		return int(t.Shape.Owner), int64(ptr)
	}
	st := t.Walk(btree.Visitor{
		Block: func(ptr uint64, _ int, buf []byte, hdr *ondisk.BtreeBlock, ok bool) {
			out.stats.Blocks++
			if long {
				out.claimAG(g.FSBAgno(ptr), g.FSBAgbno(ptr), 1, kind, t.Shape.Owner)
			} else {
				out.claimAG(uint32(t.Shape.Owner), uint32(ptr), 1, kind, 0)
			}
			if ok && c.lsnAhead(hdr.LSN) {
				ag, blk := locate(ptr)
				f := c.lsnFinding(hdr.LSN, t.Ops.Name()+" block").at(ag, blk)
				if long {
					f = f.ino(t.Shape.Owner)
				}
				out.add(f)
			}
		},
		Record: rec,
		Problem: func(p btree.Problem) {
			problems++
			ag, blk := locate(p.Ptr)
			if p.Ptr == ondisk.NullFSBlock && !long {
				ag = int(t.Shape.Owner)
			}
			f := Finding{Kind: p.Kind, Severity: Problem, AG: ag, Block: blk, Inode: -1,
				Expected: p.Expected, Found: p.Found, Message: fmt.Sprintf("%s: %s", t.Ops.Name(), p.Msg)}
			if p.Level >= 0 {
				f.Message = fmt.Sprintf("%s level %d: %s", t.Ops.Name(), p.Level, p.Msg)
			}
			if p.Ptr == ondisk.NullFSBlock {
				f.Message = fmt.Sprintf("%s root in the inode: %s", t.Ops.Name(), p.Msg)
			}
			if long {
				f.Inode = int64(t.Shape.Owner)
			}
			out.add(f)
		},
	})
	return st, problems
}

// freeSpace checks the AGF, the AGFL and the free-space, rmap and
// refcount btrees of the AG.
func (s *agScan) freeSpace() {
	g, c := s.g, s.c
	hdrBlk := uint32(g.AGFDaddr(s.agno)-g.AGBDaddr(s.agno, 0)) >> (g.BlockLog - ondisk.BBShift)
	buf, err := c.rd.read(g.AGFDaddr(s.agno), g.SectSize)
	if err != nil {
		s.add(s.here(finding(KindRead, "AGF: %v", err), hdrBlk))
		return
	}
	a, err := ondisk.DecodeAGF(buf)
	if err != nil {
		s.add(s.here(finding(KindAGFHeader, "AGF: %v", err), hdrBlk))
		return
	}
	bad := func(field string, want, got any) {
		s.add(s.here(finding(KindAGFHeader, "AGF %s is wrong", field).exp(want, got), hdrBlk))
	}
	switch {
	case a.MagicNum != ondisk.AGFMagic:
		bad("magic", fmt.Sprintf("0x%08x", ondisk.AGFMagic), fmt.Sprintf("0x%08x", a.MagicNum))
		return
	case a.VersionNum != ondisk.AGFVersion:
		bad("version", ondisk.AGFVersion, a.VersionNum)
		return
	case a.SeqNo != s.agno:
		bad("seqno", s.agno, a.SeqNo)
		return
	case a.Length != s.size:
		bad("length", s.size, a.Length)
		return
	}
	if !a.CRCOK() {
		s.add(s.here(finding(KindCRC, "AGF has a bad CRC"), hdrBlk))
	}
	if a.UUID != g.MetaUUID {
		bad("uuid", g.MetaUUID, a.UUID)
	}
	if c.lsnAhead(a.LSN) {
		s.add(s.here(c.lsnFinding(a.LSN, "AGF"), hdrBlk))
	}
	s.res.agf = a
	s.agfl(a)

	fs := &agf.AG{Geo: g, Agno: s.agno, AGF: a, Store: s.store}
	var bno, cnt []ondisk.AllocRec
	bst, bprob := s.walk(fs.BnoTree(), ownBnobt, func(r []byte) { bno = append(bno, ondisk.DecodeAllocRec(r)) })
	cst, cprob := s.walk(fs.CntTree(), ownCntbt, func(r []byte) { cnt = append(cnt, ondisk.DecodeAllocRec(r)) })
	bno, bbad := s.freeRecords("bnobt", KindBnobtRecord, bno, true)
	cnt, cbad := s.freeRecords("cntbt", KindCntbtRecord, cnt, false)
	bprob += bbad
	cprob += cbad
	switch {
	case bprob == 0 && cprob == 0:
		s.compareFree(bno, cnt)
	case bprob == 0 && cprob > 0:
		// the bnobt is whole; the cntbt's damage is already reported
	case cprob == 0:
		bno = slices.Clone(cnt)
		slices.SortFunc(bno, func(x, y ondisk.AllocRec) int { return int(int64(x.StartBlock) - int64(y.StartBlock)) })
	}
	s.res.have.free = bprob == 0 || cprob == 0
	var free, longest uint64
	for _, r := range bno {
		s.out.claimAG(s.agno, r.StartBlock, r.BlockCount, ownFree, 0)
		free += uint64(r.BlockCount)
		longest = max(longest, uint64(r.BlockCount))
	}
	s.res.counts.freeBlocks = free
	if s.res.have.free {
		if uint64(a.FreeBlks) != free {
			s.add(s.here(finding(KindAGFFreeblks, "AGF freeblks is not the sum of the free extents").exp(free, a.FreeBlks), hdrBlk))
		}
		if uint64(a.Longest) != longest {
			s.add(s.here(finding(KindAGFLongest, "AGF longest is not the longest free extent").exp(longest, a.Longest), hdrBlk))
		}
	}

	btreeBlks := uint64(max(bst.Blocks-1, 0) + max(cst.Blocks-1, 0))
	treesWhole := bprob == 0 && cprob == 0
	if c.sb.HasRmapbt() {
		t := &btree.Tree{Ops: rmap.Ops(), Store: s.store,
			Shape: btree.Shape{BlockSize: g.BlockSize, Owner: uint64(s.agno), UUID: g.MetaUUID,
				MaxLevels: ondisk.RmapMaxLevels(g, c.sb.HasReflink())},
			Root: btree.BlockRoot{RootPtr: uint64(a.RmapRoot), Levels: int(a.RmapLevel)}}
		rst, rprob := s.walk(t, ownRmapbt, nil)
		btreeBlks += uint64(max(rst.Blocks-1, 0))
		treesWhole = treesWhole && rprob == 0
		if rprob == 0 && uint32(rst.Blocks) != a.RmapBlocks {
			s.add(s.here(finding(KindAGFRmapblocks, "AGF rmapblocks is not the size of the rmapbt").exp(rst.Blocks, a.RmapBlocks), hdrBlk))
		}
	}
	s.res.counts.btreeBlks = btreeBlks
	if treesWhole && uint64(a.BtreeBlks) != btreeBlks {
		s.add(s.here(finding(KindAGFBtreeblks, "AGF btreeblks is not the number of non-root free-space btree blocks").exp(btreeBlks, a.BtreeBlks), hdrBlk))
	}
	if c.sb.HasReflink() {
		s.refcounts(a, hdrBlk)
	}
}

// freeRecords checks the records of a free-space btree: each a run of
// blocks of the AG above the headers; in the bnobt, none overlapping the
// next. It returns the valid records and the number of bad ones.
func (s *agScan) freeRecords(tree, kind string, recs []ondisk.AllocRec, byBlock bool) ([]ondisk.AllocRec, int) {
	lo := ondisk.AGFLBlock(s.g) + 1
	out := recs[:0]
	bad := 0
	var prevEnd uint64
	for _, r := range recs {
		end := uint64(r.StartBlock) + uint64(r.BlockCount)
		switch {
		case r.BlockCount == 0 || r.StartBlock < lo || end > uint64(s.size):
			s.add(s.here(finding(kind, "%s record [%d, +%d] is not a run of blocks of the AG above its headers", tree, r.StartBlock, r.BlockCount).
				exp(fmt.Sprintf("within %d..%d", lo, s.size-1), fmt.Sprintf("%d..%d", r.StartBlock, end-1)), r.StartBlock))
			bad++
			continue
		case byBlock && uint64(r.StartBlock) < prevEnd:
			s.add(s.here(finding(kind, "%s record [%d, +%d] overlaps the previous free extent", tree, r.StartBlock, r.BlockCount).
				exp(fmt.Sprintf("start at or after %d", prevEnd), r.StartBlock), r.StartBlock))
			bad++
			continue
		}
		prevEnd = end
		out = append(out, r)
	}
	return out, bad
}

// compareFree reports free extents the two free-space btrees do not share.
func (s *agScan) compareFree(bno, cnt []ondisk.AllocRec) {
	byStart := slices.Clone(cnt)
	slices.SortFunc(byStart, func(x, y ondisk.AllocRec) int {
		if x.StartBlock != y.StartBlock {
			return int(int64(x.StartBlock) - int64(y.StartBlock))
		}
		return int(int64(x.BlockCount) - int64(y.BlockCount))
	})
	i, j := 0, 0
	for i < len(bno) || j < len(byStart) {
		switch {
		case j == len(byStart) || (i < len(bno) && bno[i].StartBlock < byStart[j].StartBlock):
			s.add(s.here(finding(KindFreeMismatch, "free extent of %d blocks is in the bnobt but not in the cntbt", bno[i].BlockCount).
				exp("the same extent in both", "bnobt only"), bno[i].StartBlock))
			i++
		case i == len(bno) || byStart[j].StartBlock < bno[i].StartBlock:
			s.add(s.here(finding(KindFreeMismatch, "free extent of %d blocks is in the cntbt but not in the bnobt", byStart[j].BlockCount).
				exp("the same extent in both", "cntbt only"), byStart[j].StartBlock))
			j++
		default:
			if bno[i].BlockCount != byStart[j].BlockCount {
				s.add(s.here(finding(KindFreeMismatch, "the two free-space btrees give this free extent different lengths").
					exp(fmt.Sprintf("bnobt length %d", bno[i].BlockCount), fmt.Sprintf("cntbt length %d", byStart[j].BlockCount)), bno[i].StartBlock))
			}
			i++
			j++
		}
	}
}

// agfl checks the free list: the header, the ring the AGF describes, and
// that each entry is a block of the AG (they are claimed, so that the
// sweep finds them if they are also free or used).
func (s *agScan) agfl(a *ondisk.AGF) {
	g, c := s.g, s.c
	hdrBlk := uint32(g.AGFLDaddr(s.agno)-g.AGBDaddr(s.agno, 0)) >> (g.BlockLog - ondisk.BBShift)
	agfBlk := uint32(g.AGFDaddr(s.agno)-g.AGBDaddr(s.agno, 0)) >> (g.BlockLog - ondisk.BBShift)
	buf, err := c.rd.read(g.AGFLDaddr(s.agno), g.SectSize)
	if err != nil {
		s.add(s.here(finding(KindRead, "AGFL: %v", err), hdrBlk))
		return
	}
	fl, err := ondisk.DecodeAGFL(buf)
	if err != nil {
		s.add(s.here(finding(KindAGFLHeader, "AGFL: %v", err), hdrBlk))
		return
	}
	switch {
	case fl.MagicNum != ondisk.AGFLMagic:
		s.add(s.here(finding(KindAGFLHeader, "AGFL magic is wrong").exp(fmt.Sprintf("0x%08x", ondisk.AGFLMagic), fmt.Sprintf("0x%08x", fl.MagicNum)), hdrBlk))
		return
	case fl.SeqNo != s.agno:
		s.add(s.here(finding(KindAGFLHeader, "AGFL seqno is wrong").exp(s.agno, fl.SeqNo), hdrBlk))
		return
	}
	if !fl.CRCOK() {
		s.add(s.here(finding(KindCRC, "AGFL has a bad CRC"), hdrBlk))
	}
	if fl.UUID != g.MetaUUID {
		s.add(s.here(finding(KindAGFLHeader, "AGFL uuid is wrong").exp(g.MetaUUID, fl.UUID), hdrBlk))
	}
	if c.lsnAhead(fl.LSN) {
		s.add(s.here(c.lsnFinding(fl.LSN, "AGFL"), hdrBlk))
	}
	size := uint32(len(fl.Bno))
	if a.FLFirst >= size || a.FLLast >= size || a.FLCount > size {
		s.add(s.here(finding(KindAGFHeader, "AGF free list indices outside the AGFL").
			exp(fmt.Sprintf("flfirst, fllast < %d and flcount <= %d", size, size),
				fmt.Sprintf("flfirst %d fllast %d flcount %d", a.FLFirst, a.FLLast, a.FLCount)), agfBlk))
		return
	}
	// Every slot, on the list or not, holds null or a block of the AG, as
	// the kernel's AGFL verifier requires.
	for i, b := range fl.Bno {
		if b != ondisk.NullAGBlock && b >= s.size {
			s.add(s.here(finding(KindAGFLEntry, "AGFL slot %d holds a block beyond the AG", i).exp(fmt.Sprintf("null or below %d", s.size), b), hdrBlk))
		}
	}
	if a.FLCount == 0 {
		return
	}
	// The ring runs from flfirst to fllast, as the kernel and xfs_repair
	// walk it; flcount must be its length.
	lo := ondisk.AGFLBlock(g)
	var n uint32
	for i, k := a.FLFirst, uint32(0); k < size; k, i = k+1, (i+1)%size {
		n++
		switch b := fl.Bno[i]; {
		case b >= s.size && b != ondisk.NullAGBlock:
			// reported above
		case b == ondisk.NullAGBlock || b <= lo:
			s.add(s.here(finding(KindAGFLEntry, "AGFL slot %d is on the free list but not a block of the AG", i).
				exp(fmt.Sprintf("%d..%d", lo+1, s.size-1), ptrText(b)), hdrBlk))
		default:
			s.out.claimAG(s.agno, b, 1, ownAGFL, 0)
			s.res.counts.flcount++
		}
		if i == a.FLLast {
			break
		}
	}
	if n != a.FLCount {
		s.add(s.here(finding(KindAGFFlcount, "AGF flcount is not the length of the free list from flfirst %d to fllast %d", a.FLFirst, a.FLLast).
			exp(n, a.FLCount), agfBlk))
	}
}

func ptrText(b uint32) string {
	if b == ondisk.NullAGBlock {
		return "null"
	}
	return fmt.Sprint(b)
}

// refcounts walks the refcount btree and checks its records: shared
// extents with a count of at least 2, COW staging extents with a count of
// 1, inside the AG, not overlapping within their domain. Records are passed
// to the sweep, which compares them with the owners it finds.
func (s *agScan) refcounts(a *ondisk.AGF, hdrBlk uint32) {
	rc := &refcount.AG{Geo: s.g, Agno: s.agno, AGF: a, Store: s.store}
	var recs []ondisk.RefcountRec
	st, prob := s.walk(rc.Tree(), ownRefcbt, func(r []byte) { recs = append(recs, ondisk.DecodeRefcountRec(r)) })
	if prob == 0 && uint32(st.Blocks) != a.RefcountBlocks {
		s.add(s.here(finding(KindAGFRefcblocks, "AGF refcntblocks is not the size of the refcount btree").exp(st.Blocks, a.RefcountBlocks), hdrBlk))
	}
	lo := ondisk.AGFLBlock(s.g) + 1
	var prevEnd [2]uint64
	for _, r := range recs {
		start, n := r.AGBlock(), r.BlockCount
		end := uint64(start) + uint64(n)
		dom := 0
		if r.Cow() {
			dom = 1
		}
		switch {
		case n == 0 || start < lo || end > uint64(s.size):
			s.add(s.here(finding(KindRefcRecord, "refcount record [%d, +%d] is not a run of blocks of the AG", start, n), start))
			continue
		case uint64(start) < prevEnd[dom]:
			s.add(s.here(finding(KindRefcRecord, "refcount record [%d, +%d] overlaps the previous one", start, n), start))
			continue
		case r.Cow() && r.RefCount != 1:
			s.add(s.here(finding(KindRefcRecord, "COW staging extent with a reference count other than 1").exp(1, r.RefCount), start))
		case !r.Cow() && r.RefCount < 2:
			s.add(s.here(finding(KindRefcRecord, "shared extent with a reference count below 2").exp("at least 2", r.RefCount), start))
			continue
		}
		prevEnd[dom] = end
		if r.Cow() {
			s.out.claimAG(s.agno, start, n, ownCow, 0)
		} else {
			s.out.claimAG(s.agno, start, n, ownRefcount, uint64(r.RefCount))
		}
	}
}

// inodeTrees checks the AGI, the inobt and the finobt, and keeps the
// inobt's records for the inode scan.
func (s *agScan) inodeTrees() {
	g, c := s.g, s.c
	hdrBlk := uint32(g.AGIDaddr(s.agno)-g.AGBDaddr(s.agno, 0)) >> (g.BlockLog - ondisk.BBShift)
	buf, err := c.rd.read(g.AGIDaddr(s.agno), g.SectSize)
	if err != nil {
		s.add(s.here(finding(KindRead, "AGI: %v", err), hdrBlk))
		return
	}
	a, err := ondisk.DecodeAGI(buf)
	if err != nil {
		s.add(s.here(finding(KindAGIHeader, "AGI: %v", err), hdrBlk))
		return
	}
	bad := func(field string, want, got any) {
		s.add(s.here(finding(KindAGIHeader, "AGI %s is wrong", field).exp(want, got), hdrBlk))
	}
	switch {
	case a.MagicNum != ondisk.AGIMagic:
		bad("magic", fmt.Sprintf("0x%08x", ondisk.AGIMagic), fmt.Sprintf("0x%08x", a.MagicNum))
		return
	case a.VersionNum != ondisk.AGIVersion:
		bad("version", ondisk.AGIVersion, a.VersionNum)
		return
	case a.SeqNo != s.agno:
		bad("seqno", s.agno, a.SeqNo)
		return
	case a.Length != s.size:
		bad("length", s.size, a.Length)
		return
	}
	if !a.CRCOK() {
		s.add(s.here(finding(KindCRC, "AGI has a bad CRC"), hdrBlk))
	}
	if a.UUID != g.MetaUUID {
		bad("uuid", g.MetaUUID, a.UUID)
	}
	if c.lsnAhead(a.LSN) {
		s.add(s.here(c.lsnFinding(a.LSN, "AGI"), hdrBlk))
	}
	s.res.agi = a
	for i, ino := range a.Unlinked {
		if ino == ondisk.NullAGIno {
			continue
		}
		if ino%ondisk.AGIUnlinkedBuckets != uint32(i) {
			s.add(s.here(finding(KindAGIUnlinked, "unlinked bucket %d holds an inode that hashes to bucket %d", i, ino%ondisk.AGIUnlinkedBuckets).
				exp(fmt.Sprintf("agino %% 64 == %d", i), ino), hdrBlk))
		}
	}

	ia := &agi.AG{Geo: g, Agno: s.agno, AGI: a, Sparse: c.sb.HasSpinodes(), Store: s.store}
	limit := ia.MaxChunks()
	var ino, fino []ondisk.InobtRec
	ist, iprob := s.walk(ia.InoTree(), ownInobt, func(r []byte) {
		if len(ino) < limit {
			ino = append(ino, ondisk.DecodeInobtRec(r, ia.Sparse))
		}
	})
	var fst btree.WalkStats
	fprob := 0
	if c.sb.HasFinobt() {
		fst, fprob = s.walk(ia.FinoTree(), ownFinobt, func(r []byte) {
			if len(fino) < limit {
				fino = append(fino, ondisk.DecodeInobtRec(r, ia.Sparse))
			}
		})
	}
	if c.sb.HasInobtCnt() {
		if iprob == 0 && uint32(ist.Blocks) != a.IBlocks {
			s.add(s.here(finding(KindAGIBlocks, "AGI ino_blocks is not the size of the inobt").exp(ist.Blocks, a.IBlocks), hdrBlk))
		}
		if c.sb.HasFinobt() && fprob == 0 && uint32(fst.Blocks) != a.FBlocks {
			s.add(s.here(finding(KindAGIBlocks, "AGI fino_blocks is not the size of the finobt").exp(fst.Blocks, a.FBlocks), hdrBlk))
		}
	}
	var count, free uint64
	for _, r := range ino {
		if !s.inobtRecord(r, "inobt") {
			iprob++
			continue
		}
		s.recs = append(s.recs, r)
		count += uint64(r.Count)
		free += uint64(r.FreeCount)
	}
	s.res.counts.icount, s.res.counts.ifree = count, free
	s.res.have.inodes = iprob == 0
	if iprob == 0 {
		if uint64(a.Count) != count {
			s.add(s.here(finding(KindAGICount, "AGI count is not the number of inodes in the inobt's chunks").exp(count, a.Count), hdrBlk))
		}
		if uint64(a.FreeCount) != free {
			s.add(s.here(finding(KindAGIFreecount, "AGI freecount is not the number of free inodes in the inobt").exp(free, a.FreeCount), hdrBlk))
		}
	}
	if c.sb.HasFinobt() && fprob == 0 {
		s.compareFinobt(ino, fino)
	}
}

// inobtRecord checks one inode chunk record and claims the chunk's
// blocks; false when the record cannot be used.
func (s *agScan) inobtRecord(r ondisk.InobtRec, tree string) bool {
	g := s.g
	agbno := g.AginoAgbno(r.StartIno)
	holes := agi.HoleMask(r)
	bad := func(format string, args ...any) Finding {
		return s.here(finding(KindInobtRecord, "%s record for chunk %d: %s", tree, r.StartIno, fmt.Sprintf(format, args...)), agbno)
	}
	last := uint64(r.StartIno) + ondisk.InodesPerChunk - 1
	// A chunk starts on a block boundary (or, with more than 64 inodes per
	// block, on a 64-inode boundary inside one); chunks need not be 64
	// aligned in inode numbers without sparse inodes.
	align := uint32(min(g.InoPerBlock, ondisk.InodesPerChunk))
	if r.StartIno%align != 0 || agbno <= ondisk.AGFLBlock(g) || uint64(g.AginoAgbno(uint32(min(last, 1<<32-1)))) >= uint64(s.size) ||
		(g.AGInoLog < 32 && last>>g.AGInoLog != 0) {
		s.add(bad("the chunk is not 64 inodes from a block boundary inside the AG's data blocks"))
		return false
	}
	// Counts that disagree with the masks are reported, but the chunk is
	// still where the record says: its inodes are checked all the same.
	if n := 64 - bits.OnesCount64(holes); n != int(r.Count) {
		s.add(bad("count disagrees with the holemask").exp(n, r.Count))
	}
	if r.Free&holes != holes {
		s.add(bad("holes not marked free").exp(fmt.Sprintf("free mask covering 0x%016x", holes), fmt.Sprintf("0x%016x", r.Free)))
	}
	if n := bits.OnesCount64(r.Free &^ holes); n != int(r.FreeCount) {
		s.add(bad("freecount disagrees with the free mask").exp(n, r.FreeCount))
	}
	// Claim the blocks holding the chunk's allocated inodes. With more
	// than 64 inodes per block, chunks share blocks: claim each once.
	for i := uint32(0); i < ondisk.InodesPerChunk; i++ {
		if holes&(1<<i) != 0 {
			continue
		}
		if b := g.AginoAgbno(r.StartIno + i); b != s.lastIBlk || !s.iblkSet {
			s.out.claimAG(s.agno, b, 1, ownInodes, 0)
			s.lastIBlk, s.iblkSet = b, true
		}
	}
	return true
}

// compareFinobt: the finobt holds exactly the inobt records with free
// inodes, with the same contents.
func (s *agScan) compareFinobt(ino, fino []ondisk.InobtRec) {
	var want []ondisk.InobtRec
	for _, r := range ino {
		if r.FreeCount > 0 {
			want = append(want, r)
		}
	}
	i, j := 0, 0
	for i < len(want) || j < len(fino) {
		switch {
		case j == len(fino) || (i < len(want) && want[i].StartIno < fino[j].StartIno):
			s.add(s.here(finding(KindFinobtMissing, "chunk %d has %d free inodes but no finobt record", want[i].StartIno, want[i].FreeCount).
				exp("a finobt record", "none"), s.g.AginoAgbno(want[i].StartIno)))
			i++
		case i == len(want) || fino[j].StartIno < want[i].StartIno:
			s.add(s.here(finding(KindFinobtMissing, "finobt record for chunk %d, which the inobt says has no free inodes", fino[j].StartIno).
				exp("no finobt record", fmt.Sprintf("%d free", fino[j].FreeCount)), s.g.AginoAgbno(fino[j].StartIno)))
			j++
		default:
			if want[i] != fino[j] {
				s.add(s.here(finding(KindFinobtMissing, "finobt record for chunk %d differs from the inobt's", want[i].StartIno).
					exp(inobtText(want[i]), inobtText(fino[j])), s.g.AginoAgbno(want[i].StartIno)))
			}
			i++
			j++
		}
	}
}

// inobtText shows an inode chunk record as xfs_db does.
func inobtText(r ondisk.InobtRec) string {
	return fmt.Sprintf("[startino %d, holemask %#x, count %d, freecount %d, free %#x]", r.StartIno, r.HoleMask, r.Count, r.FreeCount, r.Free)
}
