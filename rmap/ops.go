// Package rmap owns the reverse-mapping btree's layout (rmapbt): which
// owner holds each extent of an AG. Only the tree operations live here, so
// that the btree engine can walk and verify the tree; records are not
// cross-checked yet.
package rmap

import (
	"cmp"
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// ops: records of 24 bytes; a node key slot holds a low key and a high key
// of 20 bytes each (the tree is overlapping: extents of different owners
// may share blocks). Keys are ordered by their low key: start block, owner,
// then offset without the unwritten flag, which keys do not carry.
type ops struct{}

// Ops returns the rmap btree operations.
func Ops() btree.Ops { return ops{} }

func (ops) Name() string  { return "rmapbt" }
func (ops) Magic() uint32 { return ondisk.RmapMagic }
func (ops) Long() bool    { return false }
func (ops) RecSize() int  { return ondisk.RmapRecSize }
func (ops) KeySize() int  { return 2 * ondisk.RmapKeySize }

// KeyFromRec writes the record's low key and its high key (the last block
// it maps, with the last file offset for file data).
func (ops) KeyFromRec(key, rec []byte) {
	r := ondisk.DecodeRmapRec(rec)
	be := binary.BigEndian
	off := r.Offset &^ ondisk.RmapOffUnwritten
	be.PutUint32(key[0:], r.StartBlock)
	be.PutUint64(key[4:], r.Owner)
	be.PutUint64(key[12:], off)
	adj := uint64(max(r.BlockCount, 1) - 1)
	hiOff := off
	if int64(r.Owner) >= 0 && !r.BmbtBlock() {
		hiOff += adj
	}
	be.PutUint32(key[20:], r.StartBlock+uint32(adj))
	be.PutUint64(key[24:], r.Owner)
	be.PutUint64(key[32:], hiOff)
}

// CmpKey compares low keys.
func (ops) CmpKey(a, b []byte) int {
	be := binary.BigEndian
	if c := cmp.Compare(be.Uint32(a), be.Uint32(b)); c != 0 {
		return c
	}
	if c := cmp.Compare(be.Uint64(a[4:]), be.Uint64(b[4:])); c != 0 {
		return c
	}
	return cmp.Compare(be.Uint64(a[12:])&^ondisk.RmapOffUnwritten, be.Uint64(b[12:])&^ondisk.RmapOffUnwritten)
}

func (ops) KeyString(k []byte) string {
	r := ondisk.DecodeRmapKey(k)
	return fmt.Sprintf("startblock %d owner %d offset %d", r.StartBlock, int64(r.Owner), r.FileOffset())
}
