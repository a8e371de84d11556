package agf

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// txAG is one AG's free space as a transaction holds it. The AGF buffer's
// lock is the AG lock: while the transaction holds it, nobody else reads or
// changes the AG's free space, so the decoded AGF here is the truth.
type txAG struct {
	a      *Allocator
	agno   uint32
	agfBuf *log.Buf
	agf    *ondisk.AGF
	agfl   *log.Buf // read on first use
	bno    *btree.Tree
	cnt    *btree.Tree
	blocks map[uint32]*log.Buf // btree blocks the transaction holds
}

// AGF fields the allocator changes all lie in [agfLogOff, agfLogEnd): roots,
// levels, the AGFL ring indices and the three counters. Logging that range
// covers every change and leaves the CRC to the journal's write-back.
const (
	agfLogOff = 16
	agfLogEnd = 64
)

// lockAG takes AG agno's AGF for the transaction, in increasing AG order.
func (a *Allocator) lockAG(agno uint32) (*txAG, error) {
	if ag := a.ags[agno]; ag != nil {
		return ag, nil
	}
	if int64(agno) < a.highest {
		return nil, fmt.Errorf("ag %d: %w (AG %d is held)", agno, ErrLockOrder, a.highest)
	}
	g := a.g
	buf, err := a.tx.ReadBufVerify(g.AGFDaddr(agno), g.SectSize, log.BufAGF, func(b []byte) error {
		h, err := ondisk.DecodeAGF(b)
		if err != nil {
			return err
		}
		return h.Verify(g, agno)
	})
	if err != nil {
		return nil, fmt.Errorf("agf %d: %w", agno, err)
	}
	// A buffer from the cache may carry committed changes whose CRC is
	// only stamped at write-back: check the structure on a stamped copy.
	scratch := append([]byte(nil), buf.Data...)
	ondisk.StampCRC(scratch, ondisk.AGFCRCOff)
	agf, err := ondisk.DecodeAGF(scratch)
	if err == nil {
		err = agf.Verify(g, agno)
	}
	if err != nil {
		return nil, fmt.Errorf("agf %d: %w", agno, err)
	}
	ag := &txAG{a: a, agno: agno, agfBuf: buf, agf: agf, blocks: map[uint32]*log.Buf{}}
	ag.bno = ag.tree(BnoOps(), false)
	ag.cnt = ag.tree(CntOps(), true)
	a.ags[agno] = ag
	a.highest = max(a.highest, int64(agno))
	a.busy.observe(agno, a.owner, a.tx.Journal().Stats().Checkpoints)
	return ag, nil
}

func (ag *txAG) tree(ops btree.Ops, cnt bool) *btree.Tree {
	g := ag.a.g
	return &btree.Tree{
		Ops: ops,
		Shape: btree.Shape{
			BlockSize: g.BlockSize,
			Owner:     uint64(ag.agno),
			UUID:      g.MetaUUID,
			MaxLevels: ag.a.maxLevels,
		},
		Store: agStore{ag: ag, magic: ops.Magic()},
		Root:  agRoot{ag: ag, cnt: cnt},
	}
}

// logAGF writes the changeable AGF fields into the buffer and logs them.
func (ag *txAG) logAGF() {
	be := binary.BigEndian
	d := ag.agfBuf.Data
	f := ag.agf
	be.PutUint32(d[16:], f.BnoRoot)
	be.PutUint32(d[20:], f.CntRoot)
	be.PutUint32(d[28:], f.BnoLevel)
	be.PutUint32(d[32:], f.CntLevel)
	be.PutUint32(d[40:], f.FLFirst)
	be.PutUint32(d[44:], f.FLLast)
	be.PutUint32(d[48:], f.FLCount)
	be.PutUint32(d[52:], f.FreeBlks)
	be.PutUint32(d[56:], f.Longest)
	be.PutUint32(d[60:], f.BtreeBlks)
	ag.a.tx.LogBuf(ag.agfBuf, agfLogOff, agfLogEnd-agfLogOff)
}

