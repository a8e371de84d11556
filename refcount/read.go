package refcount

import (
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// AG is one allocation group's refcount btree as the AGF roots it.
type AG struct {
	Geo   *ondisk.Geometry
	Agno  uint32
	AGF   *ondisk.AGF
	Store btree.Store
}

// Tree returns the refcount btree.
func (a *AG) Tree() *btree.Tree {
	return &btree.Tree{
		Ops: Ops(),
		Shape: btree.Shape{
			BlockSize: a.Geo.BlockSize,
			Owner:     uint64(a.Agno),
			UUID:      a.Geo.MetaUUID,
			MaxLevels: ondisk.RefcountMaxLevels(a.Geo),
		},
		Store: a.Store,
		Root:  btree.BlockRoot{RootPtr: uint64(a.AGF.RefcountRoot), Levels: int(a.AGF.RefcountLevel)},
	}
}

// Records lists the tree's records in key order: shared extents by start
// block, then COW staging extents. Their number is bounded by the AG size.
func (a *AG) Records(t *btree.Tree) ([]ondisk.RefcountRec, error) {
	var out []ondisk.RefcountRec
	limit := int(a.Geo.AGSize(a.Agno))
	err := t.Records(func(rec []byte) error {
		if len(out) >= limit {
			return ondisk.Corruptf("%v: more records than blocks in the AG", t)
		}
		out = append(out, ondisk.DecodeRefcountRec(rec))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ag %d: %w", a.Agno, err)
	}
	return out, nil
}
