package refcount

import (
	"fmt"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Writer is one AG's refcount btree opened for change in a transaction.
// The tree's root, level and block count live in the AGF, which it holds
// through the transaction's agf.Allocator (one copy of the AGF per
// transaction); its blocks come through the transaction, new ones from the
// AG's free space through the same Allocator, and freed ones go back to
// it. Every change goes through the one btree engine.
//
// After an error the tree and the transaction's buffers may be half
// changed: cancel the transaction. A Writer lives as long as its
// transaction and is not safe for concurrent use.
type Writer struct {
	tx    *log.Tx
	g     *ondisk.Geometry
	al    *agf.Allocator
	agno  uint32
	hold  *agf.AGFHold
	bufs  map[uint32]*log.Buf // tree blocks the transaction holds
	tree  *btree.Tree
	refcB uint32        // where mkfs puts the root: the allocation target
	c     *btree.Cursor // the one cursor every operation repositions
	err   error
}

// Open takes AG agno's AGF in the allocator's transaction (in increasing
// AG order, as any AGF lock) and opens its refcount btree for change. The
// file system must have reflink; rmapbt is refused because every refcount
// btree block and staging extent would also need a reverse mapping.
func Open(tx *log.Tx, g *ondisk.Geometry, al *agf.Allocator, agno uint32) (*Writer, error) {
	if tx.Journal().Superblock().HasRmapbt() {
		return nil, fmt.Errorf("agf %d: refcountbt: changes with rmapbt: %w", agno, ondisk.ErrUnsupported)
	}
	return open(tx, g, al, agno)
}

// open is Open without the rmapbt refusal, for lookups only.
func open(tx *log.Tx, g *ondisk.Geometry, al *agf.Allocator, agno uint32) (*Writer, error) {
	sb := tx.Journal().Superblock()
	if !sb.HasReflink() {
		return nil, fmt.Errorf("agf %d: refcountbt: file system without reflink: %w", agno, ondisk.ErrUnsupported)
	}
	hold, err := al.HoldAGF(agno)
	if err != nil {
		return nil, fmt.Errorf("agf %d: refcountbt: %w", agno, err)
	}
	f := hold.AGF()
	if f.RefcountLevel < 1 || f.RefcountRoot == 0 {
		return nil, ondisk.Corruptf("agf %d: refcountbt: root %d at level %d", agno, f.RefcountRoot, f.RefcountLevel)
	}
	w := &Writer{tx: tx, g: g, al: al, agno: agno, hold: hold, bufs: map[uint32]*log.Buf{}, refcB: refcBlock(g, sb)}
	w.tree = &btree.Tree{
		Ops: Ops(),
		Shape: btree.Shape{
			BlockSize: g.BlockSize,
			Owner:     uint64(agno),
			UUID:      g.MetaUUID,
			MaxLevels: ondisk.RefcountMaxLevels(g),
		},
		Store: store{w},
		Root:  root{w},
	}
	return w, nil
}

// refcBlock is xfs_refc_block: the first block after the AG headers and
// the btree roots mkfs lays out before the refcount root (bnobt, cntbt,
// inobt, then finobt and rmapbt when present). The kernel allocates
// refcount btree blocks near it.
func refcBlock(g *ondisk.Geometry, sb *ondisk.Superblock) uint32 {
	b := ondisk.AGFLBlock(g) + 4
	if sb.HasFinobt() {
		b++
	}
	if sb.HasRmapbt() {
		b++
	}
	return b
}

// Agno is the AG whose tree this is.
func (w *Writer) Agno() uint32 { return w.agno }

// Tree is the tree as the engine sees it (for walks and tests).
func (w *Writer) Tree() *btree.Tree { return w.tree }

// Err is the first error a change hit.
func (w *Writer) Err() error { return w.err }

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

func (w *Writer) errorf(format string, args ...any) error {
	return fmt.Errorf("agf %d: refcountbt: "+format, append([]any{w.agno}, args...)...)
}

// store is the tree's btree.Writer.
type store struct{ w *Writer }

// VerifyBlock is the refcount btree block read verifier
// (xfs_refcountbt_verify plus the CRC).
func VerifyBlock(g *ondisk.Geometry, agno uint32, daddr int64, buf []byte) error {
	h, err := ondisk.DecodeBtreeBlock(buf, false)
	if err != nil {
		return err
	}
	return h.Verify(buf, ondisk.BlockCheck{Magic: ondisk.RefcMagic, Daddr: daddr, Owner: uint64(agno),
		UUID: g.MetaUUID, Level: -1, Geo: g})
}

func (s store) ReadBlock(ptr uint64) ([]byte, int64, error) {
	w := s.w
	if ptr <= uint64(ondisk.AGFLBlock(w.g)) || ptr >= uint64(w.hold.AGF().Length) {
		return nil, 0, ondisk.Corruptf("agf %d: refcountbt: block pointer %d outside the AG", w.agno, ptr)
	}
	if b := w.bufs[uint32(ptr)]; b != nil {
		return b.Data, b.Daddr, nil
	}
	daddr := w.g.AGBDaddr(w.agno, uint32(ptr))
	b, err := w.tx.ReadBufVerify(daddr, w.g.BlockSize, log.BufBtree, func(buf []byte) error {
		return VerifyBlock(w.g, w.agno, daddr, buf)
	})
	if err != nil {
		return nil, 0, err
	}
	w.bufs[uint32(ptr)] = b
	return b.Data, daddr, nil
}

func (s store) LogBlock(ptr uint64, off, n int) {
	w := s.w
	if b := w.bufs[uint32(ptr)]; b != nil {
		w.tx.LogBuf(b, off, n)
		return
	}
	w.fail(w.errorf("block %d logged but not held", ptr))
	// A nil buffer fails the transaction: it must not commit.
	w.tx.LogBuf(nil, off, n)
}

// AllocBlock takes one block of the AG's free space near the refcount
// root's place, as xfs_refcountbt_alloc_block does (near_bno in the
// cursor's AG), and counts it in agf_refcount_blocks. The kernel takes it
// from the per-AG metadata reservation; there is none here, so a split in
// a full AG fails with ErrNoSpace and the transaction must be cancelled.
func (s store) AllocBlock(hint uint64) (uint64, []byte, int64, error) {
	w := s.w
	target := w.g.FSB(w.agno, w.refcB)
	fsb, n, err := w.al.Alloc(agf.Request{Target: target, MinLen: 1, MaxLen: 1, Align: 1, Metadata: true, SameAG: true})
	if err == nil && n != 1 {
		err = fmt.Errorf("no free block: %w", ondisk.ErrNoSpace)
	}
	if err == nil && w.g.FSBAgno(fsb) != w.agno {
		err = fmt.Errorf("allocator gave block %d outside the AG", fsb)
	}
	if err != nil {
		return 0, nil, 0, w.fail(w.errorf("new block: %w", err))
	}
	bno := w.g.FSBAgbno(fsb)
	daddr := w.g.AGBDaddr(w.agno, bno)
	b, err := w.tx.NewBuf(daddr, w.g.BlockSize, log.BufBtree)
	if err != nil {
		return 0, nil, 0, w.fail(w.errorf("new block %d: %w", bno, err))
	}
	// All of a new block is logged: a replay must not leave pieces of
	// whatever the block held before.
	w.tx.LogBuf(b, 0, len(b.Data))
	w.bufs[bno] = b
	f := w.hold.AGF()
	f.RefcountBlocks++
	w.hold.LogRefcount()
	return uint64(bno), b.Data, daddr, nil
}

// FreeBlock gives a block a join or root collapse emptied back to the
// AG's free space (xfs_refcountbt_free_block) and invalidates its buffer,
// so that neither the log nor write-back puts it over the block's next
// use.
func (s store) FreeBlock(ptr uint64) error {
	w := s.w
	f := w.hold.AGF()
	if f.RefcountBlocks <= 1 {
		return w.fail(ondisk.Corruptf("agf %d: refcountbt: refcntblocks %d at the free of block %d", w.agno, f.RefcountBlocks, ptr))
	}
	if err := w.al.Free(w.g.FSB(w.agno, uint32(ptr)), 1); err != nil {
		return w.fail(w.errorf("free block %d: %w", ptr, err))
	}
	if b := w.bufs[uint32(ptr)]; b != nil {
		w.tx.Invalidate(b)
		delete(w.bufs, uint32(ptr))
	}
	f.RefcountBlocks--
	w.hold.LogRefcount()
	return nil
}

// root is the tree's root in the AGF.
type root struct{ w *Writer }

func (r root) Height() int       { return int(r.w.hold.AGF().RefcountLevel) }
func (r root) Ptr() uint64       { return uint64(r.w.hold.AGF().RefcountRoot) }
func (r root) InodeRoot() []byte { return nil }
func (r root) LogInodeRoot()     {}

func (r root) SetRoot(ptr uint64, height int) {
	f := r.w.hold.AGF()
	f.RefcountRoot, f.RefcountLevel = uint32(ptr), uint32(height)
	r.w.hold.LogRefcount()
}

var _ btree.Writer = store{}
var _ btree.RootWriter = root{}
