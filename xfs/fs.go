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
	Dev  ondisk.Storage
	SB   *ondisk.Superblock
	Geo  *ondisk.Geometry
	meta MetaReader
	dev  *ondisk.Device // set when FS opened the device itself
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
	if dev.Size() < ondisk.BBSize {
		return nil, ondisk.Corruptf("device of %d bytes is too small to hold a superblock", dev.Size())
	}
	// The sector size is only known once the superblock is read; its CRC
	// covers the whole sector, so read the first 512 bytes, then the sector.
	head := make([]byte, ondisk.BBSize)
	if _, err := dev.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	sb, err := ondisk.DecodeSuperblock(head)
	if err != nil {
		return nil, err
	}
	if ss := int(sb.SectSize); ss > ondisk.BBSize && ss <= 32768 && ss&(ss-1) == 0 && int64(ss) <= dev.Size() {
		sect := make([]byte, ss)
		if _, err := dev.ReadAt(sect, 0); err != nil {
			return nil, fmt.Errorf("read superblock: %w", err)
		}
		if sb, err = ondisk.DecodeSuperblock(sect); err != nil {
			return nil, err
		}
	}
	if err := sb.Verify(); err != nil {
		return nil, err
	}
	g := ondisk.NewGeometry(sb)
	if need := int64(sb.DBlocks) << g.BlockLog; need > dev.Size() {
		return nil, ondisk.Corruptf("image is truncated: %d bytes, the file system needs %d", dev.Size(), need)
	}
	f := &FS{Dev: dev, SB: sb, Geo: g}
	// 64 MiB of metadata pages at most.
	f.meta = newMetaCache(dev, (64<<20)>>g.BlockLog, g.BlockLog)
	return f, nil
}

// SetMetaReader replaces the metadata reader (the journal's buffer cache).
func (f *FS) SetMetaReader(m MetaReader) { f.meta = m }

// ReadMeta reads length bytes of metadata at disk address daddr. The
// returned bytes are shared: callers must not modify them.
func (f *FS) ReadMeta(daddr int64, length int) ([]byte, error) {
	return f.meta.ReadMeta(daddr, length)
}

// Prefetch reads many metadata blocks of length bytes at once, when the
// metadata reader can (the device cache can; the journal has nothing to
// gain). Errors are left for the reads that need the blocks.
func (f *FS) Prefetch(daddrs []int64, length int) {
	if p, ok := f.meta.(interface{ Prefetch([]int64, int) }); ok {
		p.Prefetch(daddrs, length)
	}
}

// Close closes the device if Open opened it.
func (f *FS) Close() error {
	if f.dev != nil {
		return f.dev.Close()
	}
	return nil
}
