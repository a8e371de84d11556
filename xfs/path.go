package xfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/xfsimg/xfsimg/ondisk"
)

// maxSymlinkHops bounds symlink resolution as the kernel's MAXSYMLINKS.
const maxSymlinkHops = 40

// Lookup resolves a path inside the file system ("/" or "" is the root;
// a leading slash is optional). Symlinks in the middle of the path are
// followed; the last component is followed only when follow is set.
func (f *FS) Lookup(p string, follow bool) (*Inode, error) {
	hops := 0
	return f.lookupFrom(nil, p, follow, &hops)
}

func (f *FS) lookupFrom(start *Inode, p string, follow bool, hops *int) (*Inode, error) {
	cur := start
	if cur == nil || strings.HasPrefix(p, "/") {
		root, err := f.Root()
		if err != nil {
			return nil, err
		}
		cur = root
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, name := range parts {
		last := i == len(parts)-1
		if name == "" || name == "." {
			continue
		}
		if !cur.Core.IsDir() {
			return nil, &fs.PathError{Op: "lookup", Path: p, Err: errNotDir}
		}
		d, err := cur.Dir()
		if err != nil {
			return nil, err
		}
		ent, err := d.Lookup(name)
		if err != nil {
			if errors.Is(err, ondisk.ErrNotFound) {
				return nil, &fs.PathError{Op: "lookup", Path: p, Err: fs.ErrNotExist}
			}
			return nil, err
		}
		next, err := f.Inode(ent.Ino)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %q: %w", p, name, err)
		}
		if next.Core.IsSymlink() && (!last || follow) {
			*hops++
			if *hops > maxSymlinkHops {
				return nil, &fs.PathError{Op: "lookup", Path: p, Err: errLoop}
			}
			target, err := next.Readlink()
			if err != nil {
				return nil, err
			}
			if next, err = f.lookupFrom(cur, target, true, hops); err != nil {
				return nil, err
			}
		}
		cur = next
	}
	return cur, nil
}

var (
	errNotDir = errors.New("not a directory")
	errLoop   = errors.New("too many levels of symbolic links")
)

// Resolve accepts an inode number or a path: a plain decimal (or 0x hex)
// number is an inode number, anything else a path.
func (f *FS) Resolve(arg string, follow bool) (*Inode, error) {
	if ino, err := strconv.ParseUint(arg, 0, 64); err == nil && !strings.Contains(arg, "/") {
		return f.Inode(ino)
	}
	return f.Lookup(path.Clean("/"+arg), follow)
}
