package xfs

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/ondisk"
)

func openFixture(t *testing.T, name string) (*FS, *images.Manifest) {
	t.Helper()
	m, err := images.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(images.Extract(t, name), ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, m
}

// TestFSConformance runs the standard library's io/fs conformance checks.
func TestFSConformance(t *testing.T) {
	f, m := openFixture(t, "sample")
	var expect []string
	for _, file := range m.Files {
		if file.Path != "/" {
			expect = append(expect, strings.TrimPrefix(file.Path, "/"))
		}
	}
	if err := fstest.TestFS(f, expect...); err != nil {
		t.Fatal(err)
	}
}

// TestWalkDirMatchesKernel walks every fixture with fs.WalkDir and checks
// paths, types, sizes and contents against the kernel's manifest.
func TestWalkDirMatchesKernel(t *testing.T) {
	for _, name := range []string{"sample", "files-4k", "multi-ag"} {
		t.Run(name, func(t *testing.T) {
			f, m := openFixture(t, name)
			seen := map[string]bool{}
			err := fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				mp := "/" + p
				if p == "." {
					mp = "/"
				}
				want := m.Lookup(mp)
				if want == nil {
					t.Errorf("%s: not in the manifest", mp)
					return nil
				}
				seen[mp] = true
				info, err := d.Info()
				if err != nil {
					return err
				}
				if info.Size() != want.Size || info.Mode().Type() != typeMode(want.Type) {
					t.Errorf("%s: size %d mode %v; kernel %d %s", mp, info.Size(), info.Mode(), want.Size, want.Type)
				}
				if want.Type == images.TypeFile && want.Size < 64<<20 {
					data, err := fs.ReadFile(f, p)
					if err != nil {
						return err
					}
					sum := sha256.Sum256(data)
					if hex.EncodeToString(sum[:]) != want.SHA256 {
						t.Errorf("%s: contents differ from the kernel's", mp)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, file := range m.Files {
				if !seen[file.Path] {
					t.Errorf("%s: in the manifest but not walked", file.Path)
				}
			}
		})
	}
}

func typeMode(t string) fs.FileMode {
	switch t {
	case images.TypeDir:
		return fs.ModeDir
	case images.TypeSymlink:
		return fs.ModeSymlink
	case images.TypeFifo:
		return fs.ModeNamedPipe
	case images.TypeChardev:
		return fs.ModeDevice | fs.ModeCharDevice
	case images.TypeBlockdev:
		return fs.ModeDevice
	case images.TypeSocket:
		return fs.ModeSocket
	}
	return 0
}
