package log

import (
	"encoding/binary"

	"github.com/xfsimg/xfsimg/ondisk"
)

// An inode travels in the log as an inode item, never as its cluster
// buffer: a format region, the core as xfs_log_dinode, and the forks the
// transaction changed, in the form the kernel keeps them in core
// (xfs_inode_item_format).

// dinodeNextUnlinkedOff is di_next_unlinked in the inode core.
const dinodeNextUnlinkedOff = 96

// Flag groups: which fork a logging flag is about.
const (
	iLogDFork = ILogDData | ILogDExt | ILogDBroot | ILogDev
	iLogAFork = ILogAData | ILogAExt | ILogABroot
)

// inodeItem is an inode item ready to be logged.
type inodeItem struct {
	f       InodeLogFormat
	core    []byte // xfs_log_dinode, host order
	dfork   []byte // data fork region (nil: not logged)
	afork   []byte
	regions int
}

// bytes is the log space of the item's regions and their op headers.
func (it *inodeItem) bytes() int64 {
	n := int64(it.regions*OpHeaderSize + InodeLogFormatSize + len(it.core) + len(it.dfork) + len(it.afork))
	return n
}

// ops lists the item's regions as log ops.
func (it *inodeItem) ops() []op {
	fb := make([]byte, InodeLogFormatSize)
	it.f.Encode(fb)
	out := []op{{client: ClientTransaction, data: fb}, {client: ClientTransaction, data: it.core, split: true}}
	if it.dfork != nil {
		out = append(out, op{client: ClientTransaction, data: it.dfork, split: true})
	}
	if it.afork != nil {
		out = append(out, op{client: ClientTransaction, data: it.afork, split: true})
	}
	return out
}

// formatInode builds the inode item for the inode bytes ip (on-disk form,
// inodesize bytes) with the fields a transaction logged. Fork regions follow
// the fork's current format, as xfs_inode_item_format_data_fork does.
func formatInode(ip []byte, ino uint64, flags uint32, loc ondisk.InodeLocation, g *ondisk.Geometry) (*inodeItem, error) {
	d, err := checkLoggedInode(ip, ino, g)
	if err != nil {
		return nil, err
	}
	it := &inodeItem{regions: 2}
	it.f = InodeLogFormat{
		Fields: ILogCore, Ino: ino,
		Blkno: loc.ClusterDaddr, Len: int32(loc.ClusterLen >> ondisk.BBShift), BOffset: int32(loc.Offset),
	}
	it.core = make([]byte, LogDinodeSize)
	DiskToLogDinode(it.core, ip[:ondisk.DinodeCoreSize])
	// As the kernel logs them: recovery keeps the on-disk next_unlinked and
	// computes lsn and CRC itself.
	le := binary.LittleEndian
	le.PutUint32(it.core[dinodeNextUnlinkedOff:], 0xffffffff)
	le.PutUint32(it.core[ondisk.DinodeCRCOff:], 0)
	le.PutUint64(it.core[ondisk.DinodeLSNOff:], 0)

	if flags&iLogDFork != 0 {
		region, field, size, rdev, err := forkRegion(ondisk.DataFork(ip, d, g), d.Format, d.NExtents, d, ino, g, false)
		if err != nil {
			return nil, err
		}
		it.f.Fields |= field
		it.f.Rdev = rdev
		if region != nil {
			it.dfork, it.f.DSize = region, uint16(size)
			it.regions++
		}
	}
	if flags&iLogAFork != 0 && d.ForkOff != 0 {
		region, field, size, _, err := forkRegion(ondisk.AttrFork(ip, d, g), d.AFormat, uint64(d.ANExtents), d, ino, g, true)
		if err != nil {
			return nil, err
		}
		it.f.Fields |= field
		if region != nil {
			it.afork, it.f.ASize = region, uint16(size)
			it.regions++
		}
	}
	it.f.Size = uint16(it.regions)
	return it, nil
}

// checkLoggedInode makes sure the bytes are the v3 inode ino of this file
// system: recovery (since 6.7) runs the full dinode verifier on the result.
func checkLoggedInode(ip []byte, ino uint64, g *ondisk.Geometry) (*ondisk.Dinode, error) {
	d, err := ondisk.DecodeDinode(ip)
	if err != nil {
		return nil, err
	}
	if d.Version != 3 || d.Ino != ino || d.UUID != g.MetaUUID {
		return nil, ondisk.Corruptf("inode %d: logged bytes hold version %d inode %d of %v", ino, d.Version, d.Ino, d.UUID)
	}
	if d.Mode == 0 {
		return nil, ondisk.Corruptf("inode %d: logging a free inode", ino)
	}
	return d, nil
}

