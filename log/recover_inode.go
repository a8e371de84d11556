package log

import (
	"encoding/binary"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Log dinode fields recovery looks at (host order, at the on-disk offsets).
const (
	ldiMagicOff    = 0
	ldiModeOff     = 2
	ldiVersionOff  = 4
	ldiFormatOff   = 5
	ldiOnlinkOff   = 6
	ldiV3PadOff    = 24 // di_big_nextents with NREXT64
	ldiNBlocksOff  = 64
	ldiNExtOff     = 76 // di_big_anextents with NREXT64
	ldiANExtOff    = 80 // di_nrext64_pad with NREXT64
	ldiForkOffOff  = 82
	ldiNextUnlOff  = 96
	ldiFlags2Off   = 120
	ldiPad2Off     = 132
	ldiPad2Len     = 12
	ldiInoOff      = 152
	flags2Nrext64  = 0x10
	modeTypeMask   = 0o170000
	modeReg        = 0o100000
	modeDir        = 0o040000
	nullAgino      = 0xffffffff
	icreateLogSize = 28
)

// checkLogDinode is the validation xlog_recover_inode_commit_pass2 does on
// the logged core before replaying it.
func checkLogDinode(ld []byte, g *ondisk.Geometry) error {
	le := binary.LittleEndian
	if le.Uint16(ld[ldiMagicOff:]) != ondisk.DinodeMagic {
		return ondisk.Corruptf("logged inode core has magic 0x%04x", le.Uint16(ld[ldiMagicOff:]))
	}
	if ld[ldiVersionOff] != 3 {
		return ondisk.Corruptf("logged inode core of version %d on a v5 file system", ld[ldiVersionOff])
	}
	mode, format := le.Uint16(ld[ldiModeOff:]), ld[ldiFormatOff]
	switch uint32(mode) & modeTypeMask {
	case modeReg:
		if format != ondisk.FmtExtents && format != ondisk.FmtBtree {
			return ondisk.Corruptf("logged regular file with data fork format %d", format)
		}
	case modeDir:
		if format != ondisk.FmtExtents && format != ondisk.FmtBtree && format != ondisk.FmtLocal {
			return ondisk.Corruptf("logged directory with data fork format %d", format)
		}
	}
	var next, anext uint64
	if le.Uint64(ld[ldiFlags2Off:])&flags2Nrext64 != 0 {
		if !g.Nrext64 || le.Uint16(ld[ldiANExtOff:]) != 0 {
			return ondisk.Corruptf("logged inode core with a bad large extent count format")
		}
		next, anext = le.Uint64(ld[ldiV3PadOff:]), uint64(le.Uint32(ld[ldiNExtOff:]))
	} else {
		if le.Uint64(ld[ldiV3PadOff:]) != 0 {
			return ondisk.Corruptf("logged inode core with di_v3_pad 0x%x", le.Uint64(ld[ldiV3PadOff:]))
		}
		next, anext = uint64(le.Uint32(ld[ldiNExtOff:])), uint64(le.Uint16(ld[ldiANExtOff:]))
	}
	if next+anext < next || next+anext > le.Uint64(ld[ldiNBlocksOff:]) {
		return ondisk.Corruptf("logged inode core with %d+%d extents in %d blocks", next, anext, le.Uint64(ld[ldiNBlocksOff:]))
	}
	if int(ld[ldiForkOffOff]) > g.InodeSize {
		return ondisk.Corruptf("logged inode core with fork offset %d", ld[ldiForkOffOff])
	}
	return nil
}

// logDinodeToDisk is xfs_log_dinode_to_disk: every field of the logged
// core in disk order, except di_next_unlinked (the buffer's value stands:
// unlinked lists are logged apart) and the CRC; the LSN is the replayed
// transaction's; padding and the v1 link count are zeroed.
func logDinodeToDisk(dip, ld []byte, lsn LSN) {
	var core [LogDinodeSize]byte
	LogToDiskDinode(core[:], ld)
	keepNext := binary.BigEndian.Uint32(dip[ldiNextUnlOff:])
	keepCRC := binary.LittleEndian.Uint32(dip[ondisk.DinodeCRCOff:])
	copy(dip[:LogDinodeSize], core[:])
	binary.BigEndian.PutUint32(dip[ldiNextUnlOff:], keepNext)
	binary.LittleEndian.PutUint32(dip[ondisk.DinodeCRCOff:], keepCRC)
	binary.BigEndian.PutUint64(dip[ondisk.DinodeLSNOff:], uint64(lsn))
	dip[ldiOnlinkOff], dip[ldiOnlinkOff+1] = 0, 0
	clear(dip[ldiPad2Off : ldiPad2Off+ldiPad2Len])
	if binary.BigEndian.Uint64(dip[ldiFlags2Off:])&flags2Nrext64 == 0 {
		binary.BigEndian.PutUint64(dip[ldiV3PadOff:], 0)
	}
}

// bmbtToBmdr is xfs_bmbt_to_bmdr: the fork root logged in the in-core
// long-block form (a 72-byte block header, keys, then pointers placed for
// the logged size) becomes the on-disk bmdr root (level, numrecs, keys and
// pointers placed for the fork size).
func bmbtToBmdr(src, dst []byte) error {
	be := binary.BigEndian
	if len(src) < ondisk.LongBlockHeaderSize || len(dst) < ondisk.BmdrHeaderSize {
		return ondisk.Corruptf("logged btree root of %d bytes into a %d-byte fork", len(src), len(dst))
	}
	if m := be.Uint32(src); m != ondisk.BmapMagic {
		return ondisk.Corruptf("logged btree root with magic 0x%08x", m)
	}
	level, n := be.Uint16(src[4:]), int(be.Uint16(src[6:]))
	smax := (len(src) - ondisk.LongBlockHeaderSize) / 16
	dmax := (len(dst) - ondisk.BmdrHeaderSize) / 16
	if n > smax || n > dmax {
		return ondisk.Corruptf("logged btree root with %d records (room for %d logged, %d in the fork)", n, smax, dmax)
	}
	be.PutUint16(dst[0:], level)
	be.PutUint16(dst[2:], uint16(n))
	copy(dst[ondisk.BmdrHeaderSize:], src[ondisk.LongBlockHeaderSize:ondisk.LongBlockHeaderSize+8*n])
	sp := ondisk.LongBlockHeaderSize + 8*smax
	dp := ondisk.BmdrHeaderSize + 8*dmax
	copy(dst[dp:dp+8*n], src[sp:sp+8*n])
	return nil
}

// replayInode is xlog_recover_inode_commit_pass2.
func (r *recoverer) replayInode(t *Transaction, it *Item) error {
	f, err := DecodeInodeLogFormat(it.Regions[0])
	if err != nil {
		return err
	}
	if f.Fields&(ILogDOwner|ILogAOwner) != 0 {
		return r.refuse(t, "an inode item changing a fork's block owners (extent swap)")
	}
	if r.cancel.is(f.Blkno, int(f.Len)) {
		r.rep.InodesCancelled++
		return nil
	}
	g := r.g
	if f.Fields&ILogCore == 0 {
		return ondisk.Corruptf("inode %d: item without its core", f.Ino)
	}
	if f.Size < 2 || f.Size > 4 || int(f.Size) != len(it.Regions) {
		return ondisk.Corruptf("inode %d: item of %d regions", f.Ino, f.Size)
	}
	if f.Len <= 0 || f.BOffset < 0 || int(f.BOffset)+g.InodeSize > int(f.Len)*ondisk.BBSize {
		return ondisk.Corruptf("inode %d: at offset %d of a %d-block cluster", f.Ino, f.BOffset, f.Len)
	}
	b, err := r.cache.get(f.Blkno, int(f.Len))
	if err != nil {
		return err
	}
	dip := b.data[f.BOffset : int(f.BOffset)+g.InodeSize]
	if m := binary.BigEndian.Uint16(dip); m != ondisk.DinodeMagic {
		return ondisk.Corruptf("inode %d: no inode at daddr %d offset %d (magic 0x%04x)", f.Ino, f.Blkno, f.BOffset, m)
	}
	ld := it.Regions[1]
	if len(ld) != LogDinodeSize {
		return ondisk.Corruptf("inode %d: logged core of %d bytes", f.Ino, len(ld))
	}
	if dip[ldiVersionOff] >= 3 {
		lsn := int64(binary.BigEndian.Uint64(dip[ondisk.DinodeLSNOff:]))
		if lsn != 0 && lsn != -1 && lsn > int64(t.LSN) {
			r.rep.InodesSkipped++
			return nil
		}
	}
	if err := checkLogDinode(ld, g); err != nil {
		return err
	}
	logDinodeToDisk(dip, ld, t.LSN)
	if f.Fields&ILogDev != 0 {
		binary.BigEndian.PutUint32(dip[ondisk.DinodeCoreSize:], f.Rdev)
	}
	lit := g.InodeSize - ondisk.DinodeCoreSize
	forkOff := int(dip[ldiForkOffOff]) * 8
	dsize, aoff := lit, ondisk.DinodeCoreSize+forkOff
	if forkOff != 0 {
		dsize = forkOff
	}
	idx := 2
	if f.Fields&(ILogDData|ILogDExt|ILogDBroot) != 0 && f.Size > 2 {
		src := it.Regions[2]
		switch f.Fields & (ILogDData | ILogDExt | ILogDBroot) {
		case ILogDData, ILogDExt:
			if len(src) > lit {
				return ondisk.Corruptf("inode %d: logged data fork of %d bytes, the inode holds %d", f.Ino, len(src), lit)
			}
			copy(dip[ondisk.DinodeCoreSize:], src)
		case ILogDBroot:
			if err := bmbtToBmdr(src, dip[ondisk.DinodeCoreSize:ondisk.DinodeCoreSize+min(dsize, lit)]); err != nil {
				return err
			}
		}
		idx = 3
	}
	if af := f.Fields & (ILogAData | ILogAExt | ILogABroot); af != 0 {
		if idx >= len(it.Regions) {
			return ondisk.Corruptf("inode %d: attr fork logged without its region", f.Ino)
		}
		src := it.Regions[idx]
		if aoff > g.InodeSize {
			return ondisk.Corruptf("inode %d: attr fork at %d past the inode", f.Ino, aoff)
		}
		switch af {
		case ILogAData, ILogAExt:
			if len(src) > g.InodeSize-aoff {
				return ondisk.Corruptf("inode %d: logged attr fork of %d bytes, the inode holds %d", f.Ino, len(src), g.InodeSize-aoff)
			}
			copy(dip[aoff:], src)
		case ILogABroot:
			if err := bmbtToBmdr(src, dip[aoff:]); err != nil {
				return err
			}
		default:
			return ondisk.Corruptf("inode %d: attr fork flags 0x%x", f.Ino, af)
		}
	}
	ondisk.StampCRC(dip, ondisk.DinodeCRCOff)
	d, err := ondisk.DecodeDinode(dip)
	if err == nil {
		err = d.Verify(g, f.Ino)
	}
	if err != nil {
		return ondisk.Corruptf("inode %d is not valid after replay: %v", f.Ino, err)
	}
	b.dirty = true
	r.rep.InodesReplayed++
	return nil
}

// icreate mirrors xfs_icreate_log: a new inode chunk, logged as what it is
// rather than as buffer images.
type icreate struct {
	AG, AGBno, Count, ISize, Length, Gen uint32
}

func decodeICreate(b []byte) (*icreate, error) {
	le, be := binary.LittleEndian, binary.BigEndian
	if len(b) < icreateLogSize {
		return nil, ondisk.Corruptf("inode create item of %d bytes", len(b))
	}
	if le.Uint16(b) != ItemICreate || le.Uint16(b[2:]) != 1 {
		return nil, ondisk.Corruptf("inode create item with type 0x%x size %d", le.Uint16(b), le.Uint16(b[2:]))
	}
	return &icreate{be.Uint32(b[4:]), be.Uint32(b[8:]), be.Uint32(b[12:]), be.Uint32(b[16:]), be.Uint32(b[20:]), be.Uint32(b[24:])}, nil
}

// replayICreate is xlog_recover_icreate_commit_pass2 and the recovery path
// of xfs_ialloc_inode_init: every cluster of the chunk is written fresh
// with free inodes carrying magic, version, generation, number and uuid.
func (r *recoverer) replayICreate(t *Transaction, it *Item) error {
	ic, err := decodeICreate(it.Regions[0])
	if err != nil {
		return err
	}
	g := r.g
	ialloc := max(ondisk.InodesPerChunk/g.InoPerBlock, 1)
	minBlks := ialloc
	if r.sb.HasSpinodes() {
		minBlks = int(r.sb.SpinoAlign)
	}
	switch {
	case ic.AG >= g.AGCount:
		return ondisk.Corruptf("inode create in AG %d of %d", ic.AG, g.AGCount)
	case ic.AGBno == 0 || ic.AGBno >= g.AGSize(ic.AG):
		return ondisk.Corruptf("inode create at AG block %d", ic.AGBno)
	case int(ic.ISize) != g.InodeSize:
		return ondisk.Corruptf("inode create of %d-byte inodes", ic.ISize)
	case ic.Count == 0 || ic.Length == 0 || ic.Length >= g.AGBlocks:
		return ondisk.Corruptf("inode create of %d inodes in %d blocks", ic.Count, ic.Length)
	case int(ic.Length) != ialloc && int(ic.Length) != minBlks:
		return ondisk.Corruptf("inode create of an unsupported chunk length %d", ic.Length)
	case ic.Count>>g.InoPBLog != ic.Length:
		return ondisk.Corruptf("inode create of %d inodes in %d blocks", ic.Count, ic.Length)
	case uint64(ic.AGBno)+uint64(ic.Length) > uint64(g.AGSize(ic.AG)):
		return ondisk.Corruptf("inode create past the end of AG %d", ic.AG)
	}
	bpc := g.ClusterFSBs
	nbufs := ic.Length / bpc
	bbs := int(bpc) << (g.BlockLog - ondisk.BBShift)
	cancelled := 0
	for i := uint32(0); i < nbufs; i++ {
		if r.cancel.is(g.AGBDaddr(ic.AG, ic.AGBno+i*bpc), bbs) {
			cancelled++
		}
	}
	if cancelled > 0 {
		// The kernel skips the whole chunk if any cluster was freed.
		r.rep.ICreatesCancelled++
		return nil
	}
	ino := g.Ino(ic.AG, g.AgbnoAgino(ic.AGBno))
	be := binary.BigEndian
	for i := uint32(0); i < nbufs; i++ {
		b, err := r.cache.getZero(g.AGBDaddr(ic.AG, ic.AGBno+i*bpc), bbs)
		if err != nil {
			return err
		}
		for off := 0; off+g.InodeSize <= len(b.data); off += g.InodeSize {
			d := b.data[off : off+g.InodeSize]
			be.PutUint16(d[0:], ondisk.DinodeMagic)
			d[ldiVersionOff] = 3
			be.PutUint32(d[92:], ic.Gen)
			be.PutUint32(d[ldiNextUnlOff:], nullAgino)
			be.PutUint64(d[ldiInoOff:], ino)
			copy(d[160:176], g.MetaUUID[:])
			ondisk.StampCRC(d, ondisk.DinodeCRCOff)
			ino++
		}
		b.dirty = true
		b.pending = 0
	}
	r.rep.ICreates++
	return nil
}
