package dir_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/dir/dirtest"
	"github.com/xfsimg/xfsimg/ondisk"
)

// wantForm is the form the kernel gives each directory Standard makes.
var wantForm = map[string]string{
	dirtest.DirSF:      dir.FormShortform,
	dirtest.DirSFEmpty: dir.FormShortform,
	dirtest.DirSFTypes: dir.FormShortform,
	dirtest.DirSFLong:  dir.FormShortform,
	dirtest.DirBlock:   dir.FormBlock,
	dirtest.DirLeaf:    dir.FormLeaf,
	dirtest.DirNode:    dir.FormNode,
	dirtest.DirBtree:   dir.FormNode,
}

// Names that were created and removed again, or never existed; some share
// a hash with live names.
func absentNames(path string) []string {
	names := []string{"nope", "a-name-that-is-not-there", strings.Repeat("Q", 255), "reg ", "REG"}
	switch path {
	case dirtest.DirBlock:
		names = append(names, "b001", "b007", string(dirtest.Collisions(1)[3]))
	case dirtest.DirLeaf:
		names = append(names, "leaf-entry-0003", "leaf-entry-0010")
	case dirtest.DirNode:
		names = append(names, "n01000-", "n01001-z", "n00005-zzzzz")
		for i, c := range dirtest.Collisions(3) {
			if i%5 == 0 && i < 100 {
				names = append(names, string(c))
			}
		}
	case dirtest.DirBtree:
		names = append(names, "00000_"+strings.Repeat("x", 240), "00009_"+strings.Repeat("x", 240))
	}
	return names
}

// dtype is the d_type readdir reports for a directory entry file type.
var dtype = [...]uint8{0: 0, 1: 8, 2: 4, 3: 2, 4: 6, 5: 1, 6: 12, 7: 10}

// hideLast hides the LastMapper side of a mapper, so Form must work it
// out from the blocks.
type hideLast struct{ m dir.Mapper }

func (h hideLast) Map(fb uint64) (uint64, bool, error) { return h.m.Map(fb) }

func TestDirectories(t *testing.T) {
	for _, geo := range dirtest.Geometries {
		t.Run(geo.Name, func(t *testing.T) {
			t.Parallel()
			im := dirtest.Build(t, geo.Args, dirtest.Standard(dirBlkSize(geo.Args)))
			if im.G.DirBlkSize != dirBlkSize(geo.Args) {
				t.Fatalf("directory block size %d, the test assumed %d", im.G.DirBlkSize, dirBlkSize(geo.Args))
			}
			r := im.Open(t)
			for _, di := range im.Dirs {
				t.Run(di.Path, func(t *testing.T) { checkDir(t, im, r, di) })
			}
			if geo.Name == "4k" {
				t.Run("corrupt", func(t *testing.T) { checkCorruption(t, im) })
			}
		})
	}
}

func dirBlkSize(args []string) int {
	bs, ds := 4096, 0
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-b" {
			fmt.Sscanf(args[i+1], "size=%d", &bs)
		}
		if args[i] == "-n" {
			fmt.Sscanf(args[i+1], "size=%d", &ds)
		}
	}
	// mkfs's default directory block is 4 KiB, or the block size if larger.
	if ds != 0 {
		return ds
	}
	return max(bs, 4096)
}

func newDir(im *dirtest.Image, r *dirtest.FileReader, di *dirtest.DirInfo, m dir.Mapper) *dir.Dir {
	return dir.New(im.G, di.Ino, di.Format, di.Size, di.Local, m, r)
}

func checkDir(t *testing.T, im *dirtest.Image, r *dirtest.FileReader, di *dirtest.DirInfo) {
	m := &dirtest.Mapper{Extents: di.Extents}
	d := newDir(im, r, di, m)

	if f, err := d.FormErr(); err != nil || f != wantForm[di.Path] {
		t.Errorf("Form = %q, %v; want %q", f, err, wantForm[di.Path])
	}
	if f := newDir(im, r, di, hideLast{m}).Form(); f != wantForm[di.Path] {
		t.Errorf("Form without the extent list = %q, want %q", f, wantForm[di.Path])
	}
	if di.Path == dirtest.DirBtree && di.Format != 3 {
		t.Errorf("btree directory has fork format %d with %d extents; the test did not fragment it enough", di.Format, len(di.Extents))
	}
	if (di.Format == 1) != (wantForm[di.Path] == dir.FormShortform) {
		t.Errorf("fork format %d for a %s directory", di.Format, wantForm[di.Path])
	}

	ents, err := d.Entries()
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	if len(ents) != len(di.Readdir) {
		t.Errorf("Entries: %d entries, kernel readdir %d", len(ents), len(di.Readdir))
	}
	for i := 0; i < min(len(ents), len(di.Readdir)); i++ {
		k, e := di.Readdir[i], ents[i]
		if e.Name != k.Name || e.Ino != k.Ino || int(e.FType) >= len(dtype) || dtype[e.FType] != k.Type {
			t.Fatalf("entry %d: got %q ino %d ftype %d, kernel %q ino %d d_type %d", i, e.Name, e.Ino, e.FType, k.Name, k.Ino, k.Type)
		}
		// d_off of an entry is the cookie of the one after it.
		if i+1 < len(ents) && uint64(k.Off) != ents[i+1].Offset&0x7fffffff {
			t.Fatalf("entry %d %q: kernel d_off %d, next entry's cookie %d", i, k.Name, k.Off, ents[i+1].Offset)
		}
	}
	if len(ents) < 2 || ents[0].Name != "." || ents[1].Name != ".." || ents[0].Ino != di.Ino {
		t.Errorf("Entries do not start with . and ..")
	}

	for _, e := range ents {
		got, err := d.Lookup(e.Name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", e.Name, err)
		}
		if got != e {
			t.Fatalf("Lookup(%q) = %+v, listed as %+v", e.Name, got, e)
		}
	}
	for _, name := range absentNames(di.Path) {
		if got, err := d.Lookup(name); !errors.Is(err, ondisk.ErrNotFound) {
			t.Errorf("Lookup(%q) = %+v, %v; want ErrNotFound", name, got, err)
		}
	}
	if err := d.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
