package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/units"
	"github.com/xfsimg/xfsimg/ondisk"
	"golang.org/x/term"
)

// engineFlags are the write engine's knobs, shared by convert and write.
type engineFlags struct {
	workers    int
	dirtyLimit string
}

func (e *engineFlags) add(c *cobra.Command, defaultLimit string) {
	c.Flags().IntVar(&e.workers, "workers", 0, "files written back in parallel (default 4)")
	help := "most file data held in memory before writeback, e.g. 64m (default a tenth of RAM, 64m to 1g)"
	if defaultLimit != "" {
		help = "most file data held in memory before writeback"
	}
	c.Flags().StringVar(&e.dirtyLimit, "dirty-limit", defaultLimit, help)
}

// options turns the flags into the engine's Options.
func (e *engineFlags) options() (convert.Options, error) {
	// Writers and writeback overlap, as on a mounted file system.
	opt := convert.Options{Background: true}
	if e.workers < 0 {
		return opt, fmt.Errorf("--workers %d: must be at least 1", e.workers)
	}
	opt.Workers = e.workers
	if e.dirtyLimit != "" {
		n, err := units.ParseSize(e.dirtyLimit, 0, 0)
		if err != nil || n <= 0 {
			return opt, fmt.Errorf("--dirty-limit %q: want a positive size such as 64m", e.dirtyLimit)
		}
		if n < 1<<20 {
			return opt, fmt.Errorf("--dirty-limit %s: must be at least 1m", e.dirtyLimit)
		}
		opt.DirtyLimit = n
	}
	return opt, nil
}

// writesBytes is how much the pwrite commands of a script write.
func writesBytes(cmds []convert.Command) int64 {
	var n int64
	for _, c := range cmds {
		if c.Name == "pwrite" {
			n += c.Len
		}
	}
	return n
}

// newBar returns a progress bar on stderr when it is a terminal, else nil
// (total -1: unknown). bytes: count bytes rather than steps.
func newBar(total int64, desc string, bytes bool) *progressbar.ProgressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	opts := []progressbar.Option{progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish()}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionSetWidth(30))
	}
	return progressbar.NewOptions64(total, opts...)
}

// describeLookup says what a user can do about a file the image lacks.
func describeLookup(err error) error {
	if strings.Contains(err.Error(), "no such file or directory") {
		return fmt.Errorf("%w (the file must exist in the image: creating files is not implemented yet)", err)
	}
	return err
}

// tuneRuntime tunes the Go runtime for the engine.
//
// The collector: transactions make short-lived garbage quickly while the
// live heap stays small: collect less often. But the live heap holds up to
// the dirty limit of file data, and four times that between collections
// would be the resident set: a soft memory limit of the dirty limit plus
// room for the rest (metadata, I/O buffers in flight) makes the collector
// run before that.
//
// The scheduler: data writes are blocking system calls, dozens in flight,
// and a goroutine in one keeps its P until the runtime's monitor notices
// (after 20 µs to 10 ms), so with one P per CPU the writeback loop waits
// for a P instead of submitting the next write. 57,000 scattered 4 KiB
// writes took 2.2 s with 2 Ps and 0.9 s with 16 on a 2-CPU machine
// (GOMAXPROCS=2 against the default, on the random pwrites of
// ./bench.sh write). A GOMAXPROCS the user set is left alone.
func tuneRuntime(opt convert.Options) {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 16))
	}
	gcMu.Lock()
	defer gcMu.Unlock()
	gcTuned = true
	debug.SetGCPercent(400)
	dl := opt.DirtyLimit
	if dl <= 0 {
		dl = convert.DefaultDirtyLimit()
	}
	debug.SetMemoryLimit(dl + max(48<<20, dl/4))
}

// engine is an image open for writing with a conversion session on it,
// what convert and write share.
type engine struct {
	image string
	dev   *ondisk.Device
	s     *convert.Session
}

// openEngine opens image for writing (refusing a mounted or locked one)
// and a session on it.
func openEngine(image string, opt convert.Options) (*engine, error) {
	tuneRuntime(opt)
	dev, err := ondisk.Open(image, ondisk.OpenOptions{
		Write: true, Buffered: gflags.buffered, NoWait: true,
		Warnf: func(format string, args ...any) { fmt.Fprintf(stderr, "xfsimg: "+format+"\n", args...) },
	})
	if err != nil {
		return nil, writeOpenError(image, err)
	}
	s, err := convert.Open(dev, opt)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	return &engine{image: image, dev: dev, s: s}, nil
}

// runEngine opens image, runs work on a session over it and closes it,
// also after a failure (closing writes back what was committed and leaves
// the log clean), and returns the session's statistics, the close's work
// included.
func runEngine(image string, opt convert.Options, work func(s *convert.Session) error) (convert.Stats, error) {
	e, err := openEngine(image, opt)
	if err != nil {
		return convert.Stats{}, err
	}
	err = work(e.s)
	if cerr := e.close(); err == nil {
		err = cerr
	}
	return e.s.Stats(), err
}

// close writes everything back, leaves the log clean and closes the
// device.
func (e *engine) close() error {
	err := e.s.Close()
	if err != nil {
		err = fmt.Errorf("%s: close log: %w", e.image, err)
	}
	if e.dev != nil {
		if cerr := e.dev.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%s: %w", e.image, cerr)
		}
		e.dev = nil
	}
	return err
}
