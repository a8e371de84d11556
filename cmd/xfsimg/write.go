package main

import (
	"errors"
	"fmt"
	"github.com/xfsimg/xfsimg/ondisk"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/units"
)

type writeJSON struct {
	Path    string  `json:"path"`
	Inode   uint64  `json:"inode"`
	Offset  int64   `json:"offset"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	convert.Stats
}

// writeChunk is the size of one Write call: large writes, as cp and dd
// with a large block size make.
const writeChunk = 1 << 20

func newWriteCmd() *cobra.Command {
	var from, offset string
	var eng engineFlags
	c := &cobra.Command{
		Use:   "write IMAGE PATH [--from FILE|-] [--offset N] [--workers N] [--dirty-limit SIZE]",
		Short: "Write a host file into a file of the image, as cp would, through the image's log",
		Long: `write copies the host file FILE (or standard input: --from - or no --from)
into the regular file PATH of IMAGE at byte --offset (default 0), without
mounting the image, with the Linux kernel's semantics: buffered writes of
1 MiB into a page cache of at most --dirty-limit bytes, delayed allocation,
writeback by the image's own log, then fsync and the last close (which
trims speculative preallocation). Bytes of PATH past the end of what is
written are kept: the file grows but is not truncated.

PATH must exist in the image: creating files is not implemented yet (make
an empty file with the kernel, or with mkfs.xfs -p). The image must not be
mounted and its log must be clean. Sizes take xfs_io's units (4k, 1m, 2g).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, err := eng.options()
			if err != nil {
				return err
			}
			off, err := units.ParseSize(offset, 0, 0)
			if err != nil || off < 0 {
				return fmt.Errorf("--offset %q: want a size such as 0, 4k or 1g", offset)
			}
			return runWrite(args[0], args[1], from, off, opt)
		},
	}
	c.Flags().StringVar(&from, "from", "-", "the host file to copy; - is standard input")
	c.Flags().StringVar(&offset, "offset", "0", "where in PATH the data goes")
	// A copy streams: a page cache larger than a few I/Os only delays
	// the first writeback (the engine writes back when the cache is full)
	// and costs memory: 1 GiB of file through a 64 MiB cache took 2.6 s,
	// through the 1 GiB default 4.8 s.
	eng.add(c, "64m")
	return c
}

// stdin is a variable so that tests feed the command in process.
var stdin io.Reader = os.Stdin

func runWrite(image, path, from string, off int64, opt convert.Options) error {
	start := time.Now()
	var in io.Reader
	total := int64(-1)
	if from == "-" || from == "" {
		in, from = stdin, "standard input"
	} else {
		f, err := os.Open(from)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s: is a directory", from)
		}
		if st.Mode().IsRegular() {
			total = st.Size()
		}
		in = f
	}
	var ino uint64
	var n copied
	st, err := runEngine(image, opt, func(s *convert.Session) error {
		var err error
		if ino, err = s.Lookup(path); err != nil {
			return describeLookup(err)
		}
		bar := newBar(total, "write", true)
		n, err = copyIn(s, ino, off, in, func(k int) {
			if bar != nil {
				bar.Add(k)
			}
		})
		if bar != nil {
			bar.Clear()
		}
		if err != nil {
			if n.readErr {
				return fmt.Errorf("%s: %w", from, err)
			}
			return fmt.Errorf("%s: %s: write at %d: %w", image, path, off+n.bytes, describeConvert(err))
		}
		if err := s.Fsync(ino); err != nil {
			return fmt.Errorf("%s: %s: fsync: %w", image, path, err)
		}
		if err := s.CloseFile(ino); err != nil {
			return fmt.Errorf("%s: %s: close: %w", image, path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	out := writeJSON{Path: path, Inode: ino, Offset: off, Bytes: n.bytes, Seconds: time.Since(start).Seconds(), Stats: st}
	return output(out, func() error {
		_, err := fmt.Fprintf(stdout, "%s: %s written at %d, %d extents created, %d transactions in %d checkpoints, %s of log\n",
			path, humanBytes(uint64(n.bytes)), off, st.ExtentsCreated, st.Transactions, st.Checkpoints, humanBytes(uint64(st.LogBytes)))
		return err
	})
}

type copied struct {
	bytes   int64
	readErr bool // the error came from the input
}

// copyIn writes everything in reads into inode ino from off, in writes of
// writeChunk bytes; a reader goroutine fills the next buffer while the
// engine takes the last one.
func copyIn(s *convert.Session, ino uint64, off int64, r io.Reader, progress func(int)) (copied, error) {
	type chunk struct {
		b   []byte
		err error
	}
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, writeChunk)
	}
	full := make(chan chunk, nbuf+1) // never blocks: nbuf buffers and one error
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, b)
			if n > 0 {
				full <- chunk{b: b[:n]}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				full <- chunk{err: err}
				return
			}
		}
	}()
	var done copied
	for c := range full {
		if c.err != nil {
			done.readErr = true
			return done, c.err
		}
		// A short write near ENOSPC is written again from where it
		// stopped, as cp does: that write gets ENOSPC, or space the
		// flush before it freed.
		for b := c.b; len(b) > 0; {
			n, err := s.WriteAt(ino, off+done.bytes, b)
			done.bytes += int64(n)
			progress(n)
			if err != nil && (n == 0 || !errors.Is(err, ondisk.ErrNoSpace)) {
				return done, err
			}
			b = b[n:]
		}
		free <- c.b[:cap(c.b)]
	}
	return done, nil
}
