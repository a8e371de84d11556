package ondisk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
)

// SBMagic is "XFSB".
const SBMagic = 0x58465342

// Superblock field offsets that other code needs by position.
const (
	SBCRCOff = 224
	SBLSNOff = 240
	sbSize   = 264 // bytes of xfs_dsb the format defines (through meta_uuid)
)

// versionnum bits.
const (
	VersionNumMask     = 0x000f
	VersionAttrBit     = 0x0010
	VersionNlinkBit    = 0x0020
	VersionQuotaBit    = 0x0040
	VersionAlignBit    = 0x0080
	VersionDalignBit   = 0x0100
	VersionSharedBit   = 0x0200
	VersionLogV2Bit    = 0x0400
	VersionSectorBit   = 0x0800
	VersionExtFlgBit   = 0x1000
	VersionDirV2Bit    = 0x2000
	VersionBorgBit     = 0x4000
	VersionMoreBitsBit = 0x8000
)

// features2 bits.
const (
	Features2LazySBCount = 0x0002
	Features2Attr2       = 0x0008
	Features2Parent      = 0x0010
	Features2ProjID32    = 0x0080
	Features2CRC         = 0x0100
	Features2FType       = 0x0200
)

// ro_compat feature bits.
const (
	ROCompatFinobt   = 0x1
	ROCompatRmapbt   = 0x2
	ROCompatReflink  = 0x4
	ROCompatInobtCnt = 0x8
)

// incompat feature bits.
const (
	IncompatFType       = 0x01
	IncompatSpinodes    = 0x02
	IncompatMetaUUID    = 0x04
	IncompatBigtime     = 0x08
	IncompatNeedsRepair = 0x10
	IncompatNrext64     = 0x20
	IncompatExchRange   = 0x40
	IncompatParent      = 0x80
	IncompatMetadir     = 0x100
)

// log_incompat feature bits.
const LogIncompatXattrs = 0x1

type featureName struct {
	bit  uint32
	name string
}

var versionNames = []featureName{
	{VersionNlinkBit, "NLINK"}, {VersionDirV2Bit, "DIRV2"}, {VersionAttrBit, "ATTR"},
	{VersionQuotaBit, "QUOTA"}, {VersionAlignBit, "ALIGN"}, {VersionDalignBit, "DALIGN"},
	{VersionSharedBit, "SHARED"}, {VersionLogV2Bit, "LOGV2"}, {VersionSectorBit, "SECTOR"},
	{VersionExtFlgBit, "EXTFLG"}, {VersionBorgBit, "ASCII_CI"}, {VersionMoreBitsBit, "MOREBITS"},
}

var features2Names = []featureName{
	{Features2Attr2, "ATTR2"}, {Features2LazySBCount, "LAZYSBCOUNT"}, {Features2Parent, "PARENT"},
	{Features2ProjID32, "PROJID32BIT"}, {Features2CRC, "CRC"}, {Features2FType, "FTYPE"},
}

var roCompatNames = []featureName{
	{ROCompatFinobt, "FINOBT"}, {ROCompatRmapbt, "RMAPBT"}, {ROCompatReflink, "REFLINK"},
	{ROCompatInobtCnt, "INOBTCNT"},
}

var incompatNames = []featureName{
	{IncompatFType, "FTYPE"}, {IncompatSpinodes, "SPARSE_INODES"}, {IncompatMetaUUID, "META_UUID"},
	{IncompatBigtime, "BIGTIME"}, {IncompatNeedsRepair, "NEEDSREPAIR"}, {IncompatNrext64, "NREXT64"},
	{IncompatExchRange, "EXCHRANGE"}, {IncompatParent, "PARENT"}, {IncompatMetadir, "METADIR"},
}

var logIncompatNames = []featureName{{LogIncompatXattrs, "LOGGED_XATTRS"}}

// Features this reader understands. Anything else in incompat makes the
// image unreadable; anything else in ro_compat makes it read-only to us.
const (
	SupportedIncompat = IncompatFType | IncompatSpinodes | IncompatMetaUUID | IncompatBigtime |
		IncompatNrext64 | IncompatNeedsRepair
	SupportedROCompat    = ROCompatFinobt | ROCompatRmapbt | ROCompatReflink | ROCompatInobtCnt
	SupportedLogIncompat = LogIncompatXattrs
)

