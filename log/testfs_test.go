package log

import (
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// A synthetic file system for unit tests that need no xfsprogs: a valid
// superblock, AGF/AGI headers with the right magic and UUID, an inode
// cluster with a shortform directory, an extents file and a BMBT file, and
// a log holding one unmount record at block 0 as mkfs leaves it.

const (
	tfsBlock    = 4096
	tfsAGBlocks = 2048
	tfsAGs      = 2
	tfsLogStart = 1024 // AG 0 block
	tfsRootIno  = 128  // agbno 16: the cluster at blocks 16..19
	tfsFileIno  = 129
	tfsBtreeIno = 130
	tfsAttrIno  = 131
	tfsDevIno   = 132
)

type testFS struct {
	dev *ondisk.MemDevice
	sb  *ondisk.Superblock
	g   *ondisk.Geometry
}

func newTestFS(t testing.TB, logBlocks uint32) *testFS {
	t.Helper()
	img := make([]byte, tfsAGs*tfsAGBlocks*tfsBlock)
	sb := &ondisk.Superblock{
		MagicNum: ondisk.SBMagic, BlockSize: tfsBlock, DBlocks: tfsAGs * tfsAGBlocks,
		UUID:     ondisk.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		LogStart: tfsLogStart, RootIno: tfsRootIno, RBMIno: 129, RSumIno: 130,
		RExtSize: 1, AGBlocks: tfsAGBlocks, AGCount: tfsAGs, LogBlocks: logBlocks,
		VersionNum: 5 | ondisk.VersionNlinkBit | ondisk.VersionDirV2Bit | ondisk.VersionAttrBit |
			ondisk.VersionAlignBit | ondisk.VersionLogV2Bit | ondisk.VersionMoreBitsBit,
		SectSize: 512, InodeSize: 512, InoPBlock: 8, BlockLog: 12, SectLog: 9, InodeLog: 9, InoPBLog: 3,
		AGBlkLog: 11, IMaxPct: 25, ICount: 64, IFree: 59, FDBlocks: 3000,
		UQuotIno: ^uint64(0), GQuotIno: ^uint64(0), PQuotIno: ^uint64(0),
		InoAlignmt: 4, DirBlkLog: 0, LogSUnit: 1,
		Features2:        ondisk.Features2LazySBCount | ondisk.Features2Attr2 | ondisk.Features2CRC | ondisk.Features2ProjID32,
		FeaturesIncompat: ondisk.IncompatFType,
	}
	sb.BadFeatures2 = sb.Features2
	sb.Encode(img[:512])
	sb, err := ondisk.DecodeSuperblock(img[:512])
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Verify(); err != nil {
		t.Fatal(err)
	}
	g := ondisk.NewGeometry(sb)
	be := binary.BigEndian
	for ag := uint32(0); ag < tfsAGs; ag++ {
		agf := img[g.AGFDaddr(ag)<<9:][:512]
		be.PutUint32(agf, ondisk.AGFMagic)
		be.PutUint32(agf[4:], 1)
		be.PutUint32(agf[8:], ag)
		copy(agf[64:80], sb.UUID[:])
		ondisk.StampCRC(agf, ondisk.AGFCRCOff)
		agi := img[g.AGIDaddr(ag)<<9:][:512]
		be.PutUint32(agi, ondisk.AGIMagic)
		be.PutUint32(agi[4:], 1)
		be.PutUint32(agi[8:], ag)
		copy(agi[296:312], sb.UUID[:])
		ondisk.StampCRC(agi, ondisk.AGICRCOff)
	}
	tfs := &testFS{dev: ondisk.NewMemDevice(img), sb: sb, g: g}
	tfs.writeInodes(t)
	// The log: one unmount record at block 0, head at 2, as mkfs leaves it.
	area := NewArea(tfs.dev, g, sb.UUID)
	w, err := newLogWriter(area, sb, &State{Empty: true, LastRecord: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.writeUnmount(); err != nil {
		t.Fatal(err)
	}
	return tfs
}

// writeInodes fills the first cluster with three inodes of different fork
// formats and marks the rest free.
func (tfs *testFS) writeInodes(t testing.TB) {
	g := tfs.g
	loc := g.LocateInode(tfsRootIno)
	cl := make([]byte, loc.ClusterLen)
	for i := 0; i < loc.ClusterLen/g.InodeSize; i++ {
		ino := uint64(tfsRootIno + i)
		d := &ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 3, Format: ondisk.FmtExtents,
			NextUnlinked: 0xffffffff, Ino: ino, UUID: g.MetaUUID}
		ip := cl[i*g.InodeSize : (i+1)*g.InodeSize]
		switch ino {
		case tfsRootIno:
			d.Mode, d.Format, d.Nlink, d.Size = 0o40755, ondisk.FmtLocal, 2, 10
			// Shortform directory: count 0, i8count 0, parent 128.
			sf := ip[ondisk.DinodeCoreSize:]
			sf[0], sf[1] = 0, 0
			binary.BigEndian.PutUint32(sf[2:], tfsRootIno)
		case tfsFileIno:
			d.Mode, d.Nlink, d.Size, d.NBlocks, d.NExtents = 0o100644, 1, 3*tfsBlock, 3, 2
			ondisk.EncodeExtents(ip[ondisk.DinodeCoreSize:], []ondisk.Extent{
				{StartOff: 0, StartBlock: 100, BlockCount: 2}, {StartOff: 5, StartBlock: 200, BlockCount: 1}})
		case tfsBtreeIno:
			d.Mode, d.Format, d.Nlink, d.Size, d.NBlocks, d.NExtents = 0o100644, ondisk.FmtBtree, 1, 1<<30, 40, 30
			r := &ondisk.BmdrRoot{Level: 1, NumRecs: 2, Keys: []uint64{0, 500}, Ptrs: []uint64{300, 301}}
			r.Encode(ip[ondisk.DinodeCoreSize:])
		case tfsAttrIno:
			d.Mode, d.Nlink, d.ForkOff, d.AFormat = 0o100600, 1, 24, ondisk.FmtLocal
			af := ip[ondisk.DinodeCoreSize+24*8:]
			binary.BigEndian.PutUint16(af, 4+3+2+3) // totsize: header, one entry "abc" = "xy"
			af[2] = 1
			af[4], af[5], af[6] = 3, 2, 0
			copy(af[7:], "abcxy")
		case tfsDevIno:
			d.Mode, d.Format, d.Nlink = 0o20644, ondisk.FmtDev, 1
			binary.BigEndian.PutUint32(ip[ondisk.DinodeCoreSize:], 0x0801)
		default:
			d.Mode = 0
		}
		d.Encode(ip)
	}
	if _, err := tfs.dev.WriteAt(cl, loc.ClusterDaddr<<9); err != nil {
		t.Fatal(err)
	}
}

func (tfs *testFS) open(t testing.TB, opt Options) *Journal {
	t.Helper()
	j, err := Open(tfs.dev, tfs.sb, tfs.g, opt)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
