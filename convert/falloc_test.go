package convert_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// TestLargeFallocExtentCount preallocates most of an empty file system in
// one call, through xfsimg and through the kernel, and compares the
// extents: as few as the AG layout allows (an extent cannot cross an AG),
// and the same as the kernel's, at the same places.
func TestLargeFallocExtentCount(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	cases := []struct {
		name string
		size int64
		mkfs []string
		len  string
	}{
		{"4k-4ag", 1 << 30, nil, "800m"},
		{"4k-16ag", 2 << 30, []string{"-d", "agcount=16"}, "1600m"},
		{"1k-4ag", 1 << 30, []string{"-b", "size=1024"}, "800m"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := oracle.Mkfs(t, c.size, c.mkfs...)
			mnt, umount := mountLoop(t, img)
			oracle.Run(t, "touch", filepath.Join(mnt, "f"))
			umount()
			kimg := filepath.Join(t.TempDir(), "k.img")
			oracle.Run(t, "cp", "--sparse=always", img, kimg)

			dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
			if err != nil {
				t.Fatal(err)
			}
			s, err := convert.Open(dev, convert.Options{})
			if err != nil {
				t.Fatal(err)
			}
			geo := s.Geometry()
			ino, err := s.Lookup("f")
			if err != nil {
				t.Fatal(err)
			}
			cmd, err := convert.ParseCommand("falloc 0 "+c.len, 0, int64(geo.BlockSize), int64(geo.SectSize))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Run(ino, cmd); err != nil {
				t.Fatal(err)
			}
			exts, err := s.Extents(ino)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			dev.Close()
			oracle.RequireRepairClean(t, img)

			kmnt, kumount := mountLoop(t, kimg)
			defer kumount()
			path := filepath.Join(kmnt, "f")
			oracle.Run(t, "xfs_io", "-c", "falloc 0 "+c.len, path)
			kern := kernelPositions(t, path, int64(geo.BlockSize))
			var ours []string
			for _, e := range exts {
				ours = append(ours, fmt.Sprintf("%d+%d@%d", e.StartOff, e.BlockCount, geo.FSBDaddr(e.StartBlock)))
			}
			// The fewest the AG layout allows: an extent ends at an AG's
			// end or the range's.
			var blocks uint64
			for _, e := range exts {
				blocks += e.BlockCount
			}
			minExt := (blocks + uint64(geo.AGBlocks) - 1) / uint64(geo.AGBlocks)
			t.Logf("falloc 0 %s: xfsimg %d extents, kernel %d (at least %d AGs' worth)", c.len, len(ours), len(kern), minExt)
			t.Logf("xfsimg %v", ours)
			t.Logf("kernel %v", kern)
			if len(ours) != len(kern) {
				t.Errorf("%d extents, the kernel made %d", len(ours), len(kern))
			}
			if strings.Join(ours, " ") != strings.Join(kern, " ") {
				t.Logf("placement differs from the kernel's")
			}
		})
	}
}

// TestFallocNoSpace: a preallocation larger than the free space fails with
// ENOSPC before anything changes (the image's bytes are the same), as one
// line from the command.
func TestFallocNoSpace(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, 512<<20)
	mnt, umount := mountLoop(t, img)
	oracle.Run(t, "xfs_io", "-f", "-c", "pwrite -q 0 1m", filepath.Join(mnt, "f"))
	umount()
	before := fileHash(t, img)
	for _, cmd := range []string{"falloc 0 600m", "falloc -k 1m 2g", "falloc 100m 490m"} {
		dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := convert.Open(dev, convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ino, err := s.Lookup("f")
		if err != nil {
			t.Fatal(err)
		}
		c, _ := convert.ParseCommand(cmd, 0, 4096, 512)
		err = s.Run(ino, c)
		if !errors.Is(err, ondisk.ErrNoSpace) {
			t.Errorf("%s: %v, want no space", cmd, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", cmd, err)
		}
		t.Logf("%s: %v", cmd, err)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		dev.Close()
		if after := fileHash(t, img); after != before {
			t.Fatalf("%s changed the image", cmd)
		}
	}
	// The kernel refuses the first as well.
	mnt, umount = mountLoop(t, img)
	defer umount()
	if out, err := oracle.RunErr("xfs_io", "-c", "falloc 0 600m", filepath.Join(mnt, "f")); err == nil && !strings.Contains(out, "No space") {
		t.Errorf("the kernel took falloc 0 600m: %s", out)
	}
}

func fileHash(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