// Superblock mirrors struct xfs_dsb (v5). Field names follow the format.
type Superblock struct {
	MagicNum          uint32
	BlockSize         uint32
	DBlocks           uint64
	RBlocks           uint64
	RExtents          uint64
	UUID              UUID
	LogStart          uint64
	RootIno           uint64
	RBMIno            uint64
	RSumIno           uint64
	RExtSize          uint32
	AGBlocks          uint32
	AGCount           uint32
	RBMBlocks         uint32
	LogBlocks         uint32
	VersionNum        uint16
	SectSize          uint16
	InodeSize         uint16
	InoPBlock         uint16
	FName             [12]byte
	BlockLog          uint8
	SectLog           uint8
	InodeLog          uint8
	InoPBLog          uint8
	AGBlkLog          uint8
	RExtSLog          uint8
	InProgress        uint8
	IMaxPct           uint8
	ICount            uint64
	IFree             uint64
	FDBlocks          uint64
	FRExtents         uint64
	UQuotIno          uint64
	GQuotIno          uint64
	QFlags            uint16
	Flags             uint8
	SharedVN          uint8
	InoAlignmt        uint32
	Unit              uint32
	Width             uint32
	DirBlkLog         uint8
	LogSectLog        uint8
	LogSectSize       uint16
	LogSUnit          uint32
	Features2         uint32
	BadFeatures2      uint32
	FeaturesCompat    uint32
	FeaturesROCompat  uint32
	FeaturesIncompat  uint32
	FeaturesLogIncomp uint32
	CRC               uint32
	SpinoAlign        uint32
	PQuotIno          uint64
	LSN               uint64
	MetaUUID          UUID

	crcOK bool // whether CRC matched the sector at decode time
}

// DecodeSuperblock decodes a superblock from the first sector of the file
// system. It checks only what is needed to decode; call Verify for the rest.
func DecodeSuperblock(buf []byte) (*Superblock, error) {
	if len(buf) < 512 {
		return nil, Corruptf("superblock: buffer of %d bytes, want at least 512", len(buf))
	}
	be := binary.BigEndian
	sb := &Superblock{
		MagicNum:          be.Uint32(buf[0:]),
		BlockSize:         be.Uint32(buf[4:]),
		DBlocks:           be.Uint64(buf[8:]),
		RBlocks:           be.Uint64(buf[16:]),
		RExtents:          be.Uint64(buf[24:]),
		LogStart:          be.Uint64(buf[48:]),
		RootIno:           be.Uint64(buf[56:]),
		RBMIno:            be.Uint64(buf[64:]),
		RSumIno:           be.Uint64(buf[72:]),
		RExtSize:          be.Uint32(buf[80:]),
		AGBlocks:          be.Uint32(buf[84:]),
		AGCount:           be.Uint32(buf[88:]),
		RBMBlocks:         be.Uint32(buf[92:]),
		LogBlocks:         be.Uint32(buf[96:]),
		VersionNum:        be.Uint16(buf[100:]),
		SectSize:          be.Uint16(buf[102:]),
		InodeSize:         be.Uint16(buf[104:]),
		InoPBlock:         be.Uint16(buf[106:]),
		BlockLog:          buf[120],
		SectLog:           buf[121],
		InodeLog:          buf[122],
		InoPBLog:          buf[123],
		AGBlkLog:          buf[124],
		RExtSLog:          buf[125],
		InProgress:        buf[126],
		IMaxPct:           buf[127],
		ICount:            be.Uint64(buf[128:]),
		IFree:             be.Uint64(buf[136:]),
		FDBlocks:          be.Uint64(buf[144:]),
		FRExtents:         be.Uint64(buf[152:]),
		UQuotIno:          be.Uint64(buf[160:]),
		GQuotIno:          be.Uint64(buf[168:]),
		QFlags:            be.Uint16(buf[176:]),
		Flags:             buf[178],
		SharedVN:          buf[179],
		InoAlignmt:        be.Uint32(buf[180:]),
		Unit:              be.Uint32(buf[184:]),
		Width:             be.Uint32(buf[188:]),
		DirBlkLog:         buf[192],
		LogSectLog:        buf[193],
		LogSectSize:       be.Uint16(buf[194:]),
		LogSUnit:          be.Uint32(buf[196:]),
		Features2:         be.Uint32(buf[200:]),
		BadFeatures2:      be.Uint32(buf[204:]),
		FeaturesCompat:    be.Uint32(buf[208:]),
		FeaturesROCompat:  be.Uint32(buf[212:]),
		FeaturesIncompat:  be.Uint32(buf[216:]),
		FeaturesLogIncomp: be.Uint32(buf[220:]),
		CRC:               StoredCRC(buf, SBCRCOff),
		SpinoAlign:        be.Uint32(buf[228:]),
		PQuotIno:          be.Uint64(buf[232:]),
		LSN:               be.Uint64(buf[240:]),
	}
	copy(sb.UUID[:], buf[32:48])
	copy(sb.FName[:], buf[108:120])
	copy(sb.MetaUUID[:], buf[248:264])
	if sb.MagicNum != SBMagic {
		return sb, Corruptf("superblock: bad magic 0x%08x, not an XFS file system", sb.MagicNum)
	}
	// The CRC covers one sector; only check it once the sector size is sane.
	if ss := int(sb.SectSize); ss >= 512 && ss <= len(buf) && ss&(ss-1) == 0 {
		sb.crcOK = VerifyCRC(buf[:ss], SBCRCOff)
	}
	return sb, nil
}

