// Package xfs opens an XFS file system on an image or block device and
// reads it: the superblock and AG headers, inodes, extent maps,
// directories, symlinks and file contents. FS implements io/fs.FS, so
// fs.WalkDir and friends work on an image.
package xfs

import (
	"errors"
	"fmt"
	"io"

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
	f.meta = newMetaCache(dev, 1<<14)
	return f, nil
}

// SetMetaReader replaces the metadata reader (the journal's buffer cache).
func (f *FS) SetMetaReader(m MetaReader) { f.meta = m }

// ReadMeta reads length bytes of metadata at disk address daddr. The
// returned bytes are shared: callers must not modify them.
func (f *FS) ReadMeta(daddr int64, length int) ([]byte, error) {
	return f.meta.ReadMeta(daddr, length)
}

// Close closes the device if Open opened it.
func (f *FS) Close() error {
	if f.dev != nil {
		return f.dev.Close()
	}
	return nil
}

// metaCache reads metadata from the device and keeps recently read buffers,
// so that walks revisiting btree nodes and inode clusters stay cheap.
type metaCache struct {
	dev   ondisk.Storage
	limit int
	bufs  map[metaKey][]byte
}

type metaKey struct {
	daddr  int64
	length int
}

func newMetaCache(dev ondisk.Storage, limit int) *metaCache {
	return &metaCache{dev: dev, limit: limit, bufs: make(map[metaKey][]byte)}
}

func (m *metaCache) ReadMeta(daddr int64, length int) ([]byte, error) {
	k := metaKey{daddr, length}
	if b, ok := m.bufs[k]; ok {
		return b, nil
	}
	if daddr < 0 || length <= 0 {
		return nil, ondisk.Corruptf("metadata read of %d bytes at daddr %d", length, daddr)
	}
	b := ondisk.AlignedBuffer(length, 4096)
	if _, err := m.dev.ReadAt(b, daddr<<ondisk.BBShift); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ondisk.Corruptf("metadata at daddr %d is past the end of the device", daddr)
		}
		return nil, err
	}
	if len(m.bufs) >= m.limit {
		clear(m.bufs) // crude but bounded; walks are mostly sequential
	}
	m.bufs[k] = b
	return b, nil
}