// readAGFL gets the AGFL sector, verified when it comes from the device.
func (ag *txAG) readAGFL() (*log.Buf, error) {
	if ag.agfl != nil {
		return ag.agfl, nil
	}
	g := ag.a.g
	b, err := ag.a.tx.ReadBufVerify(g.AGFLDaddr(ag.agno), g.SectSize, log.BufAGFL, func(buf []byte) error {
		l, err := ondisk.DecodeAGFL(buf)
		if err != nil {
			return err
		}
		return l.Verify(g, ag.agno)
	})
	if err != nil {
		return nil, fmt.Errorf("agfl %d: %w", ag.agno, err)
	}
	ag.agfl = b
	return b, nil
}

func (ag *txAG) agflSize() uint32 { return uint32(ag.a.g.AGFLSize()) }

// popAGFL takes the block at flfirst off the free list
// (xfs_alloc_get_freelist). The slot keeps its old value, as in the
// kernel; only [flfirst, fllast] is meaningful.
func (ag *txAG) popAGFL(btreeBlock bool) (uint32, error) {
	f := ag.agf
	if f.FLCount == 0 {
		return 0, fmt.Errorf("ag %d: AGFL empty", ag.agno)
	}
	b, err := ag.readAGFL()
	if err != nil {
		return 0, err
	}
	bno := binary.BigEndian.Uint32(b.Data[ondisk.AGFLHeaderSize+4*f.FLFirst:])
	if bno == ondisk.NullAGBlock || bno <= ondisk.AGFLBlock(ag.a.g) || bno >= f.Length {
		return 0, ondisk.Corruptf("agfl %d: slot %d holds block %d, want a block of the AG", ag.agno, f.FLFirst, bno)
	}
	f.FLFirst = (f.FLFirst + 1) % ag.agflSize()
	f.FLCount--
	if btreeBlock {
		f.BtreeBlks++
	}
	ag.logAGF()
	return bno, nil
}

// pushAGFL puts bno on the free list after fllast (xfs_alloc_put_freelist).
func (ag *txAG) pushAGFL(bno uint32, btreeBlock bool) error {
	f := ag.agf
	size := ag.agflSize()
	if f.FLCount >= size {
		return fmt.Errorf("ag %d: AGFL full (%d blocks)", ag.agno, size)
	}
	if btreeBlock && f.BtreeBlks == 0 {
		return ondisk.Corruptf("agf %d: btreeblks would go below zero", ag.agno)
	}
	b, err := ag.readAGFL()
	if err != nil {
		return err
	}
	f.FLLast = (f.FLLast + 1) % size
	off := ondisk.AGFLHeaderSize + 4*int(f.FLLast)
	binary.BigEndian.PutUint32(b.Data[off:], bno)
	ag.a.tx.LogBuf(b, off, 4)
	f.FLCount++
	if btreeBlock {
		f.BtreeBlks--
	}
	ag.logAGF()
	return nil
}

// agflBlocks lists the blocks on the free list, first to last.
func (ag *txAG) agflBlocks() ([]uint32, error) {
	f := ag.agf
	if f.FLCount == 0 {
		return nil, nil
	}
	b, err := ag.readAGFL()
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, f.FLCount)
	size := ag.agflSize()
	for i, k := f.FLFirst, uint32(0); k < f.FLCount; i, k = (i+1)%size, k+1 {
		out = append(out, binary.BigEndian.Uint32(b.Data[ondisk.AGFLHeaderSize+4*i:]))
	}
	return out, nil
}

// agStore is a free-space tree's block store inside the transaction: blocks
// come through the transaction (verified when read from the device), new
// blocks come off the AGFL and freed ones go back to it.
type agStore struct {
	ag    *txAG
	magic uint32
}

