package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/images"
)

func newDemoCmd() *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show what xfsimg does, on a sample image embedded in the binary",
		Long: `demo extracts a small XFS image (made by mkfs.xfs and populated through the
Linux kernel) into a temporary directory and runs xfsimg on it, printing each
command before its output. Nothing outside the temporary directory is touched;
--keep DIR keeps the image in DIR so you can try the commands yourself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := keep
			if dir == "" {
				tmp, err := os.MkdirTemp("", "xfsimg-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			} else if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			img := filepath.Join(dir, "sample.img")
			f, err := os.Create(img)
			if err != nil {
				return err
			}
			err = images.DecompressSparse(bytes.NewReader(images.Sample()), f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract sample image: %w", err)
			}
			return runDemo(img)
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "extract the sample image into this directory and keep it")
	return cmd
}

// runDemo runs real xfsimg commands on the sample, so the demo shows
// exactly what a user will see.
func runDemo(img string) error {
	steps := []struct {
		why  string
		args []string
	}{
		{"A summary: geometry, features, free space and inodes per AG, and the log.", []string{"inspect", img}},
		{"The root directory, as the kernel's readdir returns it.", []string{"ls", "-l", img, "/"}},
		{"A file's bytes, read straight from its extents.", []string{"cat", img, "/README.txt"}},
		{"A file fragmented into 40 extents, so its map is a BMBT (a btree rooted in the inode).", []string{"inspect", img, "bmap", "/data/fragmented.bin"}},
		{"Free space from both free-space btrees, as xfs_db freesp shows it.", []string{"inspect", img, "freesp"}},
		{"One allocation group's free-space header, every field named as xfs_db names it.", []string{"inspect", img, "agf", "0"}},
		{"Writing without mounting: preallocate 4 MiB as unwritten extents, punch a hole, each a journaled transaction in the image's own log.",
			[]string{"convert", img, "/data/fragmented.bin", "-c", "falloc 1m 4m", "-c", "fpunch 2m 256k"}},
		{"The main job, buffered writes as the kernel does them: pwrite reserves delayed allocation, fsync writes back: the delayed extent becomes blocks from the free-space btrees, the data goes out with O_DIRECT, and the mapping is committed in the log.",
			[]string{"convert", img, "/data/fragmented.bin", "-c", "pwrite -S 0x78 6m 1m", "-c", "fsync"}},
		{"The new map: unwritten extents from the allocator, the hole left by the punch, and the written megabyte at 6 MiB.", []string{"inspect", img, "bmap", "/data/fragmented.bin"}},
		{"The log, left clean: the kernel mounts the image without recovery.", []string{"inspect", img, "log"}},
		{"And the whole image checked: every btree, every block, every inode and directory.", []string{"check", img}},
	}
	for _, s := range steps {
		fmt.Fprintf(stdout, "\n# %s\n$ xfsimg %s\n", s.why, strings.Join(s.args, " "))
		root := newRootCmd()
		root.SetArgs(s.args)
		if err := root.Execute(); err != nil {
			return fmt.Errorf("xfsimg %s: %w", strings.Join(s.args, " "), err)
		}
	}
	return nil
}