// Encode writes the superblock into buf (at least one sector) and stamps the
// CRC over SectSize bytes. Bytes past the defined fields are left as they are.
func (sb *Superblock) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], sb.MagicNum)
	be.PutUint32(buf[4:], sb.BlockSize)
	be.PutUint64(buf[8:], sb.DBlocks)
	be.PutUint64(buf[16:], sb.RBlocks)
	be.PutUint64(buf[24:], sb.RExtents)
	copy(buf[32:48], sb.UUID[:])
	be.PutUint64(buf[48:], sb.LogStart)
	be.PutUint64(buf[56:], sb.RootIno)
	be.PutUint64(buf[64:], sb.RBMIno)
	be.PutUint64(buf[72:], sb.RSumIno)
	be.PutUint32(buf[80:], sb.RExtSize)
	be.PutUint32(buf[84:], sb.AGBlocks)
	be.PutUint32(buf[88:], sb.AGCount)
	be.PutUint32(buf[92:], sb.RBMBlocks)
	be.PutUint32(buf[96:], sb.LogBlocks)
	be.PutUint16(buf[100:], sb.VersionNum)
	be.PutUint16(buf[102:], sb.SectSize)
	be.PutUint16(buf[104:], sb.InodeSize)
	be.PutUint16(buf[106:], sb.InoPBlock)
	copy(buf[108:120], sb.FName[:])
	buf[120] = sb.BlockLog
	buf[121] = sb.SectLog
	buf[122] = sb.InodeLog
	buf[123] = sb.InoPBLog
	buf[124] = sb.AGBlkLog
	buf[125] = sb.RExtSLog
	buf[126] = sb.InProgress
	buf[127] = sb.IMaxPct
	be.PutUint64(buf[128:], sb.ICount)
	be.PutUint64(buf[136:], sb.IFree)
	be.PutUint64(buf[144:], sb.FDBlocks)
	be.PutUint64(buf[152:], sb.FRExtents)
	be.PutUint64(buf[160:], sb.UQuotIno)
	be.PutUint64(buf[168:], sb.GQuotIno)
	be.PutUint16(buf[176:], sb.QFlags)
	buf[178] = sb.Flags
	buf[179] = sb.SharedVN
	be.PutUint32(buf[180:], sb.InoAlignmt)
	be.PutUint32(buf[184:], sb.Unit)
	be.PutUint32(buf[188:], sb.Width)
	buf[192] = sb.DirBlkLog
	buf[193] = sb.LogSectLog
	be.PutUint16(buf[194:], sb.LogSectSize)
	be.PutUint32(buf[196:], sb.LogSUnit)
	be.PutUint32(buf[200:], sb.Features2)
	be.PutUint32(buf[204:], sb.BadFeatures2)
	be.PutUint32(buf[208:], sb.FeaturesCompat)
	be.PutUint32(buf[212:], sb.FeaturesROCompat)
	be.PutUint32(buf[216:], sb.FeaturesIncompat)
	be.PutUint32(buf[220:], sb.FeaturesLogIncomp)
	be.PutUint32(buf[228:], sb.SpinoAlign)
	be.PutUint64(buf[232:], sb.PQuotIno)
	be.PutUint64(buf[240:], sb.LSN)
	copy(buf[248:264], sb.MetaUUID[:])
	StampCRC(buf[:sb.SectSize], SBCRCOff)
	sb.CRC = StoredCRC(buf, SBCRCOff)
	sb.crcOK = true
}

