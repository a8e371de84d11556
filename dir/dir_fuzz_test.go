package dir_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/dir/dirtest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// fuzzPopulate makes small directories of each form, so that one fuzz
// input (a whole directory read) stays cheap.
func fuzzPopulate(t testing.TB, root string) []string {
	mk := func(p string) {
		if err := os.Mkdir(root+"/"+p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	touch := func(p string) {
		f, err := os.Create(root + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	rm := func(p string) {
		if err := os.Remove(root + "/" + p); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[string]int{"fz_sf": 3, "fz_block": 40, "fz_leaf": 200, "fz_node": 700}
	for _, d := range []string{"fz_sf", "fz_block", "fz_leaf", "fz_node"} {
		mk(d)
		for i := range dirs[d] {
			touch(fmt.Sprintf("%s/e%04d", d, i))
		}
		for i := 3; i < dirs[d]; i += 7 {
			rm(fmt.Sprintf("%s/e%04d", d, i))
		}
	}
	for _, c := range dirtest.Collisions(2) {
		touch("fz_node/" + string(c))
	}
	return []string{"fz_sf", "fz_block", "fz_leaf", "fz_node"}
}

type fuzzDir struct {
	di     *dirtest.DirInfo
	blocks []dirtest.RawBlock
	names  []string
}

// FuzzDirRead replaces one block of a real directory (or the whole
// shortform fork) with fuzzed bytes, stamps a valid CRC on it, and reads
// the directory every way there is. Nothing may panic or run away; the
// node walks are bounded by depth, levels and visited sets.
func FuzzDirRead(f *testing.F) {
	oracle.Require(f, oracle.Xfsprogs, oracle.Loop)
	im := dirtest.Build(f, nil, fuzzPopulate)
	var dirs []fuzzDir
	for _, di := range im.Dirs {
		fd := fuzzDir{di: di}
		if di.Format != 1 {
			fd.blocks = im.Blocks(f, im.Open(f), di)
		}
		for i, e := range di.Readdir {
			if i%17 == 0 || i < 3 {
				fd.names = append(fd.names, e.Name)
			}
		}
		// Absent: "nope", and in all but fz_node an 8-byte colliding name.
		fd.names = append(fd.names, "nope")
		if di.Path != "fz_node" {
			fd.names = append(fd.names, string(dirtest.Collisions(2)[5]))
		}
		dirs = append(dirs, fd)
	}
	mem := im.Load(f, im.Dirs...)
	os.Remove(im.Path) // everything is in memory; fuzz workers never clean up
	g := im.G
	for w, fd := range dirs {
		if fd.di.Format == 1 {
			f.Add(uint8(w), uint16(0), bytes.Clone(fd.di.Local[:fd.di.Size]))
		}
		for i, rb := range fd.blocks {
			f.Add(uint8(w), uint16(i), rb.Buf)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, idx uint16, data []byte) {
		watchdog := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("FuzzDirRead: input ran over 20s: dir %d block %d", which, idx)) })
		defer watchdog.Stop()
		fd := dirs[int(which)%len(dirs)]
		di := *fd.di
		r := &dirtest.MemReader{BlockSize: mem.BlockSize, Blocks: mem.Blocks, Overlay: map[uint64][]byte{}}
		var unchanged bool
		if di.Format == 1 {
			di.Local, di.Size = data, int64(len(data))
			unchanged = bytes.Equal(data, fd.di.Local[:fd.di.Size])
		} else {
			rb := fd.blocks[int(idx)%len(fd.blocks)]
			blk := make([]byte, len(rb.Buf))
			copy(blk, data)
			r.Replace(g, &di, rb.DA, blk)
			unchanged = bytes.Equal(blk, rb.Buf)
		}
		d := dir.New(g, di.Ino, di.Format, di.Size, di.Local, &dirtest.Mapper{Extents: di.Extents}, r)
		_ = d.Form()
		_, err := d.Entries()
		if unchanged && err != nil {
			t.Fatalf("Entries of the unchanged directory: %v", err)
		}
		for _, n := range fd.names {
			e, err := d.Lookup(n)
			switch {
			case err == nil && e.Name != n:
				t.Fatalf("Lookup(%q) returned %q", n, e.Name)
			case unchanged && err != nil && (n == "nope" || len(n) == 8) != errors.Is(err, ondisk.ErrNotFound):
				t.Fatalf("Lookup(%q) in the unchanged directory: %v", n, err)
			}
		}
		if err := d.Verify(); unchanged && err != nil {
			t.Fatalf("Verify of the unchanged directory: %v", err)
		}
	})
}