func (s agStore) ReadBlock(ptr uint64) ([]byte, int64, error) {
	ag := s.ag
	g := ag.a.g
	if ptr <= uint64(ondisk.AGFLBlock(g)) || ptr >= uint64(ag.agf.Length) {
		return nil, 0, ondisk.Corruptf("ag %d: block pointer %d outside the AG", ag.agno, ptr)
	}
	if b := ag.blocks[uint32(ptr)]; b != nil {
		return b.Data, b.Daddr, nil
	}
	daddr := g.AGBDaddr(ag.agno, uint32(ptr))
	b, err := ag.a.tx.ReadBufVerify(daddr, g.BlockSize, log.BufBtree, func(buf []byte) error {
		h, err := ondisk.DecodeBtreeBlock(buf, false)
		if err != nil {
			return err
		}
		return h.Verify(buf, ondisk.BlockCheck{Magic: s.magic, Daddr: daddr, Owner: uint64(ag.agno),
			UUID: g.MetaUUID, Level: -1, Geo: g})
	})
	if err != nil {
		return nil, 0, err
	}
	ag.blocks[uint32(ptr)] = b
	return b.Data, daddr, nil
}

func (s agStore) LogBlock(ptr uint64, off, n int) {
	if b := s.ag.blocks[uint32(ptr)]; b != nil {
		s.ag.a.tx.LogBuf(b, off, n)
		return
	}
	// The engine only logs blocks it read or allocated through us; a
	// failed transaction is the loudest way to say otherwise.
	s.ag.a.tx.LogBuf(nil, off, n)
}

// AllocBlock takes a block off the AGFL for a split or a new root; the
// AGFL refill before every allocation guarantees there is one. The whole
// block is logged: it is new, and a replay must not leave pieces of
// whatever the block held before.
func (s agStore) AllocBlock(hint uint64) (uint64, []byte, int64, error) {
	ag := s.ag
	g := ag.a.g
	bno, err := ag.popAGFL(true)
	if err != nil {
		return 0, nil, 0, err
	}
	daddr := g.AGBDaddr(ag.agno, bno)
	b, err := ag.a.tx.NewBuf(daddr, g.BlockSize, log.BufBtree)
	if err != nil {
		return 0, nil, 0, err
	}
	ag.a.tx.LogBuf(b, 0, len(b.Data))
	ag.blocks[bno] = b
	return uint64(bno), b.Data, daddr, nil
}

// FreeBlock puts a block a join or root collapse emptied back on the AGFL
// and drops its buffer from the transaction (it may next hold file data).
func (s agStore) FreeBlock(ptr uint64) error {
	ag := s.ag
	bno := uint32(ptr)
	b := ag.blocks[bno]
	if b == nil {
		return fmt.Errorf("ag %d: free of btree block %d the transaction does not hold", ag.agno, bno)
	}
	if err := ag.pushAGFL(bno, true); err != nil {
		return err
	}
	ag.a.tx.Invalidate(b)
	delete(ag.blocks, bno)
	ag.a.busy.add(ag.agno, bno, 1, ag.a.owner)
	return nil
}

// agRoot is a tree's root as the AGF holds it.
type agRoot struct {
	ag  *txAG
	cnt bool
}

func (r agRoot) Height() int {
	if r.cnt {
		return int(r.ag.agf.CntLevel)
	}
	return int(r.ag.agf.BnoLevel)
}

func (r agRoot) Ptr() uint64 {
	if r.cnt {
		return uint64(r.ag.agf.CntRoot)
	}
	return uint64(r.ag.agf.BnoRoot)
}

func (r agRoot) InodeRoot() []byte { return nil }

func (r agRoot) SetRoot(ptr uint64, height int) {
	if r.cnt {
		r.ag.agf.CntRoot, r.ag.agf.CntLevel = uint32(ptr), uint32(height)
	} else {
		r.ag.agf.BnoRoot, r.ag.agf.BnoLevel = uint32(ptr), uint32(height)
	}
	r.ag.logAGF()
}

func (r agRoot) LogInodeRoot() {}