// CRCOK reports whether the CRC matched when the superblock was decoded.
func (sb *Superblock) CRCOK() bool { return sb.crcOK }

// Version is the file system version number (4 or 5).
func (sb *Superblock) Version() int { return int(sb.VersionNum & VersionNumMask) }

// HasCRC reports a v5 file system.
func (sb *Superblock) HasCRC() bool { return sb.Version() == 5 }

// HasFType reports whether directory entries carry the file type.
func (sb *Superblock) HasFType() bool {
	return sb.FeaturesIncompat&IncompatFType != 0 || sb.Features2&Features2FType != 0
}

// HasFinobt, HasRmapbt, HasReflink, HasInobtCnt, HasBigtime, HasNrext64,
// HasSpinodes and HasMetaUUID test single feature bits.
func (sb *Superblock) HasFinobt() bool   { return sb.FeaturesROCompat&ROCompatFinobt != 0 }
func (sb *Superblock) HasRmapbt() bool   { return sb.FeaturesROCompat&ROCompatRmapbt != 0 }
func (sb *Superblock) HasReflink() bool  { return sb.FeaturesROCompat&ROCompatReflink != 0 }
func (sb *Superblock) HasInobtCnt() bool { return sb.FeaturesROCompat&ROCompatInobtCnt != 0 }
func (sb *Superblock) HasBigtime() bool  { return sb.FeaturesIncompat&IncompatBigtime != 0 }
func (sb *Superblock) HasNrext64() bool  { return sb.FeaturesIncompat&IncompatNrext64 != 0 }
func (sb *Superblock) HasSpinodes() bool { return sb.FeaturesIncompat&IncompatSpinodes != 0 }
func (sb *Superblock) HasMetaUUID() bool { return sb.FeaturesIncompat&IncompatMetaUUID != 0 }

// MetadataUUID is the UUID stamped in every metadata block: meta_uuid when
// the META_UUID feature is set (the user changed the visible UUID), else uuid.
func (sb *Superblock) MetadataUUID() UUID {
	if sb.HasMetaUUID() {
		return sb.MetaUUID
	}
	return sb.UUID
}

