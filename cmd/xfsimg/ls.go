package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

func parseIno(s string) (uint64, bool) {
	if strings.Contains(s, "/") {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 0, 64)
	return n, err == nil
}

var ftypeNames = map[uint8]string{
	ondisk.FTUnknown: "unknown", ondisk.FTRegFile: "file", ondisk.FTDir: "dir",
	ondisk.FTChrdev: "chardev", ondisk.FTBlkdev: "blockdev", ondisk.FTFifo: "fifo",
	ondisk.FTSock: "socket", ondisk.FTSymlink: "symlink",
}

type lsEntry struct {
	Name   string `json:"name"`
	Inode  uint64 `json:"inode"`
	Type   string `json:"type"`
	Mode   string `json:"mode,omitempty"`
	Nlink  uint32 `json:"nlink,omitempty"`
	UID    uint32 `json:"uid,omitempty"`
	GID    uint32 `json:"gid,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Mtime  string `json:"mtime,omitempty"`
	Target string `json:"target,omitempty"`
}

func newLsCmd() *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls IMAGE [PATH]",
		Short: "List a directory in the image, in the kernel's readdir order",
		Long: `ls lists the entries of a directory (default: the root) in the order the
kernel's readdir returns them, without "." and "..". -l adds the inode's mode,
link count, owner, size, modification time and symlink target. PATH may also
be an inode number. --json prints {"name","inode","type"} objects.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFS(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			return runLs(f, p, long)
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long listing")
	return cmd
}

func runLs(f *xfs.FS, p string, long bool) error {
	ip, err := f.Resolve(p, true)
	if err != nil {
		return err
	}
	if !ip.Core.IsDir() {
		return fmt.Errorf("%s: not a directory", p)
	}
	ents, err := ip.ReadDir()
	if err != nil {
		return err
	}
	out := make([]lsEntry, 0, len(ents))
	for _, e := range ents {
		le := lsEntry{Name: e.Name, Inode: e.Ino, Type: ftypeNames[e.FType]}
		if long || e.FType == ondisk.FTUnknown {
			child, err := f.Inode(e.Ino)
			if err != nil {
				return fmt.Errorf("%s: entry %q: %w", p, e.Name, err)
			}
			le.Type = ftypeNames[ondisk.ModeToFType(child.Core.Mode)]
			if long {
				c := child.Core
				le.Mode, le.Nlink, le.UID, le.GID, le.Size = lsMode(c.Mode), c.Nlink, c.UID, c.GID, c.Size
				le.Mtime = c.Mtime.Time().UTC().Format("2006-01-02 15:04:05")
				if c.IsSymlink() {
					if le.Target, err = child.Readlink(); err != nil {
						return err
					}
				}
			}
		}
		out = append(out, le)
	}
	return output(out, func() error {
		if !long {
			var b strings.Builder
			for _, e := range out {
				b.WriteString(e.Name)
				b.WriteByte('\n')
			}
			_, err := fmt.Fprint(stdout, b.String())
			return err
		}
		t := newTable()
		for _, e := range out {
			name := e.Name
			if e.Target != "" {
				name += " -> " + e.Target
			}
			fmt.Fprintf(t, "%d\t%s\t%d\t%d\t%d\t%d\t%s\t %s\n", e.Inode, e.Mode, e.Nlink, e.UID, e.GID, e.Size, e.Mtime, name)
		}
		return t.Flush()
	})
}

// lsMode renders a mode as ls -l does: "drwxr-xr-x", "lrwxrwxrwx",
// with s/S/t/T for the setuid, setgid and sticky bits.
func lsMode(mode uint16) string {
	b := []byte("?rwxrwxrwx")
	switch mode & 0o170000 {
	case 0o100000:
		b[0] = '-'
	case 0o040000:
		b[0] = 'd'
	case 0o120000:
		b[0] = 'l'
	case 0o020000:
		b[0] = 'c'
	case 0o060000:
		b[0] = 'b'
	case 0o010000:
		b[0] = 'p'
	case 0o140000:
		b[0] = 's'
	}
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	special := func(bit uint16, pos int, set, unset byte) {
		if mode&bit != 0 {
			if b[pos] == '-' {
				b[pos] = unset
			} else {
				b[pos] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}
