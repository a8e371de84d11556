package ondisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// inoFuzzSeeds makes a small image with mkfs.xfs and a protofile (no mount
// needed) and returns its geometry and real inodes (allocated and free)
// as fuzz seeds, plus inodes rewritten into the forms mkfs does not make:
// a BMBT root in the data fork and NREXT64 counters.
func inoFuzzSeeds(f testing.TB) (*inoImage, [][]byte) {
	f.Helper()
	dir := f.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, bytes.Repeat([]byte("xfsimg"), 5000), 0o644); err != nil {
		f.Fatal(err)
	}
	proto := filepath.Join(dir, "proto")
	spec := fmt.Sprintf(`/dev/null
0 0
d--755 0 0
file ---644 1 2 %s
empty ---600 0 0 /dev/null
link l--777 0 0 target
fifo p--644 0 0
chr c--640 0 0 1 3
blk b--640 0 0 7 1
sub d--755 0 0
$
$
`, data)
	if err := os.WriteFile(proto, []byte(spec), 0o644); err != nil {
		f.Fatal(err)
	}
	im := openInoImage(f, oracle.Mkfs(f, 300<<20, "-p", proto))
	g := im.g
	var seeds [][]byte
	var file []byte
	for ino := im.sb.RootIno; ino < im.sb.RootIno+16; ino++ {
		b := im.inode(f, ino)
		seeds = append(seeds, b)
		if d, err := DecodeDinode(b); err == nil && d.IsReg() && d.NExtents > 0 {
			file = bytes.Clone(b)
		}
	}
	if file == nil {
		f.Fatal("protofile image has no regular file with extents")
	}
	d, _ := DecodeDinode(file)
	// A btree data fork: enough extents not to fit the inode, and a root.
	bt := bytes.Clone(file)
	d.Format = FmtBtree
	d.NExtents = uint64(DataForkSize(d, g)/ExtentSize + 10)
	d.NBlocks = d.NExtents + 2
	r := &BmdrRoot{Level: 1, NumRecs: 2, Keys: []uint64{0, 100}, Ptrs: []uint64{g.FSB(0, 100), g.FSB(1, 200)}}
	r.Encode(DataFork(bt, d, g))
	d.Encode(bt)
	seeds = append(seeds, bt)
	// NREXT64 counters.
	n64 := bytes.Clone(file)
	d, _ = DecodeDinode(n64)
	d.Flags2 |= DiFlags2Nrext64
	d.Encode(n64)
	seeds = append(seeds, n64)
	return im, seeds
}

func FuzzDecodeDinode(f *testing.F) {
	oracle.Require(f, oracle.Xfsprogs)
	im, seeds := inoFuzzSeeds(f)
	g := im.g
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDinode(data)
		if d == nil {
			if len(data) >= DinodeCoreSize {
				t.Fatalf("no inode from %d bytes: %v", len(data), err)
			}
			return
		}
		_ = d.Fields(g, data).String()
		_, _ = LocalSymlink(data, d, g)
		_ = d.GoMode()
		if d.Format == FmtExtents {
			_, _ = DecodeExtents(DataFork(data, d, g), d.NExtents)
		}
		if d.Format == FmtBtree {
			_, _ = DecodeBmdr(DataFork(data, d, g))
		}
		if af := AttrFork(data, d, g); af != nil && d.AFormat == FmtExtents {
			_, _ = DecodeExtents(af, uint64(d.ANExtents))
		}
		verr := d.Verify(g, d.Ino)

		// Every byte of the core but the CRC is a field: re-encoding
		// reproduces them, and the CRC too when it was right.
		cp := bytes.Clone(data)
		d2 := *d
		d2.Encode(cp)
		if !bytes.Equal(cp[:DinodeCRCOff], data[:DinodeCRCOff]) || !bytes.Equal(cp[DinodeCRCOff+4:], data[DinodeCRCOff+4:]) {
			t.Fatalf("re-encoding changed bytes: first difference at %d", inoFirstDiff(cp, data))
		}
		if (verr == nil || (d.Version >= 3 && d.CRCOK())) && !bytes.Equal(cp, data) {
			t.Fatalf("re-encoding a valid inode changed its CRC")
		}
		d3, _ := DecodeDinode(cp)
		// The CRC may have been restamped; every other field decodes the same.
		d3.CRC, d3.crcOK = d.CRC, d.crcOK
		if *d3 != *d {
			t.Fatalf("re-decoded %+v\nwant %+v", d3, d)
		}
	})
}

func FuzzDecodeExtent(f *testing.F) {
	f.Add(make([]byte, 16))
	f.Add(bytes.Repeat([]byte{0xff}, 16))
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0x2, 0, 0, 0, 0, 0, 0x1, 0x60, 0, 0x10})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < ExtentSize {
			return
		}
		e := DecodeExtent(data)
		var b [ExtentSize]byte
		e.Encode(b[:])
		if !bytes.Equal(b[:], data[:ExtentSize]) {
			t.Fatalf("%+v re-encodes as % x, was % x", e, b, data[:ExtentSize])
		}
		if e.StartOff > extStartOffMask || e.StartBlock > extStartBlockMask || e.BlockCount > MaxExtLen {
			t.Fatalf("decoded field out of its bit width: %+v", e)
		}
	})
}

