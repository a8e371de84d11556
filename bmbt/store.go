package bmbt

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// An IFork is its BMBT's store (btree.Writer) and, through forkRoot, its
// root (btree.RootWriter): blocks come from the transaction, verified when
// read from the device; new blocks come from the Allocator and count in
// di_nblocks; the in-inode root is kept in the in-core long-block form and
// written back as a bmdr root by Log.

func (f *IFork) newTree() *btree.Tree {
	return &btree.Tree{
		Ops: Ops(),
		Shape: btree.Shape{
			BlockSize: f.g.BlockSize,
			Owner:     f.ino,
			UUID:      f.g.MetaUUID,
			MaxLevels: ondisk.BmbtMaxLevels(f.g),
		},
		Store: f,
		Root:  forkRoot{f},
	}
}

// VerifyBlock is the BMBT block read verifier (xfs_bmbt_verify plus the
// CRC): magic, CRC, UUID, self address, owner, a record count within the
// block's capacity at its level, and sibling pointers inside the file
// system.
func VerifyBlock(g *ondisk.Geometry, ino uint64, daddr int64, buf []byte) error {
	h, err := ondisk.DecodeBtreeBlock(buf, true)
	if err != nil {
		return err
	}
	leaf := h.Level == 0
	return h.Verify(buf, ondisk.BlockCheck{
		Magic:   ondisk.BmapMagic,
		Daddr:   daddr,
		Owner:   ino,
		UUID:    g.MetaUUID,
		Level:   -1,
		MaxRecs: ondisk.BmbtMaxRecs(g.BlockSize, leaf),
		Geo:     g,
	})
}

// ReadBlock implements btree.Store: the transaction's copy of block ptr.
func (f *IFork) ReadBlock(ptr uint64) ([]byte, int64, error) {
	if b := f.bufs[ptr]; b != nil {
		return b.Data, b.Daddr, nil
	}
	if !f.g.ValidFSB(ptr) || f.g.FSBAgbno(ptr) <= ondisk.AGFLBlock(f.g) {
		return nil, 0, ondisk.Corruptf("inode %d: bmbt pointer %d is not a data block", f.ino, ptr)
	}
	daddr := f.g.FSBDaddr(ptr)
	b, err := f.tx.ReadBufVerify(daddr, f.g.BlockSize, log.BufBtree, func(buf []byte) error {
		return VerifyBlock(f.g, f.ino, daddr, buf)
	})
	if err != nil {
		return nil, 0, err
	}
	f.bufs[ptr] = b
	return b.Data, daddr, nil
}

// LogBlock implements btree.Writer.
func (f *IFork) LogBlock(ptr uint64, off, n int) {
	if b := f.bufs[ptr]; b != nil {
		f.tx.LogBuf(b, off, n)
		return
	}
	f.fail(fmt.Errorf("inode %d: bmbt block %d logged but not held", f.ino, ptr))
}

// minLeft is what an allocation for this fork must leave free in its AG
// so that a BMBT split still finds blocks there (xfs_bmapi_minleft, for a
// transaction that has not allocated yet).
func (f *IFork) minLeft() uint32 {
	if f.format != ondisk.FmtBtree {
		return 1
	}
	return uint32(f.root.Height())
}

// MinLeft is the MinLeft a data allocation in this fork's transaction
// asks for (xfs_bmapi_minleft): room for a full BMBT split afterwards.
func (f *IFork) MinLeft() uint32 { return f.minLeft() }

// AllocBlock implements btree.Writer: one block near hint, or near the
// root's first child when the engine has no hint (a root growing a level),
// as xfs_bmbt_alloc_block does. If no AG can keep room for a full split
// after it, any block will do (the kernel's low-space fallback).
func (f *IFork) AllocBlock(hint uint64) (uint64, []byte, int64, error) {
	if hint == 0 || hint == ondisk.NullFSBlock {
		hint = f.g.FSB(f.g.InoAgno(f.ino), f.g.AginoAgbno(f.g.InoAgino(f.ino)))
		if f.format == ondisk.FmtBtree && f.root != nil {
			if p := f.rootPtr(0); p != 0 {
				hint = p
			}
		}
	}
	return f.allocBlock(hint, f.minLeft())
}

