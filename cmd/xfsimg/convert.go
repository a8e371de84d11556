package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/ondisk"
)

type convertJSON struct {
	Path    string  `json:"path"` // the file open at the end
	Inode   uint64  `json:"inode"`
	Seconds float64 `json:"seconds"`
	convert.Stats
}

func newConvertCmd() *cobra.Command {
	var cmds []string
	var script string
	var eng engineFlags
	c := &cobra.Command{
		Use:   "convert IMAGE PATH [-c CMD]... [-f SCRIPT] [--workers N] [--dirty-limit SIZE]",
		Short: "Write, preallocate, punch and truncate files as xfs_io would, through the image's log",
		Long: `convert changes the regular file PATH in IMAGE with xfs_io's commands, with
the Linux kernel's semantics, without mounting the image:

  pwrite [-S seed] [-b bsize] [-i file [-s skip]] [-w|-W] OFFSET LENGTH
                              buffered writes of bsize bytes (default 4k)
                              filled with the seed byte (default 0xcd) or
                              read from the host file at skip; -w fdatasync,
                              -W fsync after them
  fsync, fdatasync            write the file's data back and force the log
  sync_range [-a|-b|-w] OFFSET LENGTH
                              write back the dirty data of the range (no log
                              force)
  sync                        write back every file, force the log
  falloc [-k] OFFSET LENGTH   preallocate (unwritten extents over the holes of
                              the block-rounded range); the size grows to the
                              end of the range unless -k
  fpunch OFFSET LENGTH        unmap and free the whole blocks of the range,
                              zero its written partial blocks; size unchanged
  fzero [-k] OFFSET LENGTH    zero the range (unwritten extents over whole
                              blocks, zeroed partial blocks); the size grows
                              unless -k
  truncate SIZE               set the size, freeing every block past it
  open PATH                   go on with another file of the image (closing
                              the current one as its last close would); the
                              file must exist: creating files is not
                              implemented yet

Sizes take xfs_io's units: 4k, 1m, 2g, 0x1000, 8b (blocks), 2s (sectors).
Commands come from -c (repeatable) and -f SCRIPT (one per line, '#' starts a
comment); the script runs first. Writes go to a page cache of at most
--dirty-limit bytes and reach the image at writeback (fsync, sync,
sync_range, a full cache, the end of the run), allocated then as the
kernel's delayed allocation does, by --workers files at a time. Each change
is one or more transactions in the file system's own log, and the log is
left clean. A command that fails stops the run: the commands before it stay
done; a write or falloc that does not fit in the free space fails before it
changes anything. The image must not be mounted and its log must be clean.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(cmds) == 0 && script == "" {
				return fmt.Errorf("no commands: give -c CMD or -f SCRIPT")
			}
			opt, err := eng.options()
			if err != nil {
				return err
			}
			return runConvert(args[0], args[1], script, cmds, opt)
		},
	}
	c.Flags().StringArrayVarP(&cmds, "command", "c", nil, "an xfs_io command (repeatable)")
	c.Flags().StringVarP(&script, "file", "f", "", "a script of xfs_io commands, one per line")
	eng.add(c, "")
	return c
}

func runConvert(image, path, script string, cmdline []string, opt convert.Options) error {
	start := time.Now()
	var r *convert.Runner
	st, err := runEngine(image, opt, func(s *convert.Session) error {
		var err error
		r, err = runScript(s, path, script, cmdline)
		return err
	})
	if err != nil {
		return err
	}
	out := convertJSON{Path: r.Path, Inode: r.Ino, Seconds: time.Since(start).Seconds(), Stats: st}
	return output(out, func() error {
		_, err := fmt.Fprintf(stdout, "%s: %d commands, %s written, %d extents created, %d removed, %d transactions in %d checkpoints, %s of log\n",
			r.Path, st.Ops, humanBytes(uint64(st.BytesWritten)), st.ExtentsCreated, st.ExtentsRemoved, st.Transactions, st.Checkpoints, humanBytes(uint64(st.LogBytes)))
		return err
	})
}

// runScript parses the script and the command line's commands and runs
// them on path, with a progress bar when they are many or write much.
func runScript(s *convert.Session, path, script string, cmdline []string) (*convert.Runner, error) {
	g := s.Geometry()
	bs, ss := int64(g.BlockSize), int64(g.SectSize)
	var cmds []convert.Command
	if script != "" {
		f, err := os.Open(script)
		if err != nil {
			return nil, err
		}
		cmds, err = convert.ParseScript(f, bs, ss)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", script, err)
		}
	}
	for _, text := range cmdline {
		c, err := convert.ParseCommand(text, 0, bs, ss)
		if err != nil {
			return nil, err
		}
		if c.Name != "" {
			cmds = append(cmds, c)
		}
	}
	ino, err := s.Lookup(path)
	if err != nil {
		return nil, describeLookup(err)
	}
	r := &convert.Runner{S: s, Path: path, Ino: ino}
	var bar *progressbar.ProgressBar
	if len(cmds) >= 1000 || writesBytes(cmds) >= 64<<20 {
		bar = newBar(int64(len(cmds)), "convert", false)
	}
	for _, c := range cmds {
		if err := r.Run(c); err != nil {
			if bar != nil {
				bar.Clear()
			}
			return nil, describeConvert(err)
		}
		if bar != nil {
			bar.Add(1)
		}
	}
	if bar != nil {
		bar.Finish()
	}
	return r, nil
}

// describeConvert words the errors a user meets as the kernel's would be.
func describeConvert(err error) error {
	switch {
	case strings.Contains(err.Error(), "no such file or directory"):
		return describeLookup(err)
	case errors.Is(err, ondisk.ErrNoSpace):
		return fmt.Errorf("%w (no space left on device; the image is unchanged by this command)", err)
	}
	return err
}
