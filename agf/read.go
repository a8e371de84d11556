package agf

import (
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// AGStore reads the blocks of one AG's short-form btrees by AG block number.
type AGStore struct {
	Geo      *ondisk.Geometry
	Agno     uint32
	Read     func(daddr int64, length int) ([]byte, error)
	Prefetch func(daddrs []int64, length int) // optional
}

// PrefetchBlocks implements btree.Prefetcher.
func (s AGStore) PrefetchBlocks(ptrs []uint64) {
	if s.Prefetch == nil {
		return
	}
	daddrs := make([]int64, 0, len(ptrs))
	for _, p := range ptrs {
		if p != 0 && p < uint64(s.Geo.AGSize(s.Agno)) {
			daddrs = append(daddrs, s.Geo.AGBDaddr(s.Agno, uint32(p)))
		}
	}
	s.Prefetch(daddrs, s.Geo.BlockSize)
}

// ReadBlock implements btree.Store.
func (s AGStore) ReadBlock(ptr uint64) ([]byte, int64, error) {
	if ptr >= uint64(s.Geo.AGSize(s.Agno)) || ptr == 0 {
		return nil, 0, ondisk.Corruptf("ag %d: block pointer %d outside the AG", s.Agno, ptr)
	}
	daddr := s.Geo.AGBDaddr(s.Agno, uint32(ptr))
	buf, err := s.Read(daddr, s.Geo.BlockSize)
	return buf, daddr, err
}

// AG is one allocation group's free-space state as read from disk.
type AG struct {
	Geo   *ondisk.Geometry
	Agno  uint32
	AGF   *ondisk.AGF
	Store btree.Store
}

func (a *AG) tree(ops btree.Ops, root, levels uint32) *btree.Tree {
	return &btree.Tree{
		Ops: ops,
		Shape: btree.Shape{
			BlockSize: a.Geo.BlockSize,
			Owner:     uint64(a.Agno),
			UUID:      a.Geo.MetaUUID,
			MaxLevels: ondisk.AllocMaxLevels(a.Geo),
		},
		Store: a.Store,
		Root:  btree.BlockRoot{RootPtr: uint64(root), Levels: int(levels)},
	}
}

// BnoTree and CntTree return the AG's free-space btrees.
func (a *AG) BnoTree() *btree.Tree { return a.tree(BnoOps(), a.AGF.BnoRoot, a.AGF.BnoLevel) }
func (a *AG) CntTree() *btree.Tree { return a.tree(CntOps(), a.AGF.CntRoot, a.AGF.CntLevel) }

// FreeExtents lists the free extents of one tree in its key order.
func (a *AG) FreeExtents(t *btree.Tree) ([]ondisk.AllocRec, error) {
	var out []ondisk.AllocRec
	err := a.EachFree(t, func(r ondisk.AllocRec) { out = append(out, r) })
	return out, err
}

// EachFree calls fn with each free extent of one tree in its key order.
// The number of records is bounded by the AG size, so a damaged tree
// cannot make the walk go on without end.
func (a *AG) EachFree(t *btree.Tree, fn func(ondisk.AllocRec)) error {
	n, limit := 0, int(a.Geo.AGSize(a.Agno))
	err := t.Records(func(rec []byte) error {
		if n++; n > limit {
			return ondisk.Corruptf("%v: more records than blocks in the AG", t)
		}
		fn(ondisk.DecodeAllocRec(rec))
		return nil
	})
	if err != nil {
		return fmt.Errorf("ag %d: %w", a.Agno, err)
	}
	return nil
}

// CountFree adds the free extents of one tree to h, a leaf at a time, with
// the bound EachFree has.
func (a *AG) CountFree(t *btree.Tree, h *Histogram) error {
	n, limit := 0, int(a.Geo.AGSize(a.Agno))
	err := t.Leaves(func(recs []byte) error {
		if n += len(recs) / ondisk.AllocRecSize; n > limit {
			return ondisk.Corruptf("%v: more records than blocks in the AG", t)
		}
		h.AddPacked(recs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ag %d: %w", a.Agno, err)
	}
	return nil
}
