package xfs

import (
	"fmt"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Readlink returns a symlink's target, stored inline in the inode or in
// remote blocks that each carry a CRC header.
func (ip *Inode) Readlink() (string, error) {
	if !ip.Core.IsSymlink() {
		return "", fmt.Errorf("inode %d: not a symbolic link", ip.Ino)
	}
	size := ip.Core.Size
	if size <= 0 || size > ondisk.SymlinkMaxLen {
		return "", ondisk.Corruptf("inode %d: symlink length %d outside 1..%d", ip.Ino, size, ondisk.SymlinkMaxLen)
	}
	if ip.Core.Format == ondisk.FmtLocal {
		fork := ip.DataFork()
		if int(size) > len(fork) {
			return "", ondisk.Corruptf("inode %d: inline symlink of %d bytes in a %d-byte fork", ip.Ino, size, len(fork))
		}
		return string(fork[:size]), nil
	}
	exts, err := ip.Extents(bmbt.DataFork)
	if err != nil {
		return "", err
	}
	g := ip.fs.Geo
	target := make([]byte, 0, size)
	for _, e := range exts {
		for b := uint64(0); b < e.BlockCount && int64(len(target)) < size; b++ {
			fsb := e.StartBlock + b
			daddr := g.FSBDaddr(fsb)
			buf, err := ip.fs.ReadMeta(daddr, g.BlockSize)
			if err != nil {
				return "", fmt.Errorf("inode %d: symlink block %d: %w", ip.Ino, fsb, err)
			}
			hdr, data, err := ondisk.DecodeSymlinkBlock(buf)
			if err == nil {
				err = hdr.Verify(buf, g, ip.Ino, daddr)
			}
			if err != nil {
				return "", fmt.Errorf("inode %d: symlink block %d: %w", ip.Ino, fsb, err)
			}
			if int(hdr.Offset) != len(target) {
				return "", ondisk.Corruptf("inode %d: symlink block %d holds offset %d, want %d", ip.Ino, fsb, hdr.Offset, len(target))
			}
			target = append(target, data...)
		}
	}
	if int64(len(target)) != size {
		return "", ondisk.Corruptf("inode %d: symlink blocks hold %d bytes, size is %d", ip.Ino, len(target), size)
	}
	return string(target), nil
}
