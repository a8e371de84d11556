package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Inode core layout (struct xfs_dinode, v3).
const (
	DinodeMagic    = 0x494e // "IN"
	DinodeCoreSize = 176    // the v3 core; the literal area (forks) follows
	DinodeCRCOff   = 100
	DinodeLSNOff   = 112

	dinodeV2CoreSize = 100 // the v1/v2 core ends before di_crc
)

// Fork formats (di_format, di_aformat).
const (
	FmtDev     = 0 // device number, or nothing (FIFO, socket)
	FmtLocal   = 1 // data in the fork itself
	FmtExtents = 2 // array of extent records
	FmtBtree   = 3 // BMBT root
	FmtUUID    = 4 // unused by the kernel
)

// di_flags bits.
const (
	DiFlagRealtime     = 1 << 0
	DiFlagPrealloc     = 1 << 1
	DiFlagNewrtbm      = 1 << 2
	DiFlagImmutable    = 1 << 3
	DiFlagAppend       = 1 << 4
	DiFlagSync         = 1 << 5
	DiFlagNoatime      = 1 << 6
	DiFlagNodump       = 1 << 7
	DiFlagRtinherit    = 1 << 8
	DiFlagProjinherit  = 1 << 9
	DiFlagNosymlinks   = 1 << 10
	DiFlagExtsize      = 1 << 11
	DiFlagExtszinherit = 1 << 12
	DiFlagNodefrag     = 1 << 13
	DiFlagFilestream   = 1 << 14
)

// di_flags2 bits.
const (
	DiFlags2Dax        = 1 << 0
	DiFlags2Reflink    = 1 << 1
	DiFlags2Cowextsize = 1 << 2
	DiFlags2Bigtime    = 1 << 3
	DiFlags2Nrext64    = 1 << 4
)

// Limits on extent counts (xfs_iext_max_nextents): the classic counters
// are s32/s16 in the kernel, the NREXT64 ones 48 and 32 bits.
const (
	MaxExtCntDataSmall = 1<<31 - 1
	MaxExtCntAttrSmall = 1<<15 - 1
	MaxExtCntDataLarge = 1<<48 - 1
	MaxExtCntAttrLarge = 1<<32 - 1
)

// Dinode mirrors the v3 on-disk inode core (struct xfs_dinode). Fields the
// format overlays are decoded according to di_version and di_flags2:
// NExtents and ANExtents come from the NREXT64 counters when that flag is
// set, else from the classic u32/u16 ones. The pad fields are kept so that
// Encode reproduces any inode byte for byte; on a valid v3 inode they are
// zero.
type Dinode struct {
	Magic        uint16
	Mode         uint16
	Version      uint8
	Format       uint8
	OnLink       uint16 // v1 link count; zero on v2/v3 inodes
	UID, GID     uint32
	Nlink        uint32
	ProjIDLo     uint16
	ProjIDHi     uint16
	V3Pad        uint64 // di_v3_pad (or v2 pad and flushiter); not NREXT64
	Atime        Timestamp
	Mtime        Timestamp
	Ctime        Timestamp
	Size         int64
	NBlocks      uint64
	ExtSize      uint32
	NExtents     uint64 // data fork extent count
	ANExtents    uint32 // attr fork extent count
	Nrext64Pad   uint16 // di_nrext64_pad; only with NREXT64
	ForkOff      uint8  // attr fork offset in 8-byte units from the literal area
	AFormat      uint8
	DMEvMask     uint32
	DMState      uint16
	Flags        uint16
	Gen          uint32
	NextUnlinked uint32
	CRC          uint32 // as the kernel computes it (stored little-endian)
	ChangeCount  uint64
	LSN          uint64
	Flags2       uint64
	CowExtSize   uint32
	Pad2         [12]byte
	Crtime       Timestamp
	Ino          uint64
	UUID         UUID

	crcOK bool
}

// hasLargeExtentCounts and hasBigtime follow xfs_dinode_has_*: flags2 only
// means something on v3 inodes.
func (d *Dinode) hasLargeExtentCounts() bool {
	return d.Version >= 3 && d.Flags2&DiFlags2Nrext64 != 0
}

