// Package dir reads XFS v5 directories in every format the kernel uses:
// shortform (in the inode), single block, leaf (data blocks and one leaf
// block) and node (data blocks, a dabtree of leaf blocks, free index
// blocks), whether the data fork maps them as extents or through a BMBT.
//
// It lists a directory in the order the kernel's readdir does, with the
// same cookies, and looks names up through the hash index as the kernel
// does. The caller supplies the inode's fork mapping and a block reader,
// so the package knows nothing of inodes or devices.
package dir

import (
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Mapper maps a logical file-system block of the directory (offset in fs
// blocks from the start of the data fork address space) to a physical
// AG-encoded block number; ok=false for a hole.
type Mapper interface {
	Map(fileBlock uint64) (fsb uint64, ok bool, err error)
}

// LastMapper is optionally implemented by a Mapper that knows its extent
// list: LastMapped returns the file block just past the last mapped
// extent (xfs_bmap_last_offset), 0 for an empty fork. With it, Form
// classifies exactly as the kernel does; without it Form infers the same
// answer from the blocks themselves.
type LastMapper interface {
	LastMapped() (uint64, error)
}

// BlockReader reads n contiguous file-system blocks starting at AG-encoded
// block fsb.
type BlockReader interface {
	ReadBlocks(fsb uint64, n int) ([]byte, error)
}

// Entry is one directory entry. Offset is the readdir cookie: the data
// pointer (byte offset in the directory's data space / 8) the kernel
// reports as the position of the entry.
type Entry struct {
	Name   string
	Ino    uint64
	FType  uint8
	Offset uint64
}

// Data fork formats (di_format).
const (
	formatLocal   = 1
	formatExtents = 2
	formatBtree   = 3
)

// dirFTDir is XFS_DIR3_FT_DIR, the type readdir gives "." and "..".
const dirFTDir = 2

// Forms, as Form reports them.
const (
	FormShortform = "shortform"
	FormBlock     = "block"
	FormLeaf      = "leaf"
	FormNode      = "node"
)

// Bounds that keep a damaged directory from making a walk run forever.
const (
	// maxSiblingHops bounds how far a lookup follows leaf sibling links
	// while hashes collide across leaves.
	maxSiblingHops = 1 << 12
)

// Dir is one directory, read through the mapping and reader it was made
// with. It caches blocks it has read and verified: it is a view of the
// image at one moment, not to be used across changes to the directory,
// and not safe for concurrent use.
type Dir struct {
	g      *ondisk.Geometry
	ino    uint64
	format uint8
	size   int64
	local  []byte
	m      Mapper
	r      BlockReader

	fsbPerDirBlk uint64
	leafDA       uint64 // file block of the leaf/node root
	freeDA       uint64 // file block of the first free index block

	data  map[uint64]*dataBlock // by directory block number
	leafs map[uint64]*leafBlock // leaf-space blocks by file block

	maxLSN      uint64 // newest LSN of the blocks read
	maxLSNDaddr int64

	salvage bool // keep data blocks that decode but fail verification
}

// Salvage makes the directory keep data blocks that decode but fail
// verification (with a good CRC): their failure is returned once, by the
// first read (Verify), and later reads (Entries) list their entries. It
// is for checkers, which report the damage and still want the names
// behind it; readers must not use it, as the kernel refuses such blocks.
func (d *Dir) Salvage() { d.salvage = true }

type dataBlock struct {
	b     *ondisk.DirDataBlock
	daddr int64
}

// leafBlock is a block of the leaf space: a leaf (LEAF1/LEAFN) or a node.
type leafBlock struct {
	leaf  *ondisk.DirLeaf
	node  *ondisk.DANode
	daddr int64
}

// New makes a Dir. format is the inode's di_format (1 local, 2 extents,
// 3 btree); local is the data fork bytes for shortform (at least size of
// them); size is di_size. m and r may be nil for a shortform directory.
func New(g *ondisk.Geometry, ino uint64, format uint8, size int64, local []byte, m Mapper, r BlockReader) *Dir {
	return &Dir{
		g: g, ino: ino, format: format, size: size, local: local, m: m, r: r,
		fsbPerDirBlk: uint64(g.DirBlkFSBs),
		leafDA:       ondisk.DirLeafOffset >> g.BlockLog,
		freeDA:       ondisk.DirFreeOffset >> g.BlockLog,
		data:         map[uint64]*dataBlock{},
		leafs:        map[uint64]*leafBlock{},
	}
}

func (d *Dir) errorf(format string, args ...any) error {
	return fmt.Errorf("directory %d: %w", d.ino, fmt.Errorf(format, args...))
}

func (d *Dir) corruptf(format string, args ...any) error {
	return fmt.Errorf("directory %d: %w", d.ino, ondisk.Corruptf(format, args...))
}

// Form reports how the kernel classifies the directory: "shortform",
// "block", "leaf" or "node", or "" when the directory is too damaged to
// tell (FormErr says why).
func (d *Dir) Form() string {
	f, _ := d.FormErr()
	return f
}

// FormErr is Form with the reason when the form cannot be decided.
func (d *Dir) FormErr() (string, error) {
	if d.g.DirBlkFSBs < 1 || d.g.DirBlkSize != d.g.DirBlkFSBs*d.g.BlockSize || d.g.DirBlkSize < 512 {
		return "", d.errorf("geometry: directory block of %d bytes in %d blocks of %d", d.g.DirBlkSize, d.g.DirBlkFSBs, d.g.BlockSize)
	}
	switch d.format {
	case formatLocal:
		return FormShortform, nil
	case formatExtents, formatBtree:
	default:
		return "", d.corruptf("data fork format %d is not local, extents or btree", d.format)
	}
	if d.m == nil || d.r == nil {
		return "", d.errorf("no block mapping for a %d-format directory", d.format)
	}
	if lm, ok := d.m.(LastMapper); ok {
		// xfs_dir2_format: the end of the last extent decides.
		eof, err := lm.LastMapped()
		if err != nil {
			return "", d.errorf("last mapped block: %w", err)
		}
		switch eof {
		case d.fsbPerDirBlk:
			if d.size != int64(d.g.DirBlkSize) {
				return "", d.corruptf("single-block directory with di_size %d, want %d", d.size, d.g.DirBlkSize)
			}
			return FormBlock, nil
		case d.leafDA + d.fsbPerDirBlk:
			return FormLeaf, nil
		}
		return FormNode, nil
	}
	// Without the extent list: a directory with no leaf block is a single
	// block; otherwise the leaf block's magic tells a leaf directory (its
	// one LEAF1) from a node directory (a node or LEAFN at the root).
	_, ok, err := d.m.Map(d.leafDA)
	if err != nil {
		return "", d.errorf("map leaf block %d: %w", d.leafDA, err)
	}
	if !ok {
		if d.size != int64(d.g.DirBlkSize) {
			return "", d.corruptf("no leaf block and di_size %d, a single-block directory has %d", d.size, d.g.DirBlkSize)
		}
		return FormBlock, nil
	}
	buf, _, hole, err := d.readDirBlock(d.leafDA)
	if err != nil {
		return "", err
	}
	if hole {
		return "", d.corruptf("leaf block %d is partly a hole", d.leafDA)
	}
	switch m := ondisk.DA3Magic(buf); m {
	case ondisk.Dir3Leaf1Magic:
		return FormLeaf, nil
	case ondisk.Dir3LeafNMagic, ondisk.DA3NodeMagic:
		return FormNode, nil
	default:
		return "", d.corruptf("block %d at the leaf offset has magic 0x%04x", d.leafDA, m)
	}
}

// readDirBlock reads the directory block starting at file block da, which
// may be spread over several extents. hole is true when none of it is
// mapped; a partly mapped directory block is corruption. daddr is the
// disk address of its first block, which the block's header must record.
func (d *Dir) readDirBlock(da uint64) (buf []byte, daddr int64, hole bool, err error) {
	n := d.fsbPerDirBlk
	fsbs := make([]uint64, 0, n)
	for i := uint64(0); i < n; i++ {
		fsb, ok, err := d.m.Map(da + i)
		if err != nil {
			return nil, 0, false, d.errorf("map file block %d: %w", da+i, err)
		}
		if !ok {
			if i == 0 {
				// The rest must be holes too.
				for j := uint64(1); j < n; j++ {
					if _, ok, err := d.m.Map(da + j); err != nil {
						return nil, 0, false, d.errorf("map file block %d: %w", da+j, err)
					} else if ok {
						return nil, 0, false, d.corruptf("directory block at file block %d is partly a hole", da)
					}
				}
				return nil, 0, true, nil
			}
			return nil, 0, false, d.corruptf("directory block at file block %d is partly a hole", da)
		}
		if !d.g.ValidFSB(fsb) {
			return nil, 0, false, d.corruptf("file block %d maps to block %d, outside the file system", da+i, fsb)
		}
		fsbs = append(fsbs, fsb)
	}
	buf = make([]byte, 0, d.g.DirBlkSize)
	for i := 0; i < len(fsbs); {
		j := i + 1
		for j < len(fsbs) && fsbs[j] == fsbs[j-1]+1 && d.g.FSBAgno(fsbs[j]) == d.g.FSBAgno(fsbs[i]) {
			j++
		}
		b, err := d.r.ReadBlocks(fsbs[i], j-i)
		if err != nil {
			return nil, 0, false, d.errorf("read %d blocks at %d: %w", j-i, fsbs[i], err)
		}
		if len(b) != (j-i)*d.g.BlockSize {
			return nil, 0, false, d.errorf("read %d blocks at %d: got %d bytes", j-i, fsbs[i], len(b))
		}
		buf = append(buf, b...)
		i = j
	}
	return buf, d.g.FSBDaddr(fsbs[0]), false, nil
}

// dataBlock returns data block db, read, decoded and verified; nil for a
// hole.
func (d *Dir) dataBlock(db uint64, magic uint32) (*dataBlock, error) {
	if b, ok := d.data[db]; ok {
		return b, nil
	}
	da := db * d.fsbPerDirBlk
	buf, daddr, hole, err := d.readDirBlock(da)
	if err != nil {
		return nil, err
	}
	if hole {
		d.data[db] = nil
		return nil, nil
	}
	b, err := ondisk.DecodeDirDataBlock(buf, d.g.HasFType)
	if err != nil {
		return nil, blockErr(ondisk.VerifyCRC(buf, ondisk.Dir3BlkHdrCRCOff), fmt.Errorf("directory %d: data block %d: %w", d.ino, db, err))
	}
	d.noteLSN(b.Hdr.LSN, daddr)
	if b.Hdr.Magic != magic {
		return nil, kinded(KindBlock, d.corruptf("data block %d has magic 0x%08x, want 0x%08x", db, b.Hdr.Magic, magic))
	}
	if err := b.Verify(buf, d.g, d.ino, daddr); err != nil {
		if d.salvage && b.Hdr.CRCOK() {
			d.data[db] = &dataBlock{b: b, daddr: daddr}
		}
		return nil, dataBlockErr(b.Hdr.CRCOK(), fmt.Errorf("directory %d: data block %d: %w", d.ino, db, err))
	}
	blk := &dataBlock{b: b, daddr: daddr}
	d.data[db] = blk
	return blk, nil
}

// leafBlock returns the leaf-space block at file block da, read, decoded
// as a leaf or node by its magic, and verified.
func (d *Dir) leafBlock(da uint64) (*leafBlock, error) {
	if b, ok := d.leafs[da]; ok {
		return b, nil
	}
	if da < d.leafDA || da >= d.freeDA || (da-d.leafDA)%d.fsbPerDirBlk != 0 {
		return nil, d.corruptf("leaf-space pointer to file block %d is outside the leaf space or misaligned", da)
	}
	buf, daddr, hole, err := d.readDirBlock(da)
	if err != nil {
		return nil, err
	}
	if hole {
		return nil, d.corruptf("leaf-space block %d is a hole", da)
	}
	lb := &leafBlock{daddr: daddr}
	switch m := ondisk.DA3Magic(buf); m {
	case ondisk.DA3NodeMagic:
		n, err := ondisk.DecodeDANode(buf)
		if err == nil {
			d.noteLSN(n.LSN, daddr)
			err = n.Verify(buf, d.g, d.ino, daddr)
		}
		if err != nil {
			return nil, blockErr(ondisk.VerifyCRC(buf, ondisk.DA3BlkInfoCRCOff), fmt.Errorf("directory %d: node block %d: %w", d.ino, da, err))
		}
		lb.node = n
	case ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic:
		l, err := ondisk.DecodeDirLeaf(buf)
		if err == nil {
			d.noteLSN(l.LSN, daddr)
			err = l.Verify(buf, d.g, d.ino, daddr)
		}
		if err != nil {
			return nil, blockErr(ondisk.VerifyCRC(buf, ondisk.DA3BlkInfoCRCOff), fmt.Errorf("directory %d: leaf block %d: %w", d.ino, da, err))
		}
		lb.leaf = l
	default:
		return nil, kinded(KindBlock, d.corruptf("leaf-space block %d has magic 0x%04x", da, m))
	}
	d.leafs[da] = lb
	return lb, nil
}

// shortform decodes and verifies the inline directory.
func (d *Dir) shortform() (*ondisk.DirSF, error) {
	if d.size < 0 || d.size > int64(len(d.local)) {
		return nil, d.corruptf("shortform di_size %d, fork has %d bytes", d.size, len(d.local))
	}
	s, err := ondisk.DecodeDirSF(d.local[:d.size], d.g.HasFType)
	if err == nil {
		err = s.Verify(d.g)
	}
	if err != nil {
		return nil, fmt.Errorf("directory %d: %w", d.ino, err)
	}
	return s, nil
}

// dataBlocks is the number of directory blocks the data space can hold
// below di_size.
func (d *Dir) dataBlocks() (uint64, error) {
	if d.size < 0 || d.size > ondisk.DirLeafOffset {
		return 0, d.corruptf("di_size %d is outside the data space", d.size)
	}
	bs := int64(d.g.DirBlkSize)
	return uint64((d.size + bs - 1) / bs), nil
}

// Entries lists the directory the way the kernel's readdir does: "." and
// ".." first, then every entry in data-space order, each with its cookie.
// A damaged data block is reported and skipped; the entries of the other
// blocks are still returned, with the joined errors.
func (d *Dir) Entries() ([]Entry, error) {
	form, err := d.FormErr()
	if err != nil {
		return nil, err
	}
	if form == FormShortform {
		s, err := d.shortform()
		if err != nil {
			return nil, err
		}
		out := make([]Entry, 0, len(s.Entries)+2)
		out = append(out,
			Entry{Name: ".", Ino: d.ino, FType: dirFTDir, Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, 0, ondisk.DirDataDotOffset))},
			Entry{Name: "..", Ino: s.Parent, FType: dirFTDir, Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, 0, ondisk.DirDataDotDotOff))})
		for _, e := range s.Entries {
			out = append(out, Entry{Name: string(e.Name), Ino: e.Ino, FType: e.FType,
				Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, 0, int(e.Offset)))})
		}
		return out, nil
	}
	if form == FormBlock {
		b, err := d.dataBlock(0, ondisk.Dir3BlockMagic)
		if err != nil {
			return nil, err
		}
		if b == nil {
			return nil, d.corruptf("single-block directory has no block 0")
		}
		return d.appendEntries(nil, 0, b.b), nil
	}
	n, err := d.dataBlocks()
	if err != nil {
		return nil, err
	}
	var out []Entry
	var errs []error
	for db := uint64(0); db < n; db++ {
		b, err := d.dataBlock(db, ondisk.Dir3DataMagic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b != nil {
			out = d.appendEntries(out, db, b.b)
		}
	}
	return out, errors.Join(errs...)
}

func (d *Dir) appendEntries(out []Entry, db uint64, b *ondisk.DirDataBlock) []Entry {
	for _, e := range b.Entries {
		out = append(out, d.entry(db, &e))
	}
	return out
}

func (d *Dir) entry(db uint64, e *ondisk.DirDataEntry) Entry {
	return Entry{Name: string(e.Name), Ino: e.Ino, FType: e.FType,
		Offset: uint64(ondisk.DirDataptr(d.g.DirBlkSize, db, e.Off))}
}
