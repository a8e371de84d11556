package btree

import "github.com/xfsimg/xfsimg/ondisk"

// Ops describes one kind of tree: its on-disk layout and ordering.
type Ops interface {
	// Name is the tree's name in messages, e.g. "bnobt".
	Name() string
	// Magic is the v5 block magic.
	Magic() uint32
	// Long reports 64-bit sibling and child pointers with the 72-byte header.
	Long() bool
	// RecSize and KeySize are the byte sizes of a record and a key.
	RecSize() int
	KeySize() int
	// KeyFromRec writes the key of record rec into key.
	KeyFromRec(key, rec []byte)
	// CmpKey orders keys: negative, zero or positive as a < b, a == b, a > b.
	CmpKey(a, b []byte) int
}

// Shape is what a tree needs of the file-system geometry and of its owner.
type Shape struct {
	BlockSize int
	Owner     uint64 // agno for AG trees, inode number for the BMBT
	UUID      ondisk.UUID
	MaxLevels int // bound on the height, from the AG or inode geometry
}

// PtrSize is the size of a child pointer for the tree's form.
func PtrSize(o Ops) int {
	if o.Long() {
		return ondisk.LongPtrSize
	}
	return ondisk.ShortPtrSize
}

// HeaderSize is the block header size for the tree's form.
func HeaderSize(o Ops) int { return ondisk.BtreeHeaderSize(o.Long()) }

// LeafMaxRecs and NodeMaxRecs are the capacities of a block of blockSize
// bytes.
func LeafMaxRecs(o Ops, blockSize int) int { return (blockSize - HeaderSize(o)) / o.RecSize() }

// NodeMaxRecs is the number of key/pointer pairs a node block holds.
func NodeMaxRecs(o Ops, blockSize int) int {
	return (blockSize - HeaderSize(o)) / (o.KeySize() + PtrSize(o))
}
