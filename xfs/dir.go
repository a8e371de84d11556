package xfs

import (
	"fmt"
	"sort"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/ondisk"
)

// extentMapper maps file blocks through a sorted extent list.
type extentMapper []ondisk.Extent

func (m extentMapper) Map(fileBlock uint64) (uint64, bool, error) {
	i := sort.Search(len(m), func(i int) bool { return m[i].End() > fileBlock })
	if i == len(m) || m[i].StartOff > fileBlock || m[i].Unwritten {
		return 0, false, nil
	}
	return m[i].StartBlock + (fileBlock - m[i].StartOff), true, nil
}

// metaBlocks reads directory blocks as metadata.
type metaBlocks struct{ f *FS }

func (r metaBlocks) ReadBlocks(fsb uint64, n int) ([]byte, error) {
	if !r.f.Geo.ValidFSB(fsb) || !r.f.Geo.ValidFSB(fsb+uint64(n)-1) {
		return nil, ondisk.Corruptf("directory block %d+%d outside the file system", fsb, n)
	}
	return r.f.ReadMeta(r.f.Geo.FSBDaddr(fsb), n*r.f.Geo.BlockSize)
}

// Dir opens a directory inode for listing and lookup.
func (ip *Inode) Dir() (*dir.Dir, error) {
	if !ip.Core.IsDir() {
		return nil, fmt.Errorf("inode %d: not a directory", ip.Ino)
	}
	var exts []ondisk.Extent
	if ip.Core.Format != ondisk.FmtLocal {
		var err error
		if exts, err = ip.Extents(bmbt.DataFork); err != nil {
			return nil, err
		}
	}
	return dir.New(ip.fs.Geo, ip.Ino, ip.Core.Format, ip.Core.Size, ip.DataFork(), extentMapper(exts), metaBlocks{ip.fs}), nil
}

// ReadDir lists a directory in the kernel's readdir order, without "."
// and "..".
func (ip *Inode) ReadDir() ([]dir.Entry, error) {
	d, err := ip.Dir()
	if err != nil {
		return nil, err
	}
	ents, err := d.Entries()
	if err != nil {
		return nil, fmt.Errorf("directory inode %d: %w", ip.Ino, err)
	}
	out := ents[:0]
	for _, e := range ents {
		if e.Name != "." && e.Name != ".." {
			out = append(out, e)
		}
	}
	return out, nil
}