func (f *IFork) allocBlock(target uint64, minLeft uint32) (uint64, []byte, int64, error) {
	req := agf.Request{Target: target, MinLen: 1, MaxLen: 1, Align: 1, MinLeft: minLeft, Metadata: true}
	fsb, n, err := f.al.Alloc(req)
	if (err != nil && errors.Is(err, ondisk.ErrNoSpace) || err == nil && n == 0) && minLeft > 0 {
		req.MinLeft, req.Target = 0, 0
		fsb, n, err = f.al.Alloc(req)
	}
	if err == nil && n != 1 {
		err = fmt.Errorf("no free block: %w", ondisk.ErrNoSpace)
	}
	if err != nil {
		return 0, nil, 0, f.fail(fmt.Errorf("inode %d: bmbt block: %w", f.ino, err))
	}
	daddr := f.g.FSBDaddr(fsb)
	b, err := f.tx.NewBuf(daddr, f.g.BlockSize, log.BufBtree)
	if err != nil {
		return 0, nil, 0, f.fail(err)
	}
	// The whole block is new: log all of it, so that nothing a cached
	// earlier use of the block left behind can survive a replay.
	f.tx.LogBuf(b, 0, len(b.Data))
	f.bufs[fsb] = b
	f.core.NBlocks++
	f.dirty = true
	return fsb, b.Data, daddr, nil
}

// FreeBlock implements btree.Writer: the block goes back to free space and
// its buffer is invalidated, so that neither the log nor write-back can
// put stale metadata over whatever reuses it.
func (f *IFork) FreeBlock(ptr uint64) error {
	if err := f.al.Free(ptr, 1); err != nil {
		return f.fail(fmt.Errorf("inode %d: free bmbt block %d: %w", f.ino, ptr, err))
	}
	if b := f.bufs[ptr]; b != nil {
		f.tx.Invalidate(b)
		delete(f.bufs, ptr)
	}
	f.core.NBlocks--
	f.dirty = true
	return nil
}

// forkRoot is the fork's in-inode root as the engine sees it.
type forkRoot struct{ f *IFork }

func (r forkRoot) Height() int       { return r.f.root.Height() }
func (r forkRoot) Ptr() uint64       { return ondisk.NullFSBlock }
func (r forkRoot) InodeRoot() []byte { return r.f.root.buf }
func (r forkRoot) SetRoot(uint64, int) {
	r.f.fail(fmt.Errorf("inode %d: bmbt root moved out of the inode", r.f.ino))
}
func (r forkRoot) LogInodeRoot() { r.f.dirty = true }

// rootPtr is the i'th child pointer of the in-inode root.
func (f *IFork) rootPtr(i int) uint64 {
	buf := f.root.buf
	maxrecs := ondisk.BmdrMaxRecs(f.fsize)
	off := ondisk.LongBlockHeaderSize + maxrecs*ondisk.BmbtKeySize + i*ondisk.LongPtrSize
	if off+8 > len(buf) {
		return 0
	}
	return binary.BigEndian.Uint64(buf[off:])
}

// toBtree moves the extent list into a new BMBT leaf under a root in the
// inode (xfs_bmap_extents_to_btree): the leaf is allocated near the inode.
func (f *IFork) toBtree() error {
	maxrecs := ondisk.BmdrMaxRecs(f.fsize)
	if maxrecs < 1 {
		return fmt.Errorf("inode %d: a %d-byte fork cannot hold a bmbt root: %w", f.ino, f.fsize, ondisk.ErrUnsupported)
	}
	if len(f.exts) > ondisk.BmbtMaxRecs(f.g.BlockSize, true) {
		return fmt.Errorf("inode %d: %d extents do not fit one bmbt leaf", f.ino, len(f.exts))
	}
	inoBlock := f.g.FSB(f.g.InoAgno(f.ino), f.g.AginoAgbno(f.g.InoAgino(f.ino)))
	// The kernel asks for no minleft here: the leaf is the first block.
	fsb, buf, daddr, err := f.allocBlock(inoBlock, 0)
	if err != nil {
		return err
	}
	leaf := ondisk.BtreeBlock{
		Magic: ondisk.BmapMagic, NumRecs: uint16(len(f.exts)),
		LeftSib: ondisk.NullFSBlock, RightSib: ondisk.NullFSBlock,
		Blkno: uint64(daddr), UUID: f.g.MetaUUID, Owner: f.ino, Long: true,
	}
	leaf.Encode(buf)
	for i, e := range f.exts {
		e.Encode(buf[ondisk.LongBlockHeaderSize+i*ondisk.BmbtRecSize:])
	}
	f.tx.LogBuf(f.bufs[fsb], 0, len(buf))
	rbuf := make([]byte, ondisk.LongBlockHeaderSize+maxrecs*(ondisk.BmbtKeySize+ondisk.LongPtrSize))
	root := ondisk.BtreeBlock{
		Magic: ondisk.BmapMagic, Level: 1, NumRecs: 1,
		LeftSib: ondisk.NullFSBlock, RightSib: ondisk.NullFSBlock, Blkno: ondisk.NullFSBlock,
		UUID: f.g.MetaUUID, Owner: f.ino, Long: true,
	}
	root.Encode(rbuf)
	var first uint64
	if len(f.exts) > 0 {
		first = f.exts[0].StartOff
	}
	binary.BigEndian.PutUint64(rbuf[ondisk.LongBlockHeaderSize:], first)
	binary.BigEndian.PutUint64(rbuf[ondisk.LongBlockHeaderSize+maxrecs*ondisk.BmbtKeySize:], fsb)
	f.root = &inodeRoot{buf: rbuf}
	f.exts = nil
	f.setFormat(ondisk.FmtBtree)
	f.tree = f.newTree()
	f.dirty = true
	return nil
}

