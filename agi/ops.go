// Package agi owns one allocation group's inode allocation state as the
// AGI roots it: the inode btree (inobt, one record per 64-inode chunk) and
// the free inode btree (finobt, the records that have free inodes). It
// holds the tree operations and record readers; allocation is elsewhere.
package agi

import (
	"cmp"
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// ops orders inode chunk records by their first AG inode number; the inobt
// and the finobt differ only in magic and name.
type ops struct {
	name  string
	magic uint32
}

// InoOps and FinoOps return the inode btree operations.
func InoOps() btree.Ops  { return ops{"inobt", ondisk.InoMagic} }
func FinoOps() btree.Ops { return ops{"finobt", ondisk.FinoMagic} }

func (o ops) Name() string             { return o.name }
func (o ops) Magic() uint32            { return o.magic }
func (ops) Long() bool                 { return false }
func (ops) RecSize() int               { return ondisk.InobtRecSize }
func (ops) KeySize() int               { return ondisk.InobtKeySize }
func (ops) KeyFromRec(key, rec []byte) { copy(key, rec[:ondisk.InobtKeySize]) }
func (ops) KeyString(k []byte) string  { return fmt.Sprintf("startino %d", binary.BigEndian.Uint32(k)) }
func (ops) CmpKey(a, b []byte) int {
	return cmp.Compare(binary.BigEndian.Uint32(a), binary.BigEndian.Uint32(b))
}

// Key encodes a chunk's first AG inode number as a key of either tree.
func Key(startino uint32) []byte {
	k := make([]byte, ondisk.InobtKeySize)
	binary.BigEndian.PutUint32(k, startino)
	return k
}
