package xfs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// TestReadlinkRemote reads remote symlinks the kernel wrote, including
// targets that need two blocks of 1 KiB: the kernel puts them in one
// extent with a single header for the whole buffer.
func TestReadlinkRemote(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, bs := range []string{"1024", "4096"} {
		t.Run(bs, func(t *testing.T) {
			img := oracle.Mkfs(t, 400<<20, "-b", "size="+bs)
			mnt, _ := oracle.Mount(t, img)
			targets := map[string]string{}
			for _, n := range []int{200, 967, 968, 969, 1020, 1023} {
				name := filepath.Join(mnt, "l"+strings.Repeat("x", n%7))
				name += "-" + strings.Repeat("y", 1) + "-" + string(rune('a'+n%26))
				target := strings.Repeat("t", n)
				if err := os.Symlink(target, name); err != nil {
					t.Fatal(err)
				}
				targets["/"+filepath.Base(name)] = target
			}
			oracle.Unmount(t, mnt)
			f, err := xfs.Open(img, ondisk.OpenOptions{Buffered: true})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for p, want := range targets {
				ip, err := f.Resolve(p, false)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ip.Readlink()
				if err != nil || got != want {
					t.Errorf("%s: %d bytes, %v; want %d bytes", p, len(got), err, len(want))
				}
			}
		})
	}
}
