package main

import (
	"fmt"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// resolveRaw finds an inode by number (shown even when free or damaged) or
// by path (which must resolve through valid directories).
func resolveRaw(f *xfs.FS, arg string) (*xfs.Inode, error) {
	if ino, ok := parseIno(arg); ok {
		return f.InodeRaw(ino)
	}
	return f.Resolve(arg, false)
}

func inspectInode(f *xfs.FS, arg string) error {
	ip, err := resolveRaw(f, arg)
	if err != nil {
		return err
	}
	fs := ip.Core.Fields(f.Geo, ip.Buf)
	if err := output(fs, func() error { return printFields(fs) }); err != nil {
		return err
	}
	if err := ip.Core.Verify(f.Geo, ip.Ino); err != nil {
		return fmt.Errorf("inode %d: %w", ip.Ino, err)
	}
	return nil
}

type bmapJSON struct {
	StartOff   uint64 `json:"startoff"`
	StartBlock uint64 `json:"startblock"`
	BlockCount uint64 `json:"blockcount"`
	ExtentFlag int    `json:"extentflag"`
}

func inspectBmap(f *xfs.FS, arg string, attr bool) error {
	ip, err := resolveRaw(f, arg)
	if err != nil {
		return err
	}
	if err := ip.Core.Verify(f.Geo, ip.Ino); err != nil {
		return fmt.Errorf("inode %d: %w", ip.Ino, err)
	}
	fork, format := bmbt.DataFork, ip.Core.Format
	if attr {
		fork, format = bmbt.AttrFork, ip.Core.AFormat
		if !ip.Core.HasAttrFork() {
			return output([]bmapJSON{}, func() error {
				_, err := fmt.Fprintf(stdout, "inode %d has no attribute fork\n", ip.Ino)
				return err
			})
		}
	}
	exts, err := ip.Extents(fork)
	if err != nil {
		return err
	}
	out := make([]bmapJSON, 0, len(exts))
	for _, e := range exts {
		flag := 0
		if e.Unwritten {
			flag = 1
		}
		out = append(out, bmapJSON{e.StartOff, e.StartBlock, e.BlockCount, flag})
	}
	return output(out, func() error { return printBmap(f, ip, fork, format, exts) })
}

var formatNames = map[uint8]string{
	ondisk.FmtDev: "dev", ondisk.FmtLocal: "local", ondisk.FmtExtents: "extents",
	ondisk.FmtBtree: "btree", ondisk.FmtUUID: "uuid",
}

func printBmap(f *xfs.FS, ip *xfs.Inode, fork bmbt.Fork, format uint8, exts []ondisk.Extent) error {
	g := f.Geo
	fmt.Fprintf(stdout, "inode %d %v: %s format, %d extents\n", ip.Ino, fork, formatNames[format], len(exts))
	if len(exts) == 0 {
		return nil
	}
	t := newTable()
	fmt.Fprintf(t, "EXT\tFILE OFFSET\tSTART BLOCK\tAG\tAG BLOCK\tBLOCKS\tSIZE\t FLAGS\n")
	for i, e := range exts {
		flags := ""
		if e.Unwritten {
			flags = "unwritten"
		}
		fmt.Fprintf(t, "%d\t%d\t%d\t%d\t%d\t%d\t%s\t %s\n", i, e.StartOff, e.StartBlock,
			g.FSBAgno(e.StartBlock), g.FSBAgbno(e.StartBlock), e.BlockCount,
			humanBytes(e.BlockCount*uint64(g.BlockSize)), flags)
	}
	return t.Flush()
}