func (d *Dinode) hasBigtime() bool { return d.Version >= 3 && d.Flags2&DiFlags2Bigtime != 0 }

// DecodeDinode decodes one inode; buf is the whole inode (inodesize bytes),
// over which the CRC verdict is taken. A bad magic number returns the
// decoded inode with an error, so that it can still be shown.
func DecodeDinode(buf []byte) (*Dinode, error) {
	if len(buf) < DinodeCoreSize {
		return nil, Corruptf("inode: buffer of %d bytes, want at least %d", len(buf), DinodeCoreSize)
	}
	be := binary.BigEndian
	d := &Dinode{
		Magic:        be.Uint16(buf[0:]),
		Mode:         be.Uint16(buf[2:]),
		Version:      buf[4],
		Format:       buf[5],
		OnLink:       be.Uint16(buf[6:]),
		UID:          be.Uint32(buf[8:]),
		GID:          be.Uint32(buf[12:]),
		Nlink:        be.Uint32(buf[16:]),
		ProjIDLo:     be.Uint16(buf[20:]),
		ProjIDHi:     be.Uint16(buf[22:]),
		Size:         int64(be.Uint64(buf[56:])),
		NBlocks:      be.Uint64(buf[64:]),
		ExtSize:      be.Uint32(buf[72:]),
		ForkOff:      buf[82],
		AFormat:      buf[83],
		DMEvMask:     be.Uint32(buf[84:]),
		DMState:      be.Uint16(buf[88:]),
		Flags:        be.Uint16(buf[90:]),
		Gen:          be.Uint32(buf[92:]),
		NextUnlinked: be.Uint32(buf[96:]),
		CRC:          StoredCRC(buf, DinodeCRCOff),
		ChangeCount:  be.Uint64(buf[104:]),
		LSN:          be.Uint64(buf[112:]),
		Flags2:       be.Uint64(buf[120:]),
		CowExtSize:   be.Uint32(buf[128:]),
		Ino:          be.Uint64(buf[152:]),
	}
	copy(d.Pad2[:], buf[132:144])
	copy(d.UUID[:], buf[160:176])
	if d.hasLargeExtentCounts() {
		d.NExtents = be.Uint64(buf[24:])
		d.ANExtents = be.Uint32(buf[76:])
		d.Nrext64Pad = be.Uint16(buf[80:])
	} else {
		d.V3Pad = be.Uint64(buf[24:])
		d.NExtents = uint64(be.Uint32(buf[76:]))
		d.ANExtents = uint32(be.Uint16(buf[80:]))
	}
	bt := d.hasBigtime()
	d.Atime = DecodeTimestamp(buf[32:], bt)
	d.Mtime = DecodeTimestamp(buf[40:], bt)
	d.Ctime = DecodeTimestamp(buf[48:], bt)
	d.Crtime = DecodeTimestamp(buf[144:], bt)
	d.crcOK = VerifyCRC(buf, DinodeCRCOff)
	if d.Magic != DinodeMagic {
		return d, Corruptf("inode: bad magic 0x%04x", d.Magic)
	}
	return d, nil
}

