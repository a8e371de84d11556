package agi

import (
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// AG is one allocation group's inode btrees as read from disk. Blocks are
// read through Store (an agf.AGStore works: both are short-form AG trees).
type AG struct {
	Geo    *ondisk.Geometry
	Agno   uint32
	AGI    *ondisk.AGI
	Sparse bool // sparse inode chunks: records carry a holemask and count
	Store  btree.Store
}

func (a *AG) tree(o btree.Ops, root, levels uint32) *btree.Tree {
	return &btree.Tree{
		Ops: o,
		Shape: btree.Shape{
			BlockSize: a.Geo.BlockSize,
			Owner:     uint64(a.Agno),
			UUID:      a.Geo.MetaUUID,
			MaxLevels: ondisk.InobtMaxLevels(a.Geo),
		},
		Store: a.Store,
		Root:  btree.BlockRoot{RootPtr: uint64(root), Levels: int(levels)},
	}
}

// InoTree returns the inode btree.
func (a *AG) InoTree() *btree.Tree { return a.tree(InoOps(), a.AGI.Root, a.AGI.Level) }

// FinoTree returns the free inode btree; only meaningful when the file
// system has one (finobt feature).
func (a *AG) FinoTree() *btree.Tree { return a.tree(FinoOps(), a.AGI.FreeRoot, a.AGI.FreeLevel) }

// MaxChunks is the most inode chunks an AG of this size can hold, which
// bounds any record list read from its trees.
func (a *AG) MaxChunks() int {
	return int((uint64(a.Geo.AGSize(a.Agno)) << a.Geo.InoPBLog) / ondisk.InodesPerChunk)
}

// Chunks lists the records of t (InoTree or FinoTree) in key order.
func (a *AG) Chunks(t *btree.Tree) ([]ondisk.InobtRec, error) {
	var out []ondisk.InobtRec
	limit := a.MaxChunks()
	err := t.Records(func(rec []byte) error {
		if len(out) >= limit {
			return ondisk.Corruptf("%v: more records than inode chunks fit in the AG", t)
		}
		out = append(out, ondisk.DecodeInobtRec(rec, a.Sparse))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ag %d: %w", a.Agno, err)
	}
	return out, nil
}

// HoleMask expands a record's holemask to one bit per inode (set for
// inodes that are not allocated), as the kernel's xfs_inobt_irec_to_allocmask
// inverts it. Without sparse inodes there are no holes.
func HoleMask(r ondisk.InobtRec) uint64 {
	var m uint64
	for i := 0; i < 16; i++ {
		if r.HoleMask&(1<<i) != 0 {
			m |= 0xf << (4 * i)
		}
	}
	return m
}
