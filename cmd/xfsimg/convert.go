package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/ondisk"
	"golang.org/x/term"
)

type convertJSON struct {
	Path    string  `json:"path"`
	Inode   uint64  `json:"inode"`
	Seconds float64 `json:"seconds"`
	convert.Stats
}

func newConvertCmd() *cobra.Command {
	var cmds []string
	var script string
	c := &cobra.Command{
		Use:   "convert IMAGE PATH [-c CMD]... [-f SCRIPT]",
		Short: "Preallocate, punch and truncate a file as xfs_io would, through the image's log",
		Long: `convert changes the regular file PATH in IMAGE with xfs_io's commands, with
the Linux kernel's semantics, without mounting the image:

  falloc [-k] OFFSET LENGTH   preallocate (unwritten extents over the holes of
                              the block-rounded range); the size grows to the
                              end of the range unless -k
  fpunch OFFSET LENGTH        unmap and free the whole blocks of the range,
                              zero its written partial blocks; size unchanged
  truncate SIZE               set the size, freeing every block past it

Sizes take xfs_io's units: 4k, 1m, 2g, 0x1000, 8b (blocks), 2s (sectors).
Commands come from -c (repeatable) and -f SCRIPT (one per line, '#' starts a
comment); the script runs first. Each command is one or more transactions in
the file system's own log, and the log is left clean. A command that fails
stops the run: the commands before it stay done; a falloc that does not fit
in the free space fails before it changes anything. The image must not be
mounted and its log must be clean.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(cmds) == 0 && script == "" {
				return fmt.Errorf("no commands: give -c CMD or -f SCRIPT")
			}
			return runConvert(args[0], args[1], script, cmds)
		},
	}
	c.Flags().StringArrayVarP(&cmds, "command", "c", nil, "an xfs_io command (repeatable)")
	c.Flags().StringVarP(&script, "file", "f", "", "a script of xfs_io commands, one per line")
	return c
}

func runConvert(image, path, script string, cmdline []string) (err error) {
	start := time.Now()
	// Transactions make short-lived garbage quickly while the live heap
	// stays small: collect less often.
	debug.SetGCPercent(400)
	dev, err := ondisk.Open(image, ondisk.OpenOptions{
		Write: true, Buffered: gflags.buffered, NoWait: true,
		Warnf: func(format string, args ...any) { fmt.Fprintf(stderr, "xfsimg: "+format+"\n", args...) },
	})
	if err != nil {
		return writeOpenError(image, err)
	}
	defer dev.Close()
	s, err := convert.Open(dev, convert.Options{})
	if err != nil {
		return fmt.Errorf("%s: %w", image, err)
	}
	// Close writes what was committed and leaves the log clean, also after
	// a failed command.
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close log: %w", image, cerr)
		}
	}()
	g := s.Geometry()
	bs, ss := int64(g.BlockSize), int64(g.SectSize)
	var cmds []convert.Command
	if script != "" {
		f, err := os.Open(script)
		if err != nil {
			return err
		}
		cmds, err = convert.ParseScript(f, bs, ss)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", script, err)
		}
	}
	for _, text := range cmdline {
		c, err := convert.ParseCommand(text, 0, bs, ss)
		if err != nil {
			return err
		}
		if c.Name != "" {
			cmds = append(cmds, c)
		}
	}
	ino, err := s.Lookup(path)
	if err != nil {
		return err
	}
	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && len(cmds) >= 1000 && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(len(cmds), progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription("convert"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	for _, c := range cmds {
		if err := s.Run(ino, c); err != nil {
			if bar != nil {
				bar.Clear()
			}
			return describeConvert(err)
		}
		if bar != nil {
			bar.Add(1)
		}
	}
	if bar != nil {
		bar.Finish()
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("%s: close log: %w", image, err)
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("%s: %w", image, err)
	}
	st := s.Stats()
	out := convertJSON{Path: path, Inode: ino, Seconds: time.Since(start).Seconds(), Stats: st}
	return output(out, func() error {
		_, err := fmt.Fprintf(stdout, "%s: %d commands, %d extents created, %d removed, %d transactions in %d checkpoints, %s of log\n",
			path, st.Ops, st.ExtentsCreated, st.ExtentsRemoved, st.Transactions, st.Checkpoints, humanBytes(uint64(st.LogBytes)))
		return err
	})
}

// describeConvert words the errors a user meets as the kernel's would be.
func describeConvert(err error) error {
	switch {
	case errors.Is(err, ondisk.ErrNoSpace):
		return fmt.Errorf("%w (no space left on device; the image is unchanged by this command)", err)
	}
	return err
}
