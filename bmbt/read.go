package bmbt

import (
	"fmt"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Fork selects the data or attribute fork.
type Fork int

const (
	DataFork Fork = iota
	AttrFork
)

func (f Fork) String() string {
	if f == AttrFork {
		return "attr fork"
	}
	return "data fork"
}

// BlockStore reads BMBT blocks by AG-encoded block number through a
// metadata reader.
type BlockStore struct {
	Geo      *ondisk.Geometry
	Read     func(daddr int64, length int) ([]byte, error)
	Prefetch func(daddrs []int64, length int) // optional
}

// PrefetchBlocks implements btree.Prefetcher.
func (s BlockStore) PrefetchBlocks(ptrs []uint64) {
	if s.Prefetch == nil {
		return
	}
	daddrs := make([]int64, 0, len(ptrs))
	for _, p := range ptrs {
		if s.Geo.ValidFSB(p) {
			daddrs = append(daddrs, s.Geo.FSBDaddr(p))
		}
	}
	s.Prefetch(daddrs, s.Geo.BlockSize)
}

// ReadBlock implements btree.Store.
func (s BlockStore) ReadBlock(ptr uint64) ([]byte, int64, error) {
	if !s.Geo.ValidFSB(ptr) {
		return nil, 0, ondisk.Corruptf("block pointer %d outside the file system", ptr)
	}
	daddr := s.Geo.FSBDaddr(ptr)
	buf, err := s.Read(daddr, s.Geo.BlockSize)
	return buf, daddr, err
}

// Mapping describes one inode fork to map.
type Mapping struct {
	Geo      *ondisk.Geometry
	Store    btree.Store
	Ino      uint64
	Format   uint8  // di_format or di_aformat
	Fork     []byte // the fork's bytes in the inode
	NExtents uint64 // the inode's extent count for this fork
}

// Tree returns the BMBT of a btree-format fork.
func (m *Mapping) Tree() (*btree.Tree, error) {
	root, err := rootFromFork(m.Fork, m.Ino, m.Geo.MetaUUID)
	if err != nil {
		return nil, fmt.Errorf("bmbt root: %w", err)
	}
	return &btree.Tree{
		Ops: Ops(),
		Shape: btree.Shape{
			BlockSize: m.Geo.BlockSize,
			Owner:     m.Ino,
			UUID:      m.Geo.MetaUUID,
			MaxLevels: ondisk.BmbtMaxLevels(m.Geo),
		},
		Store: m.Store,
		Root:  root,
	}, nil
}

// Extents returns every extent of the fork in file-offset order, from the
// inode literal area or the BMBT. It checks the records are sorted, do not
// overlap, lie inside the file system, and that their number is the
// inode's extent count.
func (m *Mapping) Extents() ([]ondisk.Extent, error) {
	var exts []ondisk.Extent
	switch m.Format {
	case ondisk.FmtExtents:
		var err error
		if exts, err = ondisk.DecodeExtents(m.Fork, m.NExtents); err != nil {
			return nil, err
		}
	case ondisk.FmtBtree:
		t, err := m.Tree()
		if err != nil {
			return nil, err
		}
		// The extent count bounds the walk, so a damaged tree cannot make us
		// collect more records than the inode claims.
		err = t.Records(func(rec []byte) error {
			if uint64(len(exts)) >= m.NExtents {
				return ondisk.Corruptf("bmbt holds more than the inode's %d extents", m.NExtents)
			}
			exts = append(exts, ondisk.DecodeExtent(rec))
			return nil
		})
		if err != nil {
			return nil, err
		}
		if uint64(len(exts)) != m.NExtents {
			return nil, ondisk.Corruptf("bmbt holds %d extents, inode says %d", len(exts), m.NExtents)
		}
	case ondisk.FmtLocal, ondisk.FmtDev:
		return nil, nil
	default:
		return nil, ondisk.Corruptf("fork format %d has no extent map", m.Format)
	}
	if err := ondisk.CheckExtents(exts, m.Geo); err != nil {
		return nil, err
	}
	return exts, nil
}
