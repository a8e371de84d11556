package xfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"time"

	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/ondisk"
)

// The io/fs view of an image: names are slash-separated paths relative to
// the root, as fs.ValidPath requires. Symlinks are not followed for the
// last component (Stat reports the link itself), as with os.Lstat.

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
)

func (f *FS) lookupFS(op, name string) (*Inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	ip, err := f.Lookup(name, false)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &fs.PathError{Op: op, Path: name, Err: pe.Err}
		}
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return ip, nil
}

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	ip, err := f.lookupFS("open", name)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{name: path.Base(name), ip: ip}
	switch {
	case ip.Core.IsDir():
		return &dirFile{info: info}, nil
	case ip.Core.IsReg():
		r, err := ip.OpenFile()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &regFile{info: info, r: io.NewSectionReader(r, 0, r.Size())}, nil
	default:
		return &otherFile{info: info}, nil
	}
}

// Stat implements fs.StatFS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	ip, err := f.lookupFS("stat", name)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), ip: ip}, nil
}

// ReadDir implements fs.ReadDirFS: entries sorted by name, as io/fs asks.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	ip, err := f.lookupFS("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := f.dirEntries(ip)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	sortDirEntries(ents)
	return ents, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	ip, err := f.lookupFS("readfile", name)
	if err != nil {
		return nil, err
	}
	if !ip.Core.IsReg() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("not a regular file")}
	}
	r, err := ip.OpenFile()
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	if r.Size() > 1<<40 {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("file too large to read into memory")}
	}
	buf := make([]byte, r.Size())
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return buf, nil
}

func (f *FS) dirEntries(ip *Inode) ([]fs.DirEntry, error) {
	ents, err := ip.ReadDir()
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, &dirEntry{f: f, e: e})
	}
	return out, nil
}

func sortDirEntries(ents []fs.DirEntry) {
	slices.SortFunc(ents, func(a, b fs.DirEntry) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
}

// fileInfo is the fs.FileInfo of an inode.
type fileInfo struct {
	name string
	ip   *Inode
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.ip.Core.Size }
func (i *fileInfo) Mode() fs.FileMode  { return i.ip.Core.GoMode() }
func (i *fileInfo) ModTime() time.Time { return i.ip.Core.Mtime.Time() }
func (i *fileInfo) IsDir() bool        { return i.ip.Core.IsDir() }

// Sys returns the *Inode.
func (i *fileInfo) Sys() any { return i.ip }

// dirEntry is an fs.DirEntry; Info reads the inode on demand.
type dirEntry struct {
	f *FS
	e dir.Entry
}

func (d *dirEntry) Name() string { return d.e.Name }
func (d *dirEntry) IsDir() bool {
	return d.e.FType == ondisk.FTDir || (d.e.FType == ondisk.FTUnknown && d.typeFromInode().IsDir())
}
func (d *dirEntry) Type() fs.FileMode {
	if t, ok := ftypeMode[d.e.FType]; ok && d.e.FType != ondisk.FTUnknown {
		return t
	}
	return d.typeFromInode()
}

func (d *dirEntry) typeFromInode() fs.FileMode {
	ip, err := d.f.Inode(d.e.Ino)
	if err != nil {
		return fs.ModeIrregular
	}
	return ip.Core.GoMode().Type()
}

func (d *dirEntry) Info() (fs.FileInfo, error) {
	ip, err := d.f.Inode(d.e.Ino)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: d.e.Name, ip: ip}, nil
}

var ftypeMode = map[uint8]fs.FileMode{
	ondisk.FTRegFile: 0,
	ondisk.FTDir:     fs.ModeDir,
	ondisk.FTChrdev:  fs.ModeDevice | fs.ModeCharDevice,
	ondisk.FTBlkdev:  fs.ModeDevice,
	ondisk.FTFifo:    fs.ModeNamedPipe,
	ondisk.FTSock:    fs.ModeSocket,
	ondisk.FTSymlink: fs.ModeSymlink,
}

// regFile is an open regular file.
type regFile struct {
	info *fileInfo
	r    *io.SectionReader
}

func (f *regFile) Stat() (fs.FileInfo, error)                { return f.info, nil }
func (f *regFile) Read(p []byte) (int, error)                { return f.r.Read(p) }
func (f *regFile) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }
func (f *regFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *regFile) Close() error                              { return nil }

// dirFile is an open directory; ReadDir returns entries in readdir order.
type dirFile struct {
	info *fileInfo
	ents []fs.DirEntry
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.info.ip.fs.dirEntries(d.info.ip)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n]
	d.ents = d.ents[n:]
	return out, nil
}

// otherFile is a symlink, device, fifo or socket: it can be stat'ed only.
type otherFile struct{ info *fileInfo }

func (o *otherFile) Stat() (fs.FileInfo, error) { return o.info, nil }
func (o *otherFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: o.info.name, Err: errors.New("not a regular file")}
}
func (o *otherFile) Close() error { return nil }
