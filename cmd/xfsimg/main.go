// Command xfsimg inspects XFS file-system images and block devices, and
// writes into them without mounting them.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/xfsimg/xfsimg/ondisk"
)

// exitError carries a specific exit status (check uses 1 and 2).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	deferFirstGC()
	// Tables write cell by cell: buffer standard output so that a long
	// listing is a few large writes, not one system call per cell.
	w := bufio.NewWriterSize(os.Stdout, 256<<10)
	stdout = w
	stop := startProfile()
	code := run(os.Args[1:])
	stop()
	if err := w.Flush(); err != nil && code == 0 {
		fmt.Fprintf(stderr, "xfsimg: write output: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// run executes the command line and turns every failure into one line on
// stderr and a non-zero status. A panic is a bug, but even then the user
// gets one line rather than a stack trace (XFSIMG_DEBUG=1 shows it).
func run(args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if os.Getenv("XFSIMG_DEBUG") == "1" {
				panic(r)
			}
			fmt.Fprintf(stderr, "xfsimg: internal error: %v (please report this)\n", r)
			code = 2
		}
	}()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "xfsimg: %s\n", oneLine(describe(err)))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// describe adds advice to errors a user can act on.
func describe(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist) && !strings.Contains(msg, "no such file"):
		return msg + ": no such file or directory"
	case errors.Is(err, ondisk.ErrCorrupt) && !strings.Contains(msg, "xfs_repair"):
		return msg + " (the image is damaged; xfs_repair may fix it)"
	}
	return msg
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