// Encode writes the 176-byte core into buf, which holds the whole inode
// (forks included), and stamps the CRC over all of buf for a v3 inode.
// Extent counts are written to the counters di_flags2 selects; a count too
// large for the classic counters is truncated, so callers set NREXT64 (or
// refuse) first.
func (d *Dinode) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint16(buf[0:], d.Magic)
	be.PutUint16(buf[2:], d.Mode)
	buf[4] = d.Version
	buf[5] = d.Format
	be.PutUint16(buf[6:], d.OnLink)
	be.PutUint32(buf[8:], d.UID)
	be.PutUint32(buf[12:], d.GID)
	be.PutUint32(buf[16:], d.Nlink)
	be.PutUint16(buf[20:], d.ProjIDLo)
	be.PutUint16(buf[22:], d.ProjIDHi)
	if d.hasLargeExtentCounts() {
		be.PutUint64(buf[24:], d.NExtents)
		be.PutUint32(buf[76:], d.ANExtents)
		be.PutUint16(buf[80:], d.Nrext64Pad)
	} else {
		be.PutUint64(buf[24:], d.V3Pad)
		be.PutUint32(buf[76:], uint32(d.NExtents))
		be.PutUint16(buf[80:], uint16(d.ANExtents))
	}
	bt := d.hasBigtime()
	d.Atime.Encode(buf[32:], bt)
	d.Mtime.Encode(buf[40:], bt)
	d.Ctime.Encode(buf[48:], bt)
	be.PutUint64(buf[56:], uint64(d.Size))
	be.PutUint64(buf[64:], d.NBlocks)
	be.PutUint32(buf[72:], d.ExtSize)
	buf[82] = d.ForkOff
	buf[83] = d.AFormat
	be.PutUint32(buf[84:], d.DMEvMask)
	be.PutUint16(buf[88:], d.DMState)
	be.PutUint16(buf[90:], d.Flags)
	be.PutUint32(buf[92:], d.Gen)
	be.PutUint32(buf[96:], d.NextUnlinked)
	be.PutUint64(buf[104:], d.ChangeCount)
	be.PutUint64(buf[112:], d.LSN)
	be.PutUint64(buf[120:], d.Flags2)
	be.PutUint32(buf[128:], d.CowExtSize)
	copy(buf[132:144], d.Pad2[:])
	d.Crtime.Encode(buf[144:], bt)
	be.PutUint64(buf[152:], d.Ino)
	copy(buf[160:176], d.UUID[:])
	if d.Version >= 3 {
		StampCRC(buf, DinodeCRCOff)
		d.CRC = StoredCRC(buf, DinodeCRCOff)
		d.crcOK = true
	}
}

// CRCOK reports whether the CRC matched the inode when it was decoded (or
// was stamped by Encode).
func (d *Dinode) CRCOK() bool { return d.crcOK }

// IsFree reports an unallocated inode.
func (d *Dinode) IsFree() bool { return d.Mode == 0 }

// ProjID is the 32-bit project ID split over two fields.
func (d *Dinode) ProjID() uint32 { return uint32(d.ProjIDHi)<<16 | uint32(d.ProjIDLo) }

// maxDirExtents is the kernel's m_dir_geo->max_extents: a directory spans at
// most three 32 GiB address spaces (data, leaf, free index).
func maxDirExtents(g *Geometry) uint64 { return (3 << 35) >> g.BlockLog }

// Verify checks the inode as the kernel's xfs_dinode_verify does (plus the
// btree root checks of xfs_iformat_btree), for inode number ino. Free
// inodes (mode 0) are valid as mkfs leaves them (format 0) and as the
// kernel leaves them after freeing (format extents). The BMBT root of a
// btree fork is checked by DecodeBmdr, which needs the fork bytes. Checks
// that need
// features the Geometry does not carry (reflink for the REFLINK and
// COWEXTSIZE flags, the realtime extent size) are limited to what does not
// depend on them; realtime inodes are refused since xfsimg refuses
// realtime file systems.
func (d *Dinode) Verify(g *Geometry, ino uint64) error {
	if err := d.verify(g, ino); err != nil {
		return fmt.Errorf("inode %d: %w", ino, err)
	}
	return nil
}