// forkRegion returns the logged region of one fork, the ilf_fields bit it
// goes with, and its unrounded size (ilf_dsize/ilf_asize).
func forkRegion(fork []byte, format uint8, nextents uint64, d *ondisk.Dinode, ino uint64, g *ondisk.Geometry, attr bool) ([]byte, uint32, int, uint32, error) {
	what := "data"
	if attr {
		what = "attr"
	}
	pick := func(dflag, aflag uint32) uint32 {
		if attr {
			return aflag
		}
		return dflag
	}
	switch format {
	case ondisk.FmtDev:
		if attr || len(fork) < 4 {
			return nil, 0, 0, 0, ondisk.Corruptf("inode %d: %s fork in device format", ino, what)
		}
		return nil, ILogDev, 0, binary.BigEndian.Uint32(fork), nil
	case ondisk.FmtLocal:
		// The kernel logs if_bytes: di_size for directories and symlinks,
		// the shortform header's totsize for attributes.
		size := int64(d.Size)
		if attr {
			if len(fork) < 2 {
				return nil, 0, 0, 0, ondisk.Corruptf("inode %d: attr fork of %d bytes", ino, len(fork))
			}
			size = int64(binary.BigEndian.Uint16(fork))
		}
		if size < 0 || size > int64(len(fork)) {
			return nil, 0, 0, 0, ondisk.Corruptf("inode %d: %d bytes of local %s fork in %d", ino, size, what, len(fork))
		}
		if size == 0 {
			return nil, 0, 0, 0, nil
		}
		region := make([]byte, (size+3)&^3)
		copy(region, fork[:size])
		return region, pick(ILogDData, ILogAData), int(size), 0, nil
	case ondisk.FmtExtents:
		if nextents*ondisk.ExtentSize > uint64(len(fork)) {
			return nil, 0, 0, 0, ondisk.Corruptf("inode %d: %d %s extents in a %d-byte fork", ino, nextents, what, len(fork))
		}
		if nextents == 0 {
			return nil, 0, 0, 0, nil
		}
		n := int(nextents) * ondisk.ExtentSize
		return append([]byte(nil), fork[:n]...), pick(ILogDExt, ILogAExt), n, 0, nil
	case ondisk.FmtBtree:
		region, err := bmdrToBroot(fork, ino, g.MetaUUID)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		return region, pick(ILogDBroot, ILogABroot), len(region), 0, nil
	}
	return nil, 0, 0, 0, ondisk.Corruptf("inode %d: %s fork format %d", ino, what, format)
}

// bmdrToBroot converts a fork's BMBT root (xfs_bmdr_block) to the in-core
// root the kernel logs: a long-form block header with null siblings and
// block number, the keys, and the pointers right after them (the in-core
// root is sized to hold exactly numrecs records).
func bmdrToBroot(fork []byte, ino uint64, meta ondisk.UUID) ([]byte, error) {
	r, err := ondisk.DecodeBmdr(fork)
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	n := int(r.NumRecs)
	const hdr = ondisk.LongBlockHeaderSize
	out := make([]byte, hdr+16*n)
	be.PutUint32(out[0:], ondisk.BmapMagic)
	be.PutUint16(out[4:], r.Level)
	be.PutUint16(out[6:], r.NumRecs)
	be.PutUint64(out[8:], ^uint64(0))  // left sibling: NULLFSBLOCK
	be.PutUint64(out[16:], ^uint64(0)) // right sibling
	be.PutUint64(out[24:], ^uint64(0)) // blkno: XFS_BUF_DADDR_NULL
	copy(out[40:56], meta[:])
	be.PutUint64(out[56:], ino)
	for i := 0; i < n; i++ {
		be.PutUint64(out[hdr+8*i:], r.Keys[i])
		be.PutUint64(out[hdr+8*n+8*i:], r.Ptrs[i])
	}
	return out, nil
}

// inodeLoggedRanges returns the byte ranges of the inode (relative to its
// start) that the flags make recovery rewrite: the core always, but for
// di_next_unlinked, which inode recovery keeps from disk (unlinked list
// changes must be logged in the cluster buffer with LogBuf); each fork
// whose flags are set.
func inodeLoggedRanges(ip []byte, flags uint32, g *ondisk.Geometry) [][2]int {
	out := [][2]int{{0, dinodeNextUnlinkedOff}, {dinodeNextUnlinkedOff + 4, ondisk.DinodeCoreSize}}
	d, err := ondisk.DecodeDinode(ip)
	if err != nil {
		return out
	}
	if flags&iLogDFork != 0 {
		out = append(out, [2]int{ondisk.DinodeCoreSize, ondisk.DinodeCoreSize + ondisk.DataForkSize(d, g)})
	}
	if flags&iLogAFork != 0 && d.ForkOff != 0 {
		off := ondisk.AttrForkOffset(d)
		out = append(out, [2]int{off, off + ondisk.AttrForkSize(d, g)})
	}
	return out
}