// toExtents brings a BMBT whose records fit the inode back into it and
// frees every block of the tree (xfs_bmap_btree_to_extents; the tree is a
// root over one leaf then, but any shape is handled).
func (f *IFork) toExtents() error {
	exts, err := f.Extents()
	if err != nil {
		return err
	}
	var blocks []uint64
	var walk func(ptr uint64, level int) error
	walk = func(ptr uint64, level int) error {
		blocks = append(blocks, ptr)
		if level == 0 {
			return nil
		}
		buf, _, err := f.ReadBlock(ptr)
		if err != nil {
			return err
		}
		h, err := ondisk.DecodeBtreeBlock(buf, true)
		if err != nil {
			return err
		}
		if int(h.Level) != level {
			return ondisk.Corruptf("inode %d: bmbt block %d at level %d, want %d", f.ino, ptr, h.Level, level)
		}
		for i := 0; i < int(h.NumRecs); i++ {
			off := ondisk.BtreePtrOff(true, len(buf), ondisk.BmbtKeySize, ondisk.LongPtrSize, i)
			if err := walk(binary.BigEndian.Uint64(buf[off:]), level-1); err != nil {
				return err
			}
		}
		return nil
	}
	h := f.root.Height()
	n := int(binary.BigEndian.Uint16(f.root.buf[6:]))
	for i := 0; i < n; i++ {
		if err := walk(f.rootPtr(i), h-2); err != nil {
			return err
		}
	}
	for _, p := range blocks {
		// Hold every block before freeing: FreeBlock invalidates the
		// transaction's buffer.
		if _, _, err := f.ReadBlock(p); err != nil {
			return err
		}
		if err := f.FreeBlock(p); err != nil {
			return err
		}
	}
	f.root, f.tree = nil, nil
	f.exts = exts
	f.setFormat(ondisk.FmtExtents)
	f.dirty = true
	return nil
}

// Log writes the core and the fork into the inode buffer and logs the
// inode with the fields its fork format calls for. Times, size and flags
// are whatever the caller set in Core.
func (f *IFork) Log() error {
	if f.err != nil {
		return f.err
	}
	fork := f.forkBytes()
	if len(fork) != f.fsize {
		return fmt.Errorf("inode %d: fork size changed from %d to %d", f.ino, f.fsize, len(fork))
	}
	var flags uint32
	switch f.format {
	case ondisk.FmtExtents:
		if len(f.exts) > f.MaxExtents() {
			return fmt.Errorf("inode %d: %d extents in a fork for %d", f.ino, len(f.exts), f.MaxExtents())
		}
		clear(fork)
		ondisk.EncodeExtents(fork, f.exts)
		flags = ILogExt(f.which)
	case ondisk.FmtBtree:
		h, err := ondisk.DecodeBtreeBlock(f.root.buf, true)
		if err != nil {
			return err
		}
		r := ondisk.BmdrRoot{Level: h.Level, NumRecs: h.NumRecs}
		for i := 0; i < int(h.NumRecs); i++ {
			r.Keys = append(r.Keys, binary.BigEndian.Uint64(f.root.buf[ondisk.LongBlockHeaderSize+i*ondisk.BmbtKeySize:]))
			r.Ptrs = append(r.Ptrs, f.rootPtr(i))
		}
		clear(fork)
		r.Encode(fork)
		flags = ILogBroot(f.which)
	}
	f.core.Encode(f.ibuf.Data[f.ioff : f.ioff+f.g.InodeSize])
	f.tx.LogInode(f.ino, log.ILogCore|flags)
	f.dirty = false
	return nil
}

// ILogExt and ILogBroot are the inode logging flags for a fork's records
// in either format.
func ILogExt(w Fork) uint32 {
	if w == AttrFork {
		return log.ILogAExt
	}
	return log.ILogDExt
}

func ILogBroot(w Fork) uint32 {
	if w == AttrFork {
		return log.ILogABroot
	}
	return log.ILogDBroot
}