// Verify checks the superblock for internal consistency, the way the
// kernel's xfs_validate_sb_common does for the fields we depend on. It
// returns ErrUnsupported for valid images we cannot handle.
func (sb *Superblock) Verify() error {
	if sb.MagicNum != SBMagic {
		return Corruptf("superblock: bad magic 0x%08x, not an XFS file system", sb.MagicNum)
	}
	switch v := sb.Version(); v {
	case 5:
	case 4:
		return Unsupportedf("superblock: version 4 (non-CRC) file systems are not supported yet")
	default:
		return Corruptf("superblock: bad version %d", v)
	}
	if !validPow2(uint64(sb.SectSize), 512, 32768) || bits.TrailingZeros16(sb.SectSize) != int(sb.SectLog) {
		return Corruptf("superblock: bad sector size %d (log %d)", sb.SectSize, sb.SectLog)
	}
	if !sb.crcOK {
		return Corruptf("superblock: bad CRC 0x%08x", sb.CRC)
	}
	if !validPow2(uint64(sb.BlockSize), 512, 65536) || 1<<sb.BlockLog != sb.BlockSize || sb.BlockSize < uint32(sb.SectSize) {
		return Corruptf("superblock: bad block size %d (log %d)", sb.BlockSize, sb.BlockLog)
	}
	if !validPow2(uint64(sb.InodeSize), 256, 2048) || 1<<sb.InodeLog != uint32(sb.InodeSize) ||
		uint32(sb.InodeSize) > sb.BlockSize {
		return Corruptf("superblock: bad inode size %d (log %d)", sb.InodeSize, sb.InodeLog)
	}
	if sb.InodeSize < 512 {
		return Corruptf("superblock: inode size %d below the v5 minimum of 512", sb.InodeSize)
	}
	if uint32(sb.InoPBlock) != sb.BlockSize/uint32(sb.InodeSize) || 1<<sb.InoPBLog != uint32(sb.InoPBlock) {
		return Corruptf("superblock: inopblock %d (log %d) does not match block and inode size", sb.InoPBlock, sb.InoPBLog)
	}
	if sb.AGCount == 0 || sb.AGBlocks < 64 || sb.AGBlocks > 1<<31-1 {
		return Corruptf("superblock: bad AG geometry: agcount %d, agblocks %d", sb.AGCount, sb.AGBlocks)
	}
	if want := uint8(bits.Len32(sb.AGBlocks - 1)); sb.AGBlkLog != want {
		return Corruptf("superblock: agblklog %d, want %d for agblocks %d", sb.AGBlkLog, want, sb.AGBlocks)
	}
	full := uint64(sb.AGCount) * uint64(sb.AGBlocks)
	if sb.DBlocks > full || sb.DBlocks <= full-uint64(sb.AGBlocks) {
		return Corruptf("superblock: dblocks %d does not fit %d AGs of %d blocks", sb.DBlocks, sb.AGCount, sb.AGBlocks)
	}
	if int(sb.AGBlkLog)+int(sb.InoPBLog) > 32 {
		return Corruptf("superblock: inode numbers need %d bits per AG", int(sb.AGBlkLog)+int(sb.InoPBLog))
	}
	if sb.DirBlkLog > 16-sb.BlockLog && sb.BlockLog <= 16 {
		return Corruptf("superblock: directory block log %d too large", sb.DirBlkLog)
	}
	if sb.LogStart == 0 {
		return Unsupportedf("superblock: external log device")
	}
	if sb.LogBlocks == 0 {
		return Corruptf("superblock: logblocks 0")
	}
	if sb.LogSectSize != 0 && (!validPow2(uint64(sb.LogSectSize), 512, 32768) || 1<<sb.LogSectLog != uint32(sb.LogSectSize)) {
		return Corruptf("superblock: bad log sector size %d (log %d)", sb.LogSectSize, sb.LogSectLog)
	}
	if sb.RBlocks != 0 || sb.RExtents != 0 {
		return Unsupportedf("superblock: realtime subvolume")
	}
	if sb.InProgress != 0 {
		return Corruptf("superblock: mkfs did not finish (inprogress set)")
	}
	if sb.InoAlignmt == 0 && sb.VersionNum&VersionAlignBit != 0 {
		return Corruptf("superblock: inode alignment 0 with ALIGN set")
	}
	if u := sb.FeaturesIncompat &^ SupportedIncompat; u != 0 {
		return Unsupportedf("superblock: incompatible features %s", strings.Join(FeatureNames(u, incompatNames), ","))
	}
	if u := sb.FeaturesLogIncomp &^ SupportedLogIncompat; u != 0 {
		return Unsupportedf("superblock: log incompatible features 0x%x", u)
	}
	return nil
}

