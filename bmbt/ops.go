// Package bmbt owns an inode fork's block mapping: the extent list in the
// inode literal area and the long-form BMBT with its root in the inode.
package bmbt

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// ops is the BMBT's layout: 16-byte packed extent records keyed by their
// 54-bit file offset, 64-bit pointers, long-form blocks.
type ops struct{}

// Ops returns the BMBT tree operations.
func Ops() btree.Ops { return ops{} }

func (ops) Name() string  { return "bmbt" }
func (ops) Magic() uint32 { return ondisk.BmapMagic }
func (ops) Long() bool    { return true }
func (ops) RecSize() int  { return ondisk.BmbtRecSize }
func (ops) KeySize() int  { return ondisk.BmbtKeySize }

func (ops) KeyFromRec(key, rec []byte) {
	binary.BigEndian.PutUint64(key, ondisk.DecodeExtent(rec).StartOff)
}

func (ops) CmpKey(a, b []byte) int {
	x, y := binary.BigEndian.Uint64(a), binary.BigEndian.Uint64(b)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (ops) KeyString(k []byte) string {
	return fmt.Sprintf("startoff %d", binary.BigEndian.Uint64(k))
}

// Key encodes a file offset as a BMBT key.
func Key(startoff uint64) []byte {
	k := make([]byte, ondisk.BmbtKeySize)
	binary.BigEndian.PutUint64(k, startoff)
	return k
}
