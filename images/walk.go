package images

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KernelWalk describes the file system mounted at mnt as the kernel shows
// it: every path in pre-order, directories in getdents order, with stat
// fields, content hashes, symlink targets, xattrs and FIEMAP extent counts.
// It is how manifests are checked, and how tests describe images they make
// themselves.
func KernelWalk(mnt string) ([]File, error) {
	var out []File
	err := walk(mnt, "/", &out)
	return out, err
}

// walk visits rel and, for a directory, its entries in getdents order.
func walk(mnt, rel string, out *[]File) error {
	p := path.Join(mnt, rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("lstat %s: %w", p, err)
	}
	f := File{Path: rel, Inode: st.Ino, Mode: st.Mode, Nlink: uint32(st.Nlink), UID: st.Uid, GID: st.Gid,
		Size: st.Size, Blocks: st.Blocks}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f.Type = TypeFile
		var err error
		if f.SHA256, err = hashFile(p); err != nil {
			return err
		}
		if f.Extents, err = fiemapCount(p); err != nil {
			return err
		}
	case unix.S_IFDIR:
		f.Type = TypeDir
	case unix.S_IFLNK:
		f.Type = TypeSymlink
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		f.Target = target
	case unix.S_IFIFO:
		f.Type = TypeFifo
	case unix.S_IFCHR:
		f.Type = TypeChardev
	case unix.S_IFBLK:
		f.Type = TypeBlockdev
	case unix.S_IFSOCK:
		f.Type = TypeSocket
	}
	if f.Type == TypeChardev || f.Type == TypeBlockdev {
		f.Major, f.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	if f.Type == TypeFile || f.Type == TypeDir {
		var err error
		if f.Xattrs, err = xattrs(p); err != nil {
			return err
		}
	}
	*out = append(*out, f)
	if f.Type == TypeDir {
		ents, err := readdir(p)
		if err != nil {
			return err
		}
		(*out)[len(*out)-1].Entries = ents
		for _, e := range ents {
			if err := walk(mnt, path.Join(rel, e.Name), out); err != nil {
				return err
			}
		}
	}
	return nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fiemapCount asks FS_IOC_FIEMAP for the number of mapped extents (holes
// are not extents; unwritten ones and preallocation past EOF are), as
// mkfixtures.sh and filefrag do: fm_extent_count 0 returns just the count.
func fiemapCount(p string) (int, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const fsIocFiemap = 0xC020660B                     // _IOWR('f', 11, struct fiemap)
	var req [32]byte                                   // struct fiemap with no extent array
	binary.NativeEndian.PutUint64(req[8:], ^uint64(0)) // fm_length: to the end
	binary.NativeEndian.PutUint32(req[16:], 1)         // FIEMAP_FLAG_SYNC
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		return 0, fmt.Errorf("FIEMAP %s: %w", p, e)
	}
	return int(binary.NativeEndian.Uint32(req[20:])), nil // fm_mapped_extents
}

// readdir returns a directory's entries in getdents order, with d_ino and
// d_type as the kernel reports them (from the XFS directory's ftype).
func readdir(p string) ([]DirEntry, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	types := map[uint8]string{unix.DT_REG: TypeFile, unix.DT_DIR: TypeDir, unix.DT_LNK: TypeSymlink,
		unix.DT_FIFO: TypeFifo, unix.DT_CHR: TypeChardev, unix.DT_BLK: TypeBlockdev, unix.DT_SOCK: TypeSocket}
	var ents []DirEntry
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("getdents %s: %w", p, err)
		}
		if n == 0 {
			return ents, nil
		}
		// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
		// d_type u8, d_name NUL-terminated.
		for off := 0; off < n; {
			b := buf[off:n]
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			name := string(b[19:reclen])
			name = name[:strings.IndexByte(name, 0)]
			if name != "." && name != ".." {
				ty, ok := types[b[18]]
				if !ok {
					ty = fmt.Sprintf("dtype-%d", b[18])
				}
				ents = append(ents, DirEntry{Name: name, Inode: binary.NativeEndian.Uint64(b), Type: ty})
			}
			off += reclen
		}
	}
}

func xattrs(p string) (map[string]string, error) {
	n, err := unix.Llistxattr(p, nil)
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	out := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		sz, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, k, err)
		}
		v := make([]byte, sz)
		if sz, err = unix.Lgetxattr(p, k, v); err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, k, err)
		}
		out[k] = string(v[:sz])
	}
	return out, nil
}