// WritableFeatures returns an error naming any feature set on the image that
// the write path does not implement. Readers may proceed; writers must not.
func (sb *Superblock) WritableFeatures() error {
	if sb.FeaturesIncompat&IncompatNeedsRepair != 0 {
		return Unsupportedf("file system is marked as needing repair (run xfs_repair)")
	}
	if u := sb.FeaturesROCompat &^ (ROCompatFinobt | ROCompatReflink | ROCompatInobtCnt); u != 0 {
		return Unsupportedf("writing with features %s", strings.Join(FeatureNames(u, roCompatNames), ","))
	}
	if sb.FeaturesIncompat&IncompatNrext64 != 0 {
		return Unsupportedf("writing with feature NREXT64")
	}
	if sb.FeaturesLogIncomp != 0 {
		return Unsupportedf("writing with log incompatible features 0x%x", sb.FeaturesLogIncomp)
	}
	return nil
}

func validPow2(v, lo, hi uint64) bool { return v >= lo && v <= hi && v&(v-1) == 0 }

// FeatureNames lists the names of the bits set in v, or hex for unknown bits.
func FeatureNames(v uint32, names []featureName) []string {
	var out []string
	for _, n := range names {
		if v&n.bit != 0 {
			out = append(out, n.name)
			v &^= n.bit
		}
	}
	if v != 0 {
		out = append(out, fmt.Sprintf("0x%x", v))
	}
	return out
}

// FeatureList is every feature of the file system by name, in the order
// `xfs_db version` prints them (e.g. V5,NLINK,...,CRC,FTYPE,FINOBT,...).
func (sb *Superblock) FeatureList() []string {
	out := []string{fmt.Sprintf("V%d", sb.Version())}
	out = append(out, FeatureNames(uint32(sb.VersionNum&^VersionNumMask), versionNames)...)
	out = append(out, FeatureNames(sb.Features2&^Features2FType, features2Names)...)
	// xfs_db interleaves the newer ro_compat and incompat bits in the order
	// they were added to the format.
	later := []struct {
		on   bool
		name string
	}{
		{sb.HasFType(), "FTYPE"},
		{sb.HasFinobt(), "FINOBT"},
		{sb.HasSpinodes(), "SPARSE_INODES"},
		{sb.HasMetaUUID(), "META_UUID"},
		{sb.HasRmapbt(), "RMAPBT"},
		{sb.HasReflink(), "REFLINK"},
		{sb.HasInobtCnt(), "INOBTCNT"},
		{sb.HasBigtime(), "BIGTIME"},
		{sb.FeaturesIncompat&IncompatNeedsRepair != 0, "NEEDSREPAIR"},
		{sb.HasNrext64(), "NREXT64"},
	}
	for _, f := range later {
		if f.on {
			out = append(out, f.name)
		}
	}
	const known = ROCompatFinobt | ROCompatRmapbt | ROCompatReflink | ROCompatInobtCnt
	out = append(out, FeatureNames(sb.FeaturesROCompat&^known, roCompatNames)...)
	out = append(out, FeatureNames(sb.FeaturesIncompat&^(IncompatFType|IncompatSpinodes|IncompatMetaUUID|
		IncompatBigtime|IncompatNeedsRepair|IncompatNrext64), incompatNames)...)
	out = append(out, FeatureNames(sb.FeaturesLogIncomp, logIncompatNames)...)
	return out
}

