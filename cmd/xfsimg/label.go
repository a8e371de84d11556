package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
	"golang.org/x/sys/unix"
)

type labelJSON struct {
	Label    string     `json:"label"`
	Previous *string    `json:"previous,omitempty"`
	Log      *log.Stats `json:"log,omitempty"`
}

func newLabelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "label IMAGE [NEWLABEL]",
		Short: "Show the file system label, or set it as xfs_admin -L does",
		Long: `label shows the label of the file system in IMAGE. With NEWLABEL it sets the
label, at most 12 bytes; "--" clears it, as with xfs_admin -L.

The change is one transaction in the file system's own log: the primary
superblock is logged and written in place, the secondary superblocks get the
new label as the kernel and xfs_admin give it to them, and the log is left
clean. The image must not be mounted, and its log must be clean (run
xfsimg recover, or mount and unmount it, first).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The flag parser swallows a bare "--": "label IMAGE --"
			// arrives as one argument with the dash after it.
			if len(args) == 1 && cmd.ArgsLenAtDash() == 1 {
				return setLabel(args[0], "--")
			}
			if len(args) == 1 {
				return showLabel(args[0])
			}
			return setLabel(args[0], args[1])
		},
	}
}

func showLabel(path string) error {
	f, err := openFS(path)
	if err != nil {
		return err
	}
	defer f.Close()
	label := labelString(f.SB.FName[:])
	return output(labelJSON{Label: label}, func() error {
		_, err := fmt.Fprintf(stdout, "label = %q\n", label)
		return err
	})
}

func labelString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func setLabel(path, label string) error {
	if label == "--" {
		label = ""
	}
	if len(label) > log.LabelMax {
		return fmt.Errorf("label %q is too long: %d bytes, at most %d", label, len(label), log.LabelMax)
	}
	if strings.IndexByte(label, 0) >= 0 {
		return fmt.Errorf("label contains a NUL byte")
	}
	dev, err := ondisk.Open(path, ondisk.OpenOptions{
		Write: true, Buffered: gflags.buffered, NoWait: true,
		Warnf: func(format string, args ...any) { fmt.Fprintf(stderr, "xfsimg: "+format+"\n", args...) },
	})
	if err != nil {
		return writeOpenError(path, err)
	}
	defer dev.Close()
	f, err := xfs.New(dev)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	j, err := log.Open(dev, f.SB, f.Geo, log.Options{})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	prev, err := j.Label()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := j.SetLabel(label); err != nil {
		j.Close()
		return fmt.Errorf("%s: set label: %w", path, err)
	}
	if err := j.Close(); err != nil {
		return fmt.Errorf("%s: close log: %w", path, err)
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	st := j.Stats()
	return output(labelJSON{Label: label, Previous: &prev, Log: &st}, func() error {
		_, err := fmt.Fprintf(stdout, "new label = %q\n", label)
		return err
	})
}

// writeOpenError names the usual reasons an image cannot be opened for
// writing in words a user can act on.
func writeOpenError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s: cannot open for writing: the file is read-only (%w)", path, err)
	}
	return err
}