func FuzzDecodeExtents(f *testing.F) {
	oracle.Require(f, oracle.Xfsprogs)
	im, seeds := inoFuzzSeeds(f)
	g := im.g
	for _, s := range seeds {
		d, err := DecodeDinode(s)
		if err == nil && d.Format == FmtExtents {
			f.Add(bytes.Clone(DataFork(s, d, g)), d.NExtents)
		}
	}
	f.Add(make([]byte, 48), uint64(4))
	f.Fuzz(func(t *testing.T, fork []byte, n uint64) {
		exts, err := DecodeExtents(fork, n)
		fits := n <= uint64(len(fork)/ExtentSize)
		if (err == nil) != fits {
			t.Fatalf("%d extents in %d bytes: err %v", n, len(fork), err)
		}
		if err != nil {
			return
		}
		_ = CheckExtents(exts, g)
		cp := bytes.Clone(fork)
		EncodeExtents(cp, exts)
		if !bytes.Equal(cp, fork) {
			t.Fatalf("extents re-encode differently at byte %d", inoFirstDiff(cp, fork))
		}
	})
}

func FuzzDecodeBmdr(f *testing.F) {
	oracle.Require(f, oracle.Xfsprogs)
	im, seeds := inoFuzzSeeds(f)
	g := im.g
	for _, s := range seeds {
		d, err := DecodeDinode(s)
		if err == nil {
			f.Add(bytes.Clone(DataFork(s, d, g)))
		}
	}
	for _, size := range []int{20, 192, LiteralSize(g)} {
		b := make([]byte, size)
		n := uint16(BmdrMaxRecs(size))
		r := &BmdrRoot{Level: 2, NumRecs: n, Keys: make([]uint64, n), Ptrs: make([]uint64, n)}
		for i := range r.Keys {
			r.Keys[i] = uint64(i) * 1000
			r.Ptrs[i] = g.FSB(uint32(i)%g.AGCount, uint32(10+i))
		}
		r.Encode(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, fork []byte) {
		r, err := DecodeBmdr(fork)
		if err != nil {
			return
		}
		_ = r.Verify(g, 5)
		cp := bytes.Clone(fork)
		r.Encode(cp)
		maxrecs, n := BmdrMaxRecs(len(fork)), int(r.NumRecs)
		keysEnd, ptrs := bmdrKeyOff(n), bmdrPtrOff(maxrecs, 0)
		used := func(b []byte) []byte {
			return append(append(append([]byte{}, b[:keysEnd]...), b[ptrs:ptrs+8*n]...), b[bmdrPtrOff(maxrecs, maxrecs):]...)
		}
		if !bytes.Equal(used(cp), used(fork)) {
			t.Fatalf("root re-encodes its records differently")
		}
		if !inoAllZero(cp[keysEnd:ptrs]) || !inoAllZero(cp[ptrs+8*n:bmdrPtrOff(maxrecs, maxrecs)]) {
			t.Fatalf("unused slots not zeroed")
		}
	})
}

func inoAllZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func FuzzDecodeSymlinkBlock(f *testing.F) {
	oracle.Require(f, oracle.Xfsprogs)
	im, _ := inoFuzzSeeds(f)
	g := im.g
	for _, size := range []int{g.BlockSize, 2 * g.BlockSize, 512} {
		b := make([]byte, size)
		target := strings.Repeat("t", min(size-SymlinkHeaderSize, SymlinkMaxLen-1))
		copy(b[SymlinkHeaderSize:], target)
		h := &SymlinkHeader{Magic: SymlinkMagic, Bytes: uint32(len(target)), UUID: g.MetaUUID, Owner: 133, Blkno: 4096, LSN: 1<<32 | 5}
		h.Encode(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, payload, err := DecodeSymlinkBlock(data)
		if h == nil {
			if len(data) >= SymlinkHeaderSize {
				t.Fatalf("no header from %d bytes: %v", len(data), err)
			}
			return
		}
		if err == nil && (len(payload) != int(h.Bytes) || !bytes.Equal(payload, data[SymlinkHeaderSize:SymlinkHeaderSize+len(payload)])) {
			t.Fatalf("payload of %d bytes for a header of %d", len(payload), h.Bytes)
		}
		if len(payload) > len(data)-SymlinkHeaderSize {
			t.Fatalf("payload longer than the block")
		}
		_ = h.Fields(data).String()
		verr := h.Verify(data, g, h.Owner, int64(h.Blkno))
		cp := bytes.Clone(data)
		h2 := *h
		h2.Encode(cp)
		if !bytes.Equal(cp[:SymlinkCRCOff], data[:SymlinkCRCOff]) || !bytes.Equal(cp[SymlinkCRCOff+4:], data[SymlinkCRCOff+4:]) {
			t.Fatalf("re-encoding changed bytes: first difference at %d", inoFirstDiff(cp, data))
		}
		if (verr == nil || h.CRCOK()) && !bytes.Equal(cp, data) {
			t.Fatalf("re-encoding a block with a good CRC changed it")
		}
		if verr == nil && binary.BigEndian.Uint32(data) != SymlinkMagic {
			t.Fatalf("verified a block without the magic")
		}
	})
}
