package ondisk_test

import (
	"bytes"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// synthGeometry is a 4 KiB-block, 4-AG geometry for tests that have no
// image: enough for inode-number validity and directory block sizes.
func synthGeometry() *ondisk.Geometry {
	return &ondisk.Geometry{
		BlockSize: 4096, BlockLog: 12, InodeSize: 512, InodeLog: 9, InoPerBlock: 8, InoPBLog: 3,
		AGBlocks: 1 << 20, AGCount: 4, AGBlkLog: 20, DBlocks: 4 << 20, AGInoLog: 23,
		DirBlkSize: 4096, DirBlkFSBs: 1, HasFType: true,
	}
}

// TestDirSFI8 builds 8-byte-inode forks by hand (the test images cannot
// get an inode number above 2^32) and checks the exact bytes.
func TestDirSFI8(t *testing.T) {
	s := &ondisk.DirSF{
		Parent: 1<<33 | 5,
		Entries: []ondisk.DirSFEntry{
			{Name: []byte("a"), Offset: 0x60, Ino: 130, FType: 1},
			{Name: []byte("big"), Offset: 0x70, Ino: 1<<35 | 7, FType: 2},
		},
	}
	want := []byte{
		2, 2, 0, 0, 0, 2, 0, 0, 0, 5, // count, i8count (parent and "big"), parent
		1, 0, 0x60, 'a', 1, 0, 0, 0, 0, 0, 0, 0, 130,
		3, 0, 0x70, 'b', 'i', 'g', 2, 0, 0, 0, 8, 0, 0, 0, 7,
	}
	if n := s.Size(true); n != len(want) {
		t.Fatalf("Size = %d, want %d", n, len(want))
	}
	fork := make([]byte, 64)
	n, err := s.Encode(fork, true)
	if err != nil || n != len(want) || !bytes.Equal(fork[:n], want) {
		t.Fatalf("Encode = %d, %v\n% x\nwant\n% x", n, err, fork[:n], want)
	}
	if !s.I8 {
		t.Error("Encode did not set I8")
	}
	d, err := ondisk.DecodeDirSF(want, true)
	if err != nil {
		t.Fatal(err)
	}
	if !d.I8 || d.Parent != s.Parent || len(d.Entries) != 2 || d.Entries[1].Ino != 1<<35|7 || string(d.Entries[1].Name) != "big" {
		t.Fatalf("decoded %+v", d)
	}
	if f, _ := d.Fields(true).Get("hdr.parent.i8"); f.Text != "8589934597" {
		t.Errorf("Fields parent = %+v", f)
	}
	if f, _ := d.Fields(true).Get("list[1].inumber.i8"); f.Text != "34359738375" {
		t.Errorf("Fields list[1].inumber = %+v", f)
	}

	// Only an entry needs 8 bytes: i8count 1, still every number is 8 bytes.
	s.Parent = 128
	n, err = s.Encode(fork, true)
	if err != nil || fork[1] != 1 || n != len(want) {
		t.Fatalf("entry-only i8: n %d err %v i8count %d", n, err, fork[1])
	}
	// Nothing needs 8 bytes: the 4-byte layout, without ftype.
	s.Entries[1].Ino = 131
	s.Entries[0].FType, s.Entries[1].FType = 0, 0
	n, err = s.Encode(fork, false)
	want4 := []byte{2, 0, 0, 0, 0, 128, 1, 0, 0x60, 'a', 0, 0, 0, 130, 3, 0, 0x70, 'b', 'i', 'g', 0, 0, 0, 131}
	if err != nil || !bytes.Equal(fork[:n], want4) || s.I8 {
		t.Fatalf("4-byte Encode = %v\n% x\nwant\n% x", err, fork[:n], want4)
	}

	// i8count must match the inode numbers.
	bad := bytes.Clone(want)
	bad[1] = 1
	_, err = ondisk.DecodeDirSF(bad, true)
	mustCorrupt(t, "i8count 1 with two large inode numbers", err)
	bad[1] = 3
	_, err = ondisk.DecodeDirSF(bad, true)
	mustCorrupt(t, "i8count 3 with two large inode numbers", err)
}

func TestDirSFEncodeRejects(t *testing.T) {
	fork := make([]byte, 512)
	for name, s := range map[string]*ondisk.DirSF{
		"empty name":       {Parent: 128, Entries: []ondisk.DirSFEntry{{Name: nil, Offset: 0x60, Ino: 129}}},
		"256-byte name":    {Parent: 128, Entries: []ondisk.DirSFEntry{{Name: make([]byte, 256), Offset: 0x60, Ino: 129}}},
		"does not fit":     {Parent: 128, Entries: []ondisk.DirSFEntry{{Name: make([]byte, 255), Offset: 0x60, Ino: 129}, {Name: make([]byte, 255), Offset: 0x200, Ino: 129}}},
		"ftype, no ftype":  {Parent: 128, Entries: []ondisk.DirSFEntry{{Name: []byte("a"), Offset: 0x60, Ino: 129, FType: 1}}},
		"too many entries": {Parent: 128, Entries: make([]ondisk.DirSFEntry, 256)},
	} {
		if _, err := s.Encode(fork, false); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
}

func FuzzDecodeDirSF(f *testing.F) {
	g := synthGeometry()
	for _, b := range fuzzSeeds(f, kindSF) {
		f.Add(b.buf, true)
		g = b.g
	}
	f.Add([]byte{2, 2, 0, 0, 0, 2, 0, 0, 0, 5, 1, 0, 0x60, 'a', 1, 0, 0, 0, 0, 0, 0, 0, 130,
		3, 0, 0x70, 'b', 'i', 'g', 2, 0, 0, 0, 8, 0, 0, 0, 7}, true)
	f.Add([]byte{1, 0, 0, 0, 0, 128, 1, 0, 0x60, 'a', 0, 0, 0, 130}, false)
	f.Fuzz(func(t *testing.T, fork []byte, hasFType bool) {
		s, err := ondisk.DecodeDirSF(fork, hasFType)
		if err != nil {
			if s != nil {
				t.Fatal("error with a result")
			}
			return
		}
		gg := *g
		gg.HasFType = hasFType
		_ = s.Verify(&gg)
		_ = s.Fields(hasFType).String()
		if s.Size(hasFType) != len(fork) {
			t.Fatalf("Size %d, fork %d", s.Size(hasFType), len(fork))
		}
		out := make([]byte, len(fork))
		n, err := s.Encode(out, hasFType)
		if err != nil || n != len(fork) || !bytes.Equal(out, fork) {
			t.Fatalf("round trip: n %d err %v\n% x\n% x", n, err, out, fork)
		}
	})
}
