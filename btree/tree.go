package btree

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Store reads a tree's blocks. ptr is what the tree's pointers hold: an AG
// block number for short trees, an AG-encoded file-system block for long.
type Store interface {
	// ReadBlock returns the bytes of block ptr and its disk address (for the
	// self-address check). The bytes belong to the store's cache: read-only
	// users must not modify them.
	ReadBlock(ptr uint64) (buf []byte, daddr int64, err error)
}

// Prefetcher is a Store that can read many blocks at once. Walks that
// visit every block (Records, Walk) use it to have the blocks ahead of
// them read together, many device trips in flight, rather than one trip
// per block. PrefetchBlocks is a hint: it may return before the blocks
// are read (a later ReadBlock waits for them), and it reports nothing,
// since the ReadBlock that needs a block reports why it cannot be read.
type Prefetcher interface {
	PrefetchBlocks(ptrs []uint64)
}

// Root says where a tree's root is.
type Root interface {
	// Height is the number of levels; 1 means the root is a leaf.
	Height() int
	// Ptr is the root block for trees rooted in a block.
	Ptr() uint64
	// InodeRoot is the in-memory root block of a tree rooted in an inode
	// fork, laid out as a long-form block whose capacity is set by its
	// length (the kernel's in-core broot); nil for block-rooted trees.
	InodeRoot() []byte
}

// BlockRoot is a Root held in an AG header field.
type BlockRoot struct {
	RootPtr uint64
	Levels  int
}

func (r BlockRoot) Height() int       { return r.Levels }
func (r BlockRoot) Ptr() uint64       { return r.RootPtr }
func (r BlockRoot) InodeRoot() []byte { return nil }

// Tree binds a kind of tree to one instance: its geometry, blocks and root.
type Tree struct {
	Ops   Ops
	Shape Shape
	Store Store
	Root  Root
}

// String names the tree instance for messages.
func (t *Tree) String() string {
	if t.Ops.Long() {
		return fmt.Sprintf("inode %d %s", t.Shape.Owner, t.Ops.Name())
	}
	return fmt.Sprintf("ag %d %s", t.Shape.Owner, t.Ops.Name())
}

// block is one decoded block (or the in-inode root) on a cursor path.
type block struct {
	buf   []byte
	ptr   uint64 // NullFSBlock for the inode root
	daddr int64
	hdr   *ondisk.BtreeBlock
}

func (b *block) numRecs() int { return int(b.hdr.NumRecs) }
func (b *block) level() int   { return int(b.hdr.Level) }

// capacity is how many records (leaf) or key/pointer pairs (node) fit in
// the buffer; for the in-inode root that is set by its size.
func (t *Tree) capacity(buf []byte, level int) int {
	if level == 0 {
		return LeafMaxRecs(t.Ops, len(buf))
	}
	return NodeMaxRecs(t.Ops, len(buf))
}

// minRecs is the fill a non-root block must keep.
func (t *Tree) minRecs(level int) int { return t.capacity(make([]byte, t.Shape.BlockSize), level) / 2 }

// Height returns the tree height, checked against the geometry's bound.
func (t *Tree) height() (int, error) {
	h := t.Root.Height()
	if h < 1 || (t.Shape.MaxLevels > 0 && h > t.Shape.MaxLevels) {
		return 0, ondisk.Corruptf("%v: height %d outside 1..%d", t, h, t.Shape.MaxLevels)
	}
	return h, nil
}

// rootBlock returns the root, verified as the top of a tree of height h.
func (t *Tree) rootBlock(h int) (*block, error) {
	if buf := t.Root.InodeRoot(); buf != nil {
		hdr, err := ondisk.DecodeBtreeBlock(buf, true)
		if err != nil {
			return nil, fmt.Errorf("%v: root: %w", t, err)
		}
		if int(hdr.Level) != h-1 {
			return nil, ondisk.Corruptf("%v: root level %d, want %d", t, hdr.Level, h-1)
		}
		if n := int(hdr.NumRecs); n < 1 || n > t.capacity(buf, h-1) {
			return nil, ondisk.Corruptf("%v: root has %d records, want 1..%d", t, n, t.capacity(buf, h-1))
		}
		return &block{buf: buf, ptr: ondisk.NullFSBlock, daddr: -1, hdr: hdr}, nil
	}
	return t.readBlock(t.Root.Ptr(), h-1, true)
}

// readBlock reads and verifies a block expected at the given level.
func (t *Tree) readBlock(ptr uint64, level int, root bool) (*block, error) {
	buf, daddr, err := t.Store.ReadBlock(ptr)
	if err != nil {
		return nil, fmt.Errorf("%v: block %d: %w", t, ptr, err)
	}
	hdr, err := ondisk.DecodeBtreeBlock(buf, t.Ops.Long())
	if err != nil {
		return nil, fmt.Errorf("%v: block %d: %w", t, ptr, err)
	}
	chk := ondisk.BlockCheck{
		Magic:   t.Ops.Magic(),
		Daddr:   daddr,
		Owner:   t.Shape.Owner,
		UUID:    t.Shape.UUID,
		Level:   level,
		MaxRecs: t.capacity(buf, level),
	}
	if !root {
		chk.MinRecs = 1 // a sparse non-root block is legal but an empty one never is
	}
	// A writer's store hands out the transaction's copy, whose CRC is only
	// stamped at writeback; it verified the CRC when it read the block.
	_, chk.SkipCRC = t.Store.(Writer)
	if err := hdr.Verify(buf, chk); err != nil {
		return nil, fmt.Errorf("%v: block %d: %w", t, ptr, err)
	}
	return &block{buf: buf, ptr: ptr, daddr: daddr, hdr: hdr}, nil
}

// Offsets of records, keys and pointers inside a block buffer.

func (t *Tree) recOff(i int) int { return HeaderSize(t.Ops) + i*t.Ops.RecSize() }
func (t *Tree) keyOff(i int) int { return HeaderSize(t.Ops) + i*t.Ops.KeySize() }
func (t *Tree) ptrOff(buf []byte, i int) int {
	return HeaderSize(t.Ops) + NodeMaxRecs(t.Ops, len(buf))*t.Ops.KeySize() + i*PtrSize(t.Ops)
}

func (t *Tree) rec(b *block, i int) []byte {
	o := t.recOff(i)
	return b.buf[o : o+t.Ops.RecSize()]
}

func (t *Tree) key(b *block, i int) []byte {
	o := t.keyOff(i)
	return b.buf[o : o+t.Ops.KeySize()]
}

func (t *Tree) ptr(b *block, i int) uint64 {
	o := t.ptrOff(b.buf, i)
	if t.Ops.Long() {
		return binary.BigEndian.Uint64(b.buf[o:])
	}
	return uint64(binary.BigEndian.Uint32(b.buf[o:]))
}

// keyAt returns the key of entry i of b, deriving it from the record at
// the leaf level.
func (t *Tree) keyAt(b *block, i int, scratch []byte) []byte {
	if b.level() == 0 {
		t.Ops.KeyFromRec(scratch, t.rec(b, i))
		return scratch
	}
	return t.key(b, i)
}