func (d *Dinode) verify(g *Geometry, ino uint64) error {
	if d.Magic != DinodeMagic {
		return Corruptf("bad magic 0x%04x", d.Magic)
	}
	if d.Version != 3 {
		return Corruptf("version %d on a v5 file system", d.Version)
	}
	if !d.crcOK {
		return Corruptf("bad CRC 0x%08x", d.CRC)
	}
	if d.Ino != ino {
		return Corruptf("inode number field says %d", d.Ino)
	}
	if d.UUID != g.MetaUUID {
		return Corruptf("uuid %v does not match the file system", d.UUID)
	}
	if d.Size < 0 {
		return Corruptf("negative size %d", d.Size)
	}
	mode := d.Mode
	if mode != 0 && ModeToFType(mode) == FTUnknown {
		return Corruptf("bad file type in mode %#o", mode)
	}
	if (d.IsDir() || d.IsSymlink()) && d.Size == 0 {
		return Corruptf("zero-length directory or symlink")
	}
	if d.hasLargeExtentCounts() {
		if !g.Nrext64 {
			return Corruptf("NREXT64 inode on a file system without large extent counts")
		}
		if d.Nrext64Pad != 0 {
			return Corruptf("nrext64 pad is 0x%x", d.Nrext64Pad)
		}
	} else if d.V3Pad != 0 {
		return Corruptf("v3 pad is 0x%x", d.V3Pad)
	}
	if mode != 0 && d.NExtents+uint64(d.ANExtents) > d.NBlocks {
		return Corruptf("%d+%d extents but %d blocks", d.NExtents, d.ANExtents, d.NBlocks)
	}
	if d.IsDir() && d.NExtents > maxDirExtents(g) {
		return Corruptf("directory with %d extents", d.NExtents)
	}
	if mode != 0 && int(d.ForkOff)*8 > g.InodeSize {
		return Corruptf("forkoff %d past the inode", d.ForkOff)
	}
	if mode != 0 && d.Flags&DiFlagRealtime != 0 {
		return Corruptf("realtime flag without a realtime device")
	}
	if err := d.verifyForkOff(g); err != nil {
		return err
	}
	switch mode & SIFMT {
	case SIFIFO, SIFCHR, SIFBLK, SIFSOCK:
		if d.Format != FmtDev {
			return Corruptf("device or pipe with data fork format %d", d.Format)
		}
	case SIFREG, SIFLNK, SIFDIR:
		if err := d.verifyFork(g, false); err != nil {
			return err
		}
	}
	if d.ForkOff != 0 {
		if err := d.verifyFork(g, true); err != nil {
			return err
		}
	} else {
		if d.AFormat != 0 && d.AFormat != FmtExtents {
			return Corruptf("attr fork format %d without an attr fork", d.AFormat)
		}
		if d.ANExtents != 0 {
			return Corruptf("%d attr extents without an attr fork", d.ANExtents)
		}
	}
	if err := d.verifyExtSize(g); err != nil {
		return err
	}
	f2 := d.Flags2
	if f2&DiFlags2Reflink != 0 && mode&SIFMT != SIFREG {
		return Corruptf("reflink flag on a non-regular file")
	}
	if err := d.verifyCowExtSize(g); err != nil {
		return err
	}
	if d.hasBigtime() && !g.Bigtime {
		return Corruptf("bigtime inode on a file system without bigtime")
	}
	return nil
}

// verifyForkOff is xfs_dinode_verify_forkoff: the attr fork starts inside
// the literal area, right after the 8-byte device number for devices.
func (d *Dinode) verifyForkOff(g *Geometry) error {
	if d.ForkOff == 0 {
		return nil
	}
	switch d.Format {
	case FmtDev:
		if d.ForkOff != 1 {
			return Corruptf("forkoff %d on a device inode, want 1", d.ForkOff)
		}
	case FmtLocal, FmtExtents, FmtBtree:
		if int(d.ForkOff) >= LiteralSize(g)>>3 {
			return Corruptf("forkoff %d leaves no attr fork in a %d-byte literal area", d.ForkOff, LiteralSize(g))
		}
	default:
		return Corruptf("forkoff %d with data fork format %d", d.ForkOff, d.Format)
	}
	return nil
}

