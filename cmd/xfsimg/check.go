package main

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/xfsimg/xfsimg/check"
)

func newCheckCmd() *cobra.Command {
	var workers int
	cmd := &cobra.Command{
		Use:   "check IMAGE",
		Short: "Check the file system's consistency without changing it, as xfs_repair -n",
		Long: `check reads every piece of metadata of the file system — AG headers, the
free-space, inode, refcount and rmap btrees, every inode with its extent map
or BMBT, every directory and symlink — and checks each against the format and
against the rest: every block free or used exactly once, counters that add up,
directory entries naming inodes in use, link counts, every inode reachable
from the root, no metadata newer than the log. It never writes.

It prints a summary line ("clean", or "N problems in M kinds") and then one
line per finding: where (AG, block, inode), what is wrong, what was expected
and what was found. --json gives the same as a document. A progress bar is
drawn on standard error when it is a terminal.

Exit status: 0 clean, 1 problems found, 2 the check could not run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFS(args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer f.Close()
			opts := check.Options{Workers: workers}
			bar := newCheckProgress()
			if bar != nil {
				opts.Progress = func(done, total int64) {
					bar.ChangeMax64(total)
					bar.Set64(done)
				}
			}
			rep, err := check.Run(f, opts)
			if bar != nil {
				bar.Clear()
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if err := output(rep, func() error { return printCheck(args[0], rep) }); err != nil {
				return &exitError{code: 2, err: err}
			}
			if !rep.Clean() {
				return &exitError{code: 1, err: fmt.Errorf("%s: %s", args[0], rep.Summary())}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&workers, "workers", 0, "AGs checked at once (0: a few more than the CPUs)")
	return cmd
}

// newCheckProgress returns a progress bar on standard error when that is a
// terminal, nil otherwise (pipes, files, tests).
func newCheckProgress() *progressbar.ProgressBar {
	if stderr != os.Stderr || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("checking inodes"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("inodes"),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func printCheck(path string, rep *check.Report) error {
	if _, err := fmt.Fprintf(stdout, "%s: %s\n", path, rep.Summary()); err != nil {
		return err
	}
	for _, f := range rep.Findings {
		if _, err := fmt.Fprintln(stdout, f.String()); err != nil {
			return err
		}
	}
	return nil
}
