package images

import (
	"fmt"
	"strings"
	"testing"

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
			got, err := KernelWalk(dir)
			if err != nil {
				t.Fatal(err)
			}
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