// verifyFork is xfs_dinode_verify_fork plus the btree root checks the
// kernel makes when it loads a btree fork.
func (d *Dinode) verifyFork(g *Geometry, attr bool) error {
	name, format, n, size := "data", d.Format, d.NExtents, DataForkSize(d, g)
	if attr {
		name, format, n, size = "attr", d.AFormat, uint64(d.ANExtents), AttrForkSize(d, g)
	}
	if !attr {
		// A short directory lives in the inode; a short symlink too, or
		// in extents format once an attr fork came and went.
		fits := d.Size <= int64(size)
		if d.IsDir() && fits && format != FmtLocal {
			return Corruptf("%d-byte directory not in local format", d.Size)
		}
		if d.IsSymlink() && fits && format != FmtLocal && format != FmtExtents {
			return Corruptf("%d-byte symlink in format %d", d.Size, format)
		}
		if !fits && format == FmtLocal {
			return Corruptf("%d bytes in a %d-byte local data fork", d.Size, size)
		}
	}
	switch format {
	case FmtLocal:
		if d.IsReg() && !attr {
			return Corruptf("regular file in local format")
		}
		if n != 0 {
			return Corruptf("local %s fork with %d extents", name, n)
		}
	case FmtExtents:
		if n > uint64(size/ExtentSize) {
			return Corruptf("%d extents do not fit the %d-byte %s fork", n, size, name)
		}
	case FmtBtree:
		lim := uint64(MaxExtCntDataSmall)
		switch {
		case attr && d.hasLargeExtentCounts():
			lim = MaxExtCntAttrLarge
		case attr:
			lim = MaxExtCntAttrSmall
		case d.hasLargeExtentCounts():
			lim = MaxExtCntDataLarge
		}
		if n > lim {
			return Corruptf("%d extents in the %s fork, limit %d", n, name, lim)
		}
		if n <= uint64(size/ExtentSize) {
			return Corruptf("btree %s fork with %d extents, which fit the inode", name, n)
		}
		if n > d.NBlocks {
			return Corruptf("btree %s fork with %d extents in %d blocks", name, n, d.NBlocks)
		}
		// The root's own level and record count are checked by
		// DecodeBmdr on the fork bytes.
	default:
		return Corruptf("bad %s fork format %d", name, format)
	}
	return nil
}

// verifyExtSize is xfs_inode_validate_extsize without realtime.
func (d *Dinode) verifyExtSize(g *Geometry) error {
	hint := d.Flags&DiFlagExtsize != 0
	inherit := d.Flags&DiFlagExtszinherit != 0
	switch {
	case (hint || inherit) && !d.IsDir() && !d.IsReg():
		return Corruptf("extent size hint flag on mode %#o", d.Mode)
	case hint && !d.IsReg():
		return Corruptf("extent size hint on a non-regular file")
	case inherit && !d.IsDir():
		return Corruptf("extent size inherit flag on a non-directory")
	case (hint || inherit) && d.ExtSize == 0:
		return Corruptf("extent size hint flag with extsize 0")
	case d.Mode != 0 && !(hint || inherit) && d.ExtSize != 0:
		return Corruptf("extsize %d without a hint flag", d.ExtSize)
	case d.ExtSize > MaxExtLen || d.ExtSize > g.AGBlocks/2:
		return Corruptf("extsize %d too large", d.ExtSize)
	}
	return nil
}

// verifyCowExtSize is xfs_inode_validate_cowextsize without the reflink
// feature check (the Geometry does not carry it).
func (d *Dinode) verifyCowExtSize(g *Geometry) error {
	hint := d.Flags2&DiFlags2Cowextsize != 0
	switch {
	case hint && !d.IsDir() && !d.IsReg():
		return Corruptf("CoW extent size hint on mode %#o", d.Mode)
	case hint && d.CowExtSize == 0:
		return Corruptf("CoW extent size hint flag with cowextsize 0")
	case d.Mode != 0 && !hint && d.CowExtSize != 0:
		return Corruptf("cowextsize %d without the hint flag", d.CowExtSize)
	case d.CowExtSize > MaxExtLen || d.CowExtSize > g.AGBlocks/2:
		return Corruptf("cowextsize %d too large", d.CowExtSize)
	}
	return nil
}

var dinodeFmtNames = []string{"dev", "local", "extents", "btree", "uuid"}

func dinodeFmtField(name string, f uint8) Field {
	t := fmt.Sprint(f)
	if int(f) < len(dinodeFmtNames) {
		t += " (" + dinodeFmtNames[f] + ")"
	}
	return Field{Name: name, Value: uint64(f), Text: t}
}

func flagBitField(name string, v uint64, bit uint) Field {
	return decField(name, v>>bit&1)
}

func timestampFields(name string, t Timestamp) Fields {
	return Fields{
		{Name: name + ".sec", Value: t.Sec, Text: dbTime(t.Sec)},
		decField(name+".nsec", uint64(t.Nsec)),
	}
}

