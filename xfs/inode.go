package xfs

import (
	"fmt"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Inode is an inode read from disk: its decoded core and its raw bytes,
// which hold the forks.
type Inode struct {
	Ino  uint64
	Core *ondisk.Dinode
	Buf  []byte // the whole inode (InodeSize bytes); do not modify
	fs   *FS
}

// InodeRaw reads and decodes inode ino without verifying it, for display
// of damaged or free inodes.
func (f *FS) InodeRaw(ino uint64) (*Inode, error) {
	if !f.Geo.ValidIno(ino) {
		return nil, fmt.Errorf("inode %d: not a valid inode number for this file system: %w", ino, ondisk.ErrNotFound)
	}
	loc := f.Geo.LocateInode(ino)
	cluster, err := f.ReadMeta(loc.ClusterDaddr, loc.ClusterLen)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	buf := cluster[loc.Offset : loc.Offset+f.Geo.InodeSize]
	d, err := ondisk.DecodeDinode(buf)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	return &Inode{Ino: ino, Core: d, Buf: buf, fs: f}, nil
}

// Inode reads and verifies inode ino. A free inode is an error
// (ErrNotFound): nothing refers to it.
func (f *FS) Inode(ino uint64) (*Inode, error) {
	ip, err := f.InodeRaw(ino)
	if err != nil {
		return nil, err
	}
	if err := ip.Core.Verify(f.Geo, ino); err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	if ip.Core.IsFree() {
		return nil, fmt.Errorf("inode %d: inode is free: %w", ino, ondisk.ErrNotFound)
	}
	return ip, nil
}

// Root reads the root directory inode.
func (f *FS) Root() (*Inode, error) { return f.Inode(f.SB.RootIno) }

// DataFork and AttrFork return the fork bytes inside the inode.
func (ip *Inode) DataFork() []byte { return ondisk.DataFork(ip.Buf, ip.Core, ip.fs.Geo) }
func (ip *Inode) AttrFork() []byte { return ondisk.AttrFork(ip.Buf, ip.Core, ip.fs.Geo) }

// Size is the file size in bytes.
func (ip *Inode) Size() int64 { return ip.Core.Size }

// mapping describes one fork for the bmbt package.
func (ip *Inode) mapping(fork bmbt.Fork) *bmbt.Mapping {
	m := &bmbt.Mapping{
		Geo:   ip.fs.Geo,
		Store: bmbt.BlockStore{Geo: ip.fs.Geo, Read: ip.fs.ReadMeta, Prefetch: ip.fs.Prefetch},
		Ino:   ip.Ino,
	}
	if fork == bmbt.AttrFork {
		m.Format, m.Fork, m.NExtents = ip.Core.AFormat, ip.AttrFork(), uint64(ip.Core.ANExtents)
	} else {
		m.Format, m.Fork, m.NExtents = ip.Core.Format, ip.DataFork(), ip.Core.NExtents
	}
	return m
}

// Extents returns the extent map of a fork in file-offset order, whatever
// the fork's format. Local and device forks have none.
func (ip *Inode) Extents(fork bmbt.Fork) ([]ondisk.Extent, error) {
	if fork == bmbt.AttrFork && !ip.Core.HasAttrFork() {
		return nil, nil
	}
	exts, err := ip.mapping(fork).Extents()
	if err != nil {
		return nil, fmt.Errorf("inode %d: %v: %w", ip.Ino, fork, err)
	}
	return exts, nil
}
