package convert

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/xfsimg/xfsimg/internal/units"
)

// Command is one xfs_io-style command of a script.
type Command struct {
	Line int    // line in the script (0 for -c commands)
	Text string // as written
	Name string // "falloc", "fpunch" or "truncate"
	Keep bool   // falloc -k
	Off  int64  // falloc, fpunch: offset; truncate: the size
	Len  int64  // falloc, fpunch
}

func (c Command) String() string {
	if c.Line > 0 {
		return fmt.Sprintf("line %d: %s", c.Line, c.Text)
	}
	return c.Text
}

// ParseCommand parses one command as xfs_io would, with its units (b and
// s are the file system's block and sector sizes). Blank lines and
// comments give a Command with an empty Name.
func ParseCommand(text string, line int, blockSize, sectSize int64) (Command, error) {
	c := Command{Line: line, Text: strings.TrimSpace(text)}
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
	var err error
	switch c.Name {
	case "falloc":
		for len(args) > 0 && strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
			for _, o := range args[0][1:] {
				if o != 'k' {
					return bad("option -%c is not supported (only -k)", o)
				}
				c.Keep = true
			}
			args = args[1:]
		}
		fallthrough
	case "fpunch":
		if len(args) != 2 {
			return bad("usage: %s OFFSET LENGTH", map[bool]string{true: "falloc [-k]", false: "fpunch"}[c.Name == "falloc"])
		}
		if c.Off, err = num("offset", args[0]); err != nil {
			return c, err
		}
		if c.Len, err = num("length", args[1]); err != nil {
			return c, err
		}
	case "truncate":
		if len(args) != 1 {
			return bad("usage: truncate SIZE")
		}
		if c.Off, err = num("truncate", args[0]); err != nil {
			return c, err
		}
	default:
		return bad("unknown command %q (falloc, fpunch and truncate are supported)", c.Name)
	}
	return c, nil
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

// Run applies one command to inode ino.
func (s *Session) Run(ino uint64, c Command) error {
	var err error
	switch c.Name {
	case "falloc":
		err = s.Falloc(ino, c.Off, c.Len, c.Keep)
	case "fpunch":
		err = s.Punch(ino, c.Off, c.Len)
	case "truncate":
		err = s.Truncate(ino, c.Off)
	case "":
		return nil
	default:
		err = fmt.Errorf("unknown command %q", c.Name)
	}
	if err != nil {
		return fmt.Errorf("%v: %w", c, err)
	}
	s.stats.Ops++
	return nil
}
