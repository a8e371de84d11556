package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// globalFlags are shared by every command.
type globalFlags struct {
	json     bool
	buffered bool
}

var gflags globalFlags

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "xfsimg",
		Short: "Inspect and write XFS file systems in image files and block devices without mounting them",
		Long: `xfsimg opens a real XFS v5 file system — an image file or a block device such
as /dev/loop0 — shows everything in it, and writes into it without mounting it.

Reading commands never modify the image. Data is read with O_DIRECT where the
device allows it. Sizes accept xfs_io units (4k, 1m, 2g).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&gflags.json, "json", false, "print JSON instead of tables")
	root.PersistentFlags().BoolVar(&gflags.buffered, "buffered", false, "use buffered I/O instead of O_DIRECT")
	root.AddCommand(newInspectCmd(), newLsCmd(), newCatCmd(), newReadlinkCmd(), newCheckCmd(), newDemoCmd(), newLabelCmd(), newRecoverCmd(), newConvertCmd(), newWriteCmd())
	return root
}

// openFS opens an image read-only.
func openFS(path string) (*xfs.FS, error) {
	return xfs.Open(path, ondisk.OpenOptions{
		Buffered: gflags.buffered,
		Warnf: func(format string, args ...any) {
			fmt.Fprintf(stderr, "xfsimg: "+format+"\n", args...)
		},
	})
}
