// Package agf owns one allocation group's free space: the AGF header, the
// AGFL, and the by-block (bnobt) and by-size (cntbt) free-space btrees.
// The read side (AG, FreeExtents, Histogram) reads them; the Allocator
// allocates and frees extents in a journal transaction, as the kernel's
// xfs_alloc.c does.
package agf

import (
	"cmp"
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// bnoOps orders free extents by start block; cntOps by length, then start.
type bnoOps struct{}
type cntOps struct{}

// BnoOps and CntOps return the free-space tree operations.
func BnoOps() btree.Ops { return bnoOps{} }
func CntOps() btree.Ops { return cntOps{} }

func (bnoOps) Name() string               { return "bnobt" }
func (bnoOps) Magic() uint32              { return ondisk.BnoMagic }
func (bnoOps) Long() bool                 { return false }
func (bnoOps) RecSize() int               { return ondisk.AllocRecSize }
func (bnoOps) KeySize() int               { return ondisk.AllocKeySize }
func (bnoOps) KeyFromRec(key, rec []byte) { copy(key, rec[:ondisk.AllocKeySize]) }
func (bnoOps) CmpKey(a, b []byte) int {
	return cmp.Compare(binary.BigEndian.Uint32(a), binary.BigEndian.Uint32(b))
}

func (cntOps) Name() string               { return "cntbt" }
func (cntOps) Magic() uint32              { return ondisk.CntMagic }
func (cntOps) Long() bool                 { return false }
func (cntOps) RecSize() int               { return ondisk.AllocRecSize }
func (cntOps) KeySize() int               { return ondisk.AllocKeySize }
func (cntOps) KeyFromRec(key, rec []byte) { copy(key, rec[:ondisk.AllocKeySize]) }
func (cntOps) CmpKey(a, b []byte) int {
	if c := cmp.Compare(binary.BigEndian.Uint32(a[4:]), binary.BigEndian.Uint32(b[4:])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint32(a), binary.BigEndian.Uint32(b))
}

func (bnoOps) KeyString(k []byte) string {
	r := ondisk.DecodeAllocRec(k)
	return fmt.Sprintf("startblock %d", r.StartBlock)
}

func (cntOps) KeyString(k []byte) string {
	r := ondisk.DecodeAllocRec(k)
	return fmt.Sprintf("blockcount %d startblock %d", r.BlockCount, r.StartBlock)
}

// Key encodes a free extent as a key of either tree.
func Key(startBlock, blockCount uint32) []byte {
	k := make([]byte, ondisk.AllocKeySize)
	ondisk.AllocRec{StartBlock: startBlock, BlockCount: blockCount}.Encode(k)
	return k
}
