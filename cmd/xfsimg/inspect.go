package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

type inspectFlags struct {
	attr bool
	ag   int
	all  bool
}

func newInspectCmd() *cobra.Command {
	var fl inspectFlags
	cmd := &cobra.Command{
		Use:   "inspect IMAGE [sb | agf N | agi N | agfl N | inode INO|PATH | bmap INO|PATH | freesp | log]",
		Short: "Show the superblock, AG headers, inodes, extent maps, free space and the log",
		Long: `inspect shows what is in an XFS file system, read-only.

With only IMAGE it prints a summary: geometry, features, a per-AG table of
free space and inodes, and where the log stands and whether it is clean.

  sb            every superblock field, named and printed as xfs_db prints it
  agf N         AG N's free-space header        agi N   AG N's inode header
  agfl N        AG N's free list
  inode X       the inode core and its forks (X is an inode number or a path)
  bmap X        the extent map, whatever the fork format (--attr: attribute fork)
  freesp        free-extent histogram from both free-space btrees (--ag N: one AG)
  log           head, tail and state of the internal log; for a dirty log the
                records between tail and head and their transactions (--all:
                every record in the log)

--json prints the same data as JSON with xfs_db's field names as keys.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFS(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if len(args) == 1 {
				return inspectSummary(f, args[0])
			}
			what, rest := args[1], args[2:]
			need := func(n int, usage string) error {
				if len(rest) != n {
					return fmt.Errorf("usage: xfsimg inspect IMAGE %s", usage)
				}
				return nil
			}
			switch what {
			case "sb":
				if err := need(0, "sb"); err != nil {
					return err
				}
				return inspectSB(f)
			case "agf", "agi", "agfl":
				if err := need(1, what+" AGNO"); err != nil {
					return err
				}
				agno, err := parseAgno(f, rest[0])
				if err != nil {
					return err
				}
				return inspectAGHeader(f, what, agno)
			case "inode":
				if err := need(1, "inode INO|PATH"); err != nil {
					return err
				}
				return inspectInode(f, rest[0])
			case "bmap":
				if err := need(1, "bmap INO|PATH [--attr]"); err != nil {
					return err
				}
				return inspectBmap(f, rest[0], fl.attr)
			case "freesp":
				if err := need(0, "freesp [--ag N]"); err != nil {
					return err
				}
				return inspectFreesp(f, fl.ag)
			case "log":
				if err := need(0, "log [--all]"); err != nil {
					return err
				}
				return inspectLog(f, fl.all)
			}
			return fmt.Errorf("unknown inspect target %q (want sb, agf, agi, agfl, inode, bmap, freesp or log)", what)
		},
	}
	cmd.Flags().BoolVar(&fl.attr, "attr", false, "bmap: map the attribute fork instead of the data fork")
	cmd.Flags().IntVar(&fl.ag, "ag", -1, "freesp: only this allocation group")
	cmd.Flags().BoolVar(&fl.all, "all", false, "log: every record found in the log, not only those between tail and head")
	return cmd
}

func parseAgno(f *xfs.FS, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid AG number %q", s)
	}
	if uint32(n) >= f.Geo.AGCount {
		return 0, fmt.Errorf("AG %d does not exist: the file system has %d AGs (0-%d)", n, f.Geo.AGCount, f.Geo.AGCount-1)
	}
	return uint32(n), nil
}

func inspectSB(f *xfs.FS) error {
	fs := f.SB.Fields()
	return output(fs, func() error { return printFields(fs) })
}

// inspectAGHeader prints a header even when it fails verification (that
// is when one most wants to see it), then reports the failure.
func inspectAGHeader(f *xfs.FS, what string, agno uint32) error {
	var fs ondisk.Fields
	var verr error
	switch what {
	case "agf":
		a, err := f.AGFRaw(agno)
		if err != nil {
			return err
		}
		fs, verr = a.Fields(f.SB), a.Verify(f.Geo, agno)
	case "agi":
		a, err := f.AGIRaw(agno)
		if err != nil {
			return err
		}
		fs, verr = a.Fields(f.SB), a.Verify(f.Geo, agno, f.SB)
	case "agfl":
		a, err := f.AGFLRaw(agno)
		if err != nil {
			return err
		}
		fs, verr = a.Fields(), a.Verify(f.Geo, agno)
	}
	if err := output(fs, func() error { return printFields(fs) }); err != nil {
		return err
	}
	if verr != nil {
		return fmt.Errorf("%s %d: %w", what, agno, verr)
	}
	return nil
}

// joinNames renders a feature list.
func joinNames(names []string) string { return strings.Join(names, ",") }
