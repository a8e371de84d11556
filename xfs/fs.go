// Package xfs opens an XFS file system on an image or block device and
// reads it: the superblock and AG headers, inodes, extent maps,
// directories, symlinks and file contents. FS implements io/fs.FS, so
// fs.WalkDir and friends work on an image.
package xfs

import (
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// FS is an open XFS file system.
type FS struct {
	Dev   ondisk.Storage
	SB    *ondisk.Superblock
	Geo   *ondisk.Geometry
	meta  MetaReader
	cache *metaCache     // the device's page cache, which Close quiesces
	dev   *ondisk.Device // set when FS opened the device itself
}

// MetaReader reads metadata by disk address. The default reads the device
// through a small cache; the journal substitutes its buffer cache so that
// readers see uncommitted changes of the transactions before them.
type MetaReader interface {
	ReadMeta(daddr int64, length int) ([]byte, error)
}

// Open opens the image or block device at path read-only and reads its
// superblock.
func Open(path string, opt ondisk.OpenOptions) (*FS, error) {
	dev, err := ondisk.Open(path, opt)
	if err != nil {
		return nil, err
	}
	f, err := New(dev)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.dev = dev
	return f, nil
}

// New reads the superblock of the file system on dev and checks that it is
// one we can read.
func New(dev ondisk.Storage) (*FS, error) {
	sb, err := ondisk.ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	g := ondisk.NewGeometry(sb)
	f := &FS{Dev: dev, SB: sb, Geo: g}
	// 64 MiB of metadata at most, the tables of pages included.
	f.cache = newMetaCache(dev, 64<<20, g.BlockLog)
	f.meta = f.cache
	return f, nil
}

// SetMetaReader replaces the metadata reader (the journal's buffer cache).
func (f *FS) SetMetaReader(m MetaReader) { f.meta = m }

// ReadMeta reads length bytes of metadata at disk address daddr. The
// returned bytes are shared: callers must not modify them.
func (f *FS) ReadMeta(daddr int64, length int) ([]byte, error) {
	return f.meta.ReadMeta(daddr, length)
}

// Prefetch queues many metadata blocks of length bytes to be read in the
// background, several reads in flight, when the metadata reader can (the
// device cache can; the journal has nothing to gain). It returns at once;
// a ReadMeta of a queued block waits for its read. Errors are left for the
// reads that need the blocks.
func (f *FS) Prefetch(daddrs []int64, length int) {
	if p, ok := f.meta.(interface{ Prefetch([]int64, int) }); ok {
		p.Prefetch(daddrs, length)
	}
}

// Close closes the device if Open opened it. Prefetches still queued are
// dropped and those under way waited for first: they read the device in
// the background and must not outlive it.
func (f *FS) Close() error {
	f.cache.close()
	if f.dev != nil {
		return f.dev.Close()
	}
	return nil
}