// Fields lists the inode as `xfs_db -c 'inode N' -c print` does on a v5
// file system: core.*, next_unlinked, v3.*, then the data fork (u3.*) and
// the attr fork (a.*). buf is the whole inode. Shortform directories
// (u3.sfdir3.*) and shortform attributes (a.sfattr.*) are left out.
func (d *Dinode) Fields(g *Geometry, buf []byte) Fields {
	fs := Fields{
		hexField("core.magic", uint64(d.Magic)),
		octField("core.mode", uint64(d.Mode)),
		sdecField("core.version", int64(int8(d.Version))),
		dinodeFmtField("core.format", d.Format),
	}
	if d.Version == 1 {
		fs = append(fs, decField("core.nlinkv1", uint64(d.OnLink)))
	}
	if d.Version >= 2 {
		fs = append(fs, decField("core.onlink", uint64(d.OnLink)))
	}
	fs = append(fs, decField("core.uid", uint64(d.UID)), decField("core.gid", uint64(d.GID)))
	if d.Version >= 2 {
		fs = append(fs, decField("core.nlinkv2", uint64(d.Nlink)),
			decField("core.projid_lo", uint64(d.ProjIDLo)),
			decField("core.projid_hi", uint64(d.ProjIDHi)))
	}
	large := d.hasLargeExtentCounts()
	if large {
		fs = append(fs, decField("core.nextents", d.NExtents))
	}
	if d.Version != 3 {
		fs = append(fs, decField("core.flushiter", d.V3Pad&0xffff))
	}
	fs = append(fs, timestampFields("core.atime", d.Atime)...)
	fs = append(fs, timestampFields("core.mtime", d.Mtime)...)
	fs = append(fs, timestampFields("core.ctime", d.Ctime)...)
	fs = append(fs,
		sdecField("core.size", d.Size),
		nullField("core.nblocks", d.NBlocks, ^uint64(0)),
		decField("core.extsize", uint64(d.ExtSize)))
	if !large {
		fs = append(fs, decField("core.nextents", d.NExtents))
	}
	fs = append(fs,
		decField("core.naextents", uint64(d.ANExtents)),
		decField("core.forkoff", uint64(d.ForkOff)),
		dinodeFmtField("core.aformat", d.AFormat),
		hexField("core.dmevmask", uint64(d.DMEvMask)),
		decField("core.dmstate", uint64(d.DMState)))
	fl := uint64(d.Flags)
	for _, b := range []struct {
		name string
		bit  uint
	}{
		{"newrtbm", 2}, {"prealloc", 1}, {"realtime", 0}, {"immutable", 3}, {"append", 4},
		{"sync", 5}, {"noatime", 6}, {"nodump", 7}, {"rtinherit", 8}, {"projinherit", 9},
		{"nosymlinks", 10}, {"extsz", 11}, {"extszinherit", 12}, {"nodefrag", 13},
		{"filestream", 14},
	} {
		fs = append(fs, flagBitField("core."+b.name, fl, b.bit))
	}
	fs = append(fs,
		decField("core.gen", uint64(d.Gen)),
		nullField("next_unlinked", uint64(d.NextUnlinked), uint64(NullAGIno)),
		crcField("v3.crc", d.CRC, d.crcOK),
		decField("v3.change_count", d.ChangeCount),
		hexField("v3.lsn", d.LSN),
		hexField("v3.flags2", d.Flags2),
		decField("v3.cowextsize", uint64(d.CowExtSize)))
	fs = append(fs, timestampFields("v3.crtime", d.Crtime)...)
	fs = append(fs,
		nullField("v3.inumber", d.Ino, NullFSIno),
		uuidField("v3.uuid", d.UUID),
		flagBitField("v3.reflink", d.Flags2, 1),
		flagBitField("v3.cowextsz", d.Flags2, 2),
		flagBitField("v3.dax", d.Flags2, 0),
		flagBitField("v3.bigtime", d.Flags2, 3),
		flagBitField("v3.nrext64", d.Flags2, 4))
	fs = append(fs, dataForkFields(buf, d, g)...)
	return append(fs, attrForkFields(buf, d, g)...)
}
