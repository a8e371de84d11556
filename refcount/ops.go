// Package refcount owns one allocation group's reference count btree
// (reflink): records of extents shared by more than one owner, and of
// copy-on-write staging extents. It holds the tree operations, the
// record reader, and the write side (Writer: Adjust, AllocCow, FreeCow,
// Shared) that changes the tree in a journal transaction through the one
// btree engine, as the kernel's xfs_refcount.c.
package refcount

import (
	"cmp"
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// ops orders records by their start block as stored, COW flag (bit 31)
// included: staging extents form their own domain after the shared ones,
// as the kernel encodes the key.
type ops struct{}

// Ops returns the refcount btree operations.
func Ops() btree.Ops { return ops{} }

func (ops) Name() string               { return "refcountbt" }
func (ops) Magic() uint32              { return ondisk.RefcMagic }
func (ops) Long() bool                 { return false }
func (ops) RecSize() int               { return ondisk.RefcountRecSize }
func (ops) KeySize() int               { return ondisk.RefcountKeySize }
func (ops) KeyFromRec(key, rec []byte) { copy(key, rec[:ondisk.RefcountKeySize]) }
func (ops) CmpKey(a, b []byte) int {
	return cmp.Compare(binary.BigEndian.Uint32(a), binary.BigEndian.Uint32(b))
}

func (ops) KeyString(k []byte) string {
	v := binary.BigEndian.Uint32(k)
	if v&ondisk.RefcountCowFlag != 0 {
		return fmt.Sprintf("cow startblock %d", v&^ondisk.RefcountCowFlag)
	}
	return fmt.Sprintf("startblock %d", v)
}

// Key encodes a start block (with the COW flag when cow) as a key.
func Key(startBlock uint32, cow bool) []byte {
	k := make([]byte, ondisk.RefcountKeySize)
	if cow {
		startBlock |= ondisk.RefcountCowFlag
	}
	binary.BigEndian.PutUint32(k, startBlock)
	return k
}
