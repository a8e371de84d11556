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
	// The kernel reads (and wrote) each extent as one buffer with one
	// header: a target that needs two blocks of 1 KiB in one extent has a
	// single header for both.
	g := ip.fs.Geo
	target := make([]byte, 0, size)
	for _, e := range exts {
		if int64(len(target)) >= size {
			break
		}
		if e.BlockCount > uint64(ondisk.SymlinkBlocks(ondisk.SymlinkMaxLen, g.BlockSize)) {
			return "", ondisk.Corruptf("inode %d: symlink extent of %d blocks", ip.Ino, e.BlockCount)
		}
		daddr := g.FSBDaddr(e.StartBlock)
		buf, err := ip.fs.ReadMeta(daddr, int(e.BlockCount)*g.BlockSize)
		if err != nil {
			return "", fmt.Errorf("inode %d: symlink block %d: %w", ip.Ino, e.StartBlock, err)
		}
		hdr, data, err := ondisk.DecodeSymlinkBlock(buf)
		if err == nil {
			err = hdr.Verify(buf, g, ip.Ino, daddr)
		}
		if err != nil {
			return "", fmt.Errorf("inode %d: symlink block %d: %w", ip.Ino, e.StartBlock, err)
		}
		if int(hdr.Offset) != len(target) {
			return "", ondisk.Corruptf("inode %d: symlink block %d holds offset %d, want %d", ip.Ino, e.StartBlock, hdr.Offset, len(target))
		}
		target = append(target, data...)
	}
	if int64(len(target)) != size {
		return "", ondisk.Corruptf("inode %d: symlink blocks hold %d bytes, size is %d", ip.Ino, len(target), size)
	}
	return string(target), nil
}
