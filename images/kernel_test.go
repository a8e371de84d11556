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
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// TestKernelAgreesWithManifest mounts every fixture read-only through a
// loop device and walks it again as mkfixtures.sh did: every path, stat
// field, content hash, symlink target, xattr, extent count and readdir
// entry (straight from getdents) must match the manifest, and nothing may
// be missing or extra. A manifest gone stale after regenerating an image
// fails here.
func TestKernelAgreesWithManifest(t *testing.T) {
	oracle.Require(t, oracle.Loop)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := load(t, name)
			dir, _ := oracle.Mount(t, sharedImage(t, name), "ro")
			var got []File
			walk(t, dir, "/", &got)
			if len(got) != len(m.Files) {
				t.Errorf("kernel shows %d paths, manifest lists %d", len(got), len(m.Files))
			}
			errs := 0
			for i := range min(len(got), len(m.Files)) {
				if d := diffFile(&got[i], &m.Files[i]); d != "" {
					t.Errorf("%s: %s", m.Files[i].Path, d)
					if errs++; errs == 20 {
						t.Fatal("too many differences; stopping")
					}
				}
			}
		})
	}
}

// walk visits rel and, for a directory, its entries in getdents order.
func walk(t *testing.T, mnt, rel string, out *[]File) {
	t.Helper()
	p := path.Join(mnt, rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	f := File{Path: rel, Inode: st.Ino, Mode: st.Mode, Nlink: uint32(st.Nlink), UID: st.Uid, GID: st.Gid,
		Size: st.Size, Blocks: st.Blocks}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f.Type = TypeFile
		f.SHA256 = hashFile(t, p)
		f.Extents = fiemapCount(t, p)
	case unix.S_IFDIR:
		f.Type = TypeDir
	case unix.S_IFLNK:
		f.Type = TypeSymlink
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
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
		f.Xattrs = xattrs(t, p)
	}
	*out = append(*out, f)
	if f.Type == TypeDir {
		ents := readdir(t, p)
		(*out)[len(*out)-1].Entries = ents
		for _, e := range ents {
			walk(t, mnt, path.Join(rel, e.Name), out)
		}
	}
}

// diffFile compares what the kernel shows with the manifest. Extents of
// non-regular files come from xfs_db, so they are not compared here.
func diffFile(got, want *File) string {
	var d []string
	add := func(ok bool, what string, g, w any) {
		if !ok {
			d = append(d, what+": kernel "+fmtAny(g)+", manifest "+fmtAny(w))
		}
	}
	add(got.Path == want.Path, "path", got.Path, want.Path)
	add(got.Type == want.Type, "type", got.Type, want.Type)
	add(got.Inode == want.Inode, "inode", got.Inode, want.Inode)
	add(got.Mode == want.Mode, "mode", got.Mode, want.Mode)
	add(got.Nlink == want.Nlink, "nlink", got.Nlink, want.Nlink)
	add(got.UID == want.UID && got.GID == want.GID, "owner", [2]uint32{got.UID, got.GID}, [2]uint32{want.UID, want.GID})
	add(got.Size == want.Size, "size", got.Size, want.Size)
	add(got.Blocks == want.Blocks, "blocks", got.Blocks, want.Blocks)
	add(got.SHA256 == want.SHA256, "sha256", got.SHA256, want.SHA256)
	add(got.Target == want.Target, "target", got.Target, want.Target)
	add(got.Major == want.Major && got.Minor == want.Minor, "rdev", [2]uint32{got.Major, got.Minor}, [2]uint32{want.Major, want.Minor})
	if got.Type == TypeFile {
		add(got.Extents == want.Extents, "extents", got.Extents, want.Extents)
	}
	add(fmtAny(got.Xattrs) == fmtAny(want.Xattrs), "xattrs", len(got.Xattrs), len(want.Xattrs))
	add(fmtAny(got.Entries) == fmtAny(want.Entries), "readdir", got.Entries, want.Entries)
	return strings.Join(d, "; ")
}

func fmtAny(v any) string {
	s := strings.TrimSpace(strings.ReplaceAll(fmt.Sprint(v), "\n", " "))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func hashFile(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fiemapCount asks FS_IOC_FIEMAP for the number of mapped extents (holes
// are not extents; unwritten ones and preallocation past EOF are), as
// mkfixtures.sh and filefrag do: fm_extent_count 0 returns just the count.
func fiemapCount(t *testing.T, p string) int {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const fsIocFiemap = 0xC020660B                     // _IOWR('f', 11, struct fiemap)
	var req [32]byte                                   // struct fiemap with no extent array
	binary.NativeEndian.PutUint64(req[8:], ^uint64(0)) // fm_length: to the end
	binary.NativeEndian.PutUint32(req[16:], 1)         // FIEMAP_FLAG_SYNC
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		t.Fatalf("FIEMAP %s: %v", p, e)
	}
	return int(binary.NativeEndian.Uint32(req[20:])) // fm_mapped_extents
}

// readdir returns a directory's entries in getdents order, with d_ino and
// d_type as the kernel reports them (from the XFS directory's ftype).
func readdir(t *testing.T, p string) []DirEntry {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	types := map[uint8]string{unix.DT_REG: TypeFile, unix.DT_DIR: TypeDir, unix.DT_LNK: TypeSymlink,
		unix.DT_FIFO: TypeFifo, unix.DT_CHR: TypeChardev, unix.DT_BLK: TypeBlockdev, unix.DT_SOCK: TypeSocket}
	var ents []DirEntry
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return ents
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
					ty = "dtype-" + fmtAny(b[18])
				}
				ents = append(ents, DirEntry{Name: name, Inode: binary.NativeEndian.Uint64(b), Type: ty})
			}
			off += reclen
		}
	}
}

func xattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	n, err := unix.Llistxattr(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return nil
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(p, buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		sz, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]byte, sz)
		if sz, err = unix.Lgetxattr(p, k, v); err != nil {
			t.Fatal(err)
		}
		out[k] = string(v[:sz])
	}
	return out
}
