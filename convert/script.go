package convert

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/xfsimg/xfsimg/ondisk"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/xfsimg/xfsimg/internal/units"
)

// Command is one xfs_io-style command of a script.
type Command struct {
	Line int    // line in the script (0 for -c commands)
	Text string // as written
	Name string // falloc fpunch fzero truncate pwrite fsync fdatasync sync_range sync open
	Keep bool   // falloc -k, fzero -k
	Off  int64  // the offset; truncate: the size
	Len  int64
	// pwrite
	Seed   byte   // -S: the fill byte (xfs_io memsets its buffer with the seed)
	BSize  int64  // -b: bytes per write(2)
	InFile string // -i: the data comes from this host file
	Skip   int64  // -s: from this offset in it
	Sync   string // -w: "fdatasync", -W: "fsync" after the writes
	// sync_range: -a, -b, -w (informational: writeback here always waits)
	Flags string
	Path  string // open
}

func (c Command) String() string {
	if c.Line > 0 {
		return fmt.Sprintf("line %d: %s", c.Line, c.Text)
	}
	return c.Text
}

// Commands lists what ParseCommand knows, for messages.
const Commands = "pwrite, fsync, fdatasync, sync_range, sync, falloc, fpunch, fzero, truncate and open"

// ParseCommand parses one command as xfs_io would, with its units (b and
// s are the file system's block and sector sizes). Blank lines and
// comments give a Command with an empty Name.
func ParseCommand(text string, line int, blockSize, sectSize int64) (Command, error) {
	c := Command{Line: line, Text: strings.TrimSpace(text), Seed: 0xcd, BSize: 4096}
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	f := strings.Fields(text)
	if len(f) == 0 {
		return c, nil
	}
	c.Name = f[0]
	args := f[1:]
	bad := func(format string, a ...any) (Command, error) {
		return c, fmt.Errorf("%v: %s", c, fmt.Sprintf(format, a...))
	}
	num := func(what, s string) (int64, error) {
		v, err := units.ParseSize(s, blockSize, sectSize)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%v: non-numeric %s argument -- %s", c, what, s)
		}
		return v, nil
	}
	// opts splits getopt-style options off args: flags in noArg, options
	// taking a value in withArg ("-S 5" or "-S5").
	opts := func(noArg, withArg string) (map[byte]string, error) {
		got := map[byte]string{}
		for len(args) > 0 && strings.HasPrefix(args[0], "-") && len(args[0]) > 1 && !isNumber(args[0]) {
			a := args[0][1:]
			args = args[1:]
			for i := 0; i < len(a); i++ {
				o := a[i]
				switch {
				case strings.IndexByte(noArg, o) >= 0:
					got[o] = ""
				case strings.IndexByte(withArg, o) >= 0:
					v := a[i+1:]
					if v == "" {
						if len(args) == 0 {
							return nil, fmt.Errorf("%v: option -%c needs an argument", c, o)
						}
						v, args = args[0], args[1:]
					}
					got[o] = v
					i = len(a)
				default:
					return nil, fmt.Errorf("%v: option -%c is not supported", c, o)
				}
			}
		}
		return got, nil
	}
	offLen := func(usage string) (Command, error) {
		if len(args) != 2 {
			return bad("usage: %s", usage)
		}
		var err error
		if c.Off, err = num("offset", args[0]); err != nil {
			return c, err
		}
		if c.Len, err = num("length", args[1]); err != nil {
			return c, err
		}
		return c, nil
	}
	switch c.Name {
	case "falloc", "fzero":
		o, err := opts("k", "")
		if err != nil {
			return c, err
		}
		_, c.Keep = o['k']
		return offLen(c.Name + " [-k] OFFSET LENGTH")
	case "fpunch":
		if _, err := opts("", ""); err != nil {
			return c, err
		}
		return offLen("fpunch OFFSET LENGTH")
	case "truncate":
		if len(args) != 1 {
			return bad("usage: truncate SIZE")
		}
		var err error
		if c.Off, err = num("truncate", args[0]); err != nil {
			return c, err
		}
	case "pwrite":
		o, err := opts("qdwW", "Sbis")
		if err != nil {
			return c, err
		}
		if v, ok := o['S']; ok {
			seed, err := strconv.ParseUint(v, 0, 32)
			if err != nil {
				return bad("non-numeric seed -- %s", v)
			}
			c.Seed = byte(seed)
		}
		if v, ok := o['b']; ok {
			if c.BSize, err = num("bsize", v); err != nil || c.BSize == 0 {
				return bad("non-numeric bsize -- %s", v)
			}
			// The buffer is allocated whole, as xfs_io's is.
			if c.BSize > maxBSize {
				return bad("bsize %d is larger than %d", c.BSize, maxBSize)
			}
		}
		c.InFile = o['i']
		if v, ok := o['s']; ok {
			if c.Skip, err = num("skip", v); err != nil {
				return c, err
			}
		}
		if _, ok := o['w']; ok {
			c.Sync = "fdatasync"
		}
		if _, ok := o['W']; ok {
			c.Sync = "fsync"
		}
		return offLen("pwrite [-S seed] [-b bsize] [-i file [-s skip]] [-wW] OFFSET LENGTH")
	case "sync_range":
		o, err := opts("abw", "")
		if err != nil {
			return c, err
		}
		for k := range o {
			c.Flags += string(k)
		}
		return offLen("sync_range [-a|-b|-w] OFFSET LENGTH")
	case "fsync", "fdatasync", "sync":
		if len(args) != 0 {
			return bad("usage: %s", c.Name)
		}
	case "open":
		if len(args) != 1 {
			return bad("usage: open PATH (the file must exist: creating files is not implemented yet)")
		}
		c.Path = args[0]
	default:
		return bad("unknown command %q (%s are supported)", c.Name, Commands)
	}
	return c, nil
}