// Fields lists every field as xfs_db's "sb" command prints it.
func (sb *Superblock) Fields() Fields {
	fname := Field{Name: "fname", Value: strings.TrimRight(string(sb.FName[:]), "\x00"), Text: quoteDB(sb.FName[:])}
	return Fields{
		hexField("magicnum", uint64(sb.MagicNum)),
		decField("blocksize", uint64(sb.BlockSize)),
		decField("dblocks", sb.DBlocks),
		decField("rblocks", sb.RBlocks),
		decField("rextents", sb.RExtents),
		uuidField("uuid", sb.UUID),
		decField("logstart", sb.LogStart),
		nullField("rootino", sb.RootIno, NullFSIno),
		nullField("rbmino", sb.RBMIno, NullFSIno),
		nullField("rsumino", sb.RSumIno, NullFSIno),
		decField("rextsize", uint64(sb.RExtSize)),
		decField("agblocks", uint64(sb.AGBlocks)),
		decField("agcount", uint64(sb.AGCount)),
		decField("rbmblocks", uint64(sb.RBMBlocks)),
		decField("logblocks", uint64(sb.LogBlocks)),
		hexField("versionnum", uint64(sb.VersionNum)),
		decField("sectsize", uint64(sb.SectSize)),
		decField("inodesize", uint64(sb.InodeSize)),
		decField("inopblock", uint64(sb.InoPBlock)),
		fname,
		decField("blocklog", uint64(sb.BlockLog)),
		decField("sectlog", uint64(sb.SectLog)),
		decField("inodelog", uint64(sb.InodeLog)),
		decField("inopblog", uint64(sb.InoPBLog)),
		decField("agblklog", uint64(sb.AGBlkLog)),
		decField("rextslog", uint64(sb.RExtSLog)),
		decField("inprogress", uint64(sb.InProgress)),
		decField("imax_pct", uint64(sb.IMaxPct)),
		decField("icount", sb.ICount),
		decField("ifree", sb.IFree),
		decField("fdblocks", sb.FDBlocks),
		decField("frextents", sb.FRExtents),
		nullField("uquotino", sb.UQuotIno, NullFSIno),
		nullField("gquotino", sb.GQuotIno, NullFSIno),
		decField("qflags", uint64(sb.QFlags)),
		decField("flags", uint64(sb.Flags)),
		decField("shared_vn", uint64(sb.SharedVN)),
		decField("inoalignmt", uint64(sb.InoAlignmt)),
		decField("unit", uint64(sb.Unit)),
		decField("width", uint64(sb.Width)),
		decField("dirblklog", uint64(sb.DirBlkLog)),
		decField("logsectlog", uint64(sb.LogSectLog)),
		decField("logsectsize", uint64(sb.LogSectSize)),
		decField("logsunit", uint64(sb.LogSUnit)),
		hexField("features2", uint64(sb.Features2)),
		hexField("bad_features2", uint64(sb.BadFeatures2)),
		hexField("features_compat", uint64(sb.FeaturesCompat)),
		hexField("features_ro_compat", uint64(sb.FeaturesROCompat)),
		hexField("features_incompat", uint64(sb.FeaturesIncompat)),
		hexField("features_log_incompat", uint64(sb.FeaturesLogIncomp)),
		crcField("crc", sb.CRC, sb.crcOK),
		decField("spino_align", uint64(sb.SpinoAlign)),
		nullField("pquotino", sb.PQuotIno, NullFSIno),
		hexField("lsn", sb.LSN),
		uuidField("meta_uuid", sb.MetaUUID),
	}
}

// quoteDB renders bytes as xfs_db prints a char array: printable ASCII as
// is, everything else as a three-digit octal escape.
func quoteDB(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			s.WriteByte('\\')
			s.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			s.WriteByte(c)
		default:
			fmt.Fprintf(&s, "\\%03o", c)
		}
	}
	s.WriteByte('"')
	return s.String()
}

// ReadSuperblock reads, decodes and verifies the primary superblock of
// dev, and checks that dev holds the whole file system. The sector size
// is only known once the superblock is read and its CRC covers the whole
// sector, so it reads the first 512 bytes, then the sector.
func ReadSuperblock(dev Storage) (*Superblock, error) {
	if dev.Size() < BBSize {
		return nil, Corruptf("device of %d bytes is too small to hold a superblock", dev.Size())
	}
	buf := make([]byte, BBSize)
	if _, err := dev.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	sb, err := DecodeSuperblock(buf)
	if err != nil {
		return nil, err
	}
	if ss := int64(sb.SectSize); ss > BBSize && ss <= 32768 && ss&(ss-1) == 0 && ss <= dev.Size() {
		buf = make([]byte, ss)
		if _, err := dev.ReadAt(buf, 0); err != nil {
			return nil, fmt.Errorf("read superblock: %w", err)
		}
		if sb, err = DecodeSuperblock(buf); err != nil {
			return nil, err
		}
	}
	if err := sb.Verify(); err != nil {
		return nil, err
	}
	if need := int64(sb.DBlocks) << sb.BlockLog; need > dev.Size() {
		return nil, Corruptf("image is truncated: %d bytes, the file system needs %d", dev.Size(), need)
	}
	return sb, nil
}