// maxBSize bounds pwrite -b: one write(2) buffer.
const maxBSize = 1 << 30

func isNumber(s string) bool {
	_, err := strconv.ParseInt(s, 0, 64)
	return err == nil
}

// ParseScript reads one command per line; '#' starts a comment.
func ParseScript(r io.Reader, blockSize, sectSize int64) ([]Command, error) {
	var out []Command
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		c, err := ParseCommand(sc.Text(), n, blockSize, sectSize)
		if err != nil {
			return nil, err
		}
		if c.Name != "" {
			out = append(out, c)
		}
	}
	return out, sc.Err()
}

// Run applies one command to inode ino. open is for a Runner.
func (s *Session) Run(ino uint64, c Command) error {
	var err error
	switch c.Name {
	case "falloc":
		err = s.Falloc(ino, c.Off, c.Len, c.Keep)
	case "fpunch":
		err = s.Punch(ino, c.Off, c.Len)
	case "fzero":
		err = s.Fzero(ino, c.Off, c.Len, c.Keep)
	case "truncate":
		err = s.Truncate(ino, c.Off)
	case "pwrite":
		err = s.pwrite(ino, c)
	case "fsync", "fdatasync":
		err = s.Fsync(ino)
	case "sync_range":
		err = s.SyncRange(ino, c.Off, c.Len)
	case "sync":
		err = s.Sync()
	case "":
		return nil
	default:
		err = fmt.Errorf("unknown command %q", c.Name)
	}
	if err != nil {
		return fmt.Errorf("%v: %w", c, err)
	}
	s.addStats(func(st *Stats) { st.Ops++ })
	return nil
}

// pwrite is xfs_io's pwrite: LEN bytes from OFF in write(2)s of BSize
// bytes, each filled with the seed byte or read from the input file (the
// writes stop where it ends).
func (s *Session) pwrite(ino uint64, c Command) error {
	var in *os.File
	if c.InFile != "" {
		var err error
		if in, err = os.Open(c.InFile); err != nil {
			return err
		}
		defer in.Close()
	}
	buf := make([]byte, min(c.BSize, max(c.Len, 1)))
	if in == nil && len(buf) > 0 {
		// Doubling copies: a byte loop over every write's buffer was a
		// sixth of a run of 100,000 small pwrites.
		buf[0] = c.Seed
		for n := 1; n < len(buf); n *= 2 {
			copy(buf[n:], buf[:n])
		}
	}
	for done := int64(0); done < c.Len; {
		n := min(int64(len(buf)), c.Len-done)
		if in != nil {
			got, err := in.ReadAt(buf[:n], c.Skip+done)
			if got == 0 && err != nil {
				if err == io.EOF {
					break
				}
				return err
			}
			n = int64(got)
		}
		w, err := s.WriteAt(ino, c.Off+done, buf[:n])
		if err != nil && w > 0 && errors.Is(err, ondisk.ErrNoSpace) {
			// A short write(2): xfs_io's pwrite stops there,
			// silently.
			break
		}
		if err != nil {
			return err
		}
		done += n
	}
	if c.Sync != "" {
		return s.Fsync(ino)
	}
	return nil
}

// Runner runs a script that may switch files with open, closing each file
// it leaves as its last close would.
type Runner struct {
	S    *Session
	Path string
	Ino  uint64
}

// Run runs one command on the current file.
func (r *Runner) Run(c Command) error {
	if c.Name != "open" {
		return r.S.Run(r.Ino, c)
	}
	ino, err := r.S.Lookup(c.Path)
	if err != nil {
		return fmt.Errorf("%v: %w", c, err)
	}
	if r.Ino != 0 && ino != r.Ino {
		if err := r.S.CloseFile(r.Ino); err != nil {
			return fmt.Errorf("%v: close %s: %w", c, r.Path, err)
		}
	}
	r.Path, r.Ino = c.Path, ino
	return nil
}
