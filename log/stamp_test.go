package log

import (
	"encoding/binary"
	"os"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/ondisk"
)

// blknoOffs says where each structure records its own disk address: a
// second check, besides the CRC, that a layout is aligned right.
var blknoOffs = map[string]int{
	"bnobt block": 16, "cntbt block": 16, "inobt block": 16, "finobt block": 16,
	"rmapbt block": 16, "refcountbt block": 16, "bmbt block": 24,
	"dir3 block": 8, "dir3 data block": 8, "dir3 free block": 8,
	"dir3 leaf1 block": 16, "dir3 leafn block": 16, "da3 node block": 16, "attr3 leaf block": 16,
	"remote symlink block": 40, "remote attr value": 40,
}

// TestStampLayoutsOnKernelBlocks checks every stamp layout against metadata
// the kernel wrote: in the fixtures, each block whose magic a layout claims
// must carry a valid CRC at the layout's CRC offset (over the extent the
// layout says), a plausible LSN (cycle 1, inside the log) at its LSN
// offset (0 where only mkfs wrote it), its own address where the structure records one, and the file
// system's UUID; and stamping it again with its own LSN must reproduce it
// byte for byte.
func TestStampLayoutsOnKernelBlocks(t *testing.T) {
	seen, stamped := map[string]int{}, map[string]int{}
	for _, name := range []string{"dirs-4k", "files-4k"} {
		img := images.Extract(t, name)
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		sbBuf := make([]byte, 512)
		f.ReadAt(sbBuf, 0)
		sb, err := ondisk.DecodeSuperblock(sbBuf)
		if err != nil {
			t.Fatal(err)
		}
		g := ondisk.NewGeometry(sb)
		logBBs := uint32(g.LogBBs())
		bs := g.BlockSize
		forEachDataBlock(t, f, bs, func(daddr int64, b []byte) {
			// AG headers share the first block of each AG: check them as
			// sectors.
			chunks := [][2]int{{0, len(b)}}
			if lin := uint64(daddr) >> (g.BlockLog - 9); lin%uint64(g.AGBlocks) == 0 {
				chunks = [][2]int{{0, 512}, {512, 1024}, {1024, 1536}, {1536, 2048}}
			}
			for _, c := range chunks {
				buf := b[c[0]:c[1]]
				l := layoutOf(buf)
				if l == nil {
					continue
				}
				if (l.typ == BufAGF || l.typ == BufAGI || l.typ == BufAGFL || l.typ == BufSB) != (len(chunks) == 4) {
					continue // a header magic inside a data block, or the reverse
				}
				at := daddr + int64(c[0]>>9)
				parts := [][]byte{buf}
				if l.perBlock {
					parts = splitBlocks(buf, bs)
				}
				for _, p := range parts {
					if !ondisk.VerifyCRC(p, l.crcOff) {
						t.Errorf("%s: %s at daddr %d: CRC at %d does not verify", name, l.name, at, l.crcOff)
						return
					}
					lsn := LSN(binary.BigEndian.Uint64(p[l.lsnOff:]))
					if l.nullLSN {
						if lsn != nullCommitLSN {
							t.Errorf("%s: %s at daddr %d: LSN %x, want NULLCOMMITLSN", name, l.name, at, uint64(lsn))
						}
						stamped[l.name]++
					} else if lsn != 0 && l.typ != BufSB {
						stamped[l.name]++
					}
					if lsn != 0 && !l.nullLSN && l.typ != BufSB && (lsn.Cycle() != 1 || lsn.Block() >= logBBs) {
						t.Errorf("%s: %s at daddr %d: LSN %x at %d is not a log position", name, l.name, at, uint64(lsn), l.lsnOff)
					}
					if off, ok := blknoOffs[l.name]; ok && int64(binary.BigEndian.Uint64(p[off:])) != at {
						t.Errorf("%s: %s at daddr %d says it is at %d", name, l.name, at, binary.BigEndian.Uint64(p[off:]))
					}
					if err := checkBuffer(buf, l.typ, g); err != nil {
						t.Errorf("%s: %s at daddr %d: %v", name, l.name, at, err)
					}
					again := append([]byte(nil), buf...)
					if err := stampBuffer(again, l.typ, lsn, g, nil); err != nil || string(again) != string(buf) {
						t.Errorf("%s: %s at daddr %d: restamping changed it (%v)", name, l.name, at, err)
					}
					break
				}
				seen[l.name]++
			}
		})
		f.Close()
	}
	for _, l := range stampLayouts {
		t.Logf("%-22s %3d kernel-written blocks checked, %3d with an LSN", l.name, seen[l.name], stamped[l.name])
	}
	// Every layout the fixtures can hold must have been seen at least once.
	for _, name := range []string{"superblock", "AGF", "AGI", "AGFL", "bnobt block", "cntbt block", "inobt block",
		"finobt block", "bmbt block", "dir3 block", "dir3 data block", "dir3 free block", "dir3 leaf1 block",
		"dir3 leafn block", "da3 node block", "attr3 leaf block", "remote symlink block", "remote attr value"} {
		// The fixtures hold no AGFL or refcount block written after mkfs
		// (LSN 0); their LSN offsets are those of ondisk and the short
		// btree layout that the other blocks confirm.
		noLSN := name == "superblock" || name == "AGFL" || name == "refcountbt block"
		if seen[name] == 0 || (stamped[name] == 0 && !noLSN) {
			t.Errorf("no kernel-written %s (with an LSN) found in the fixtures", name)
		}
	}
}

// forEachDataBlock calls fn for every block-aligned block of a sparse file
// that holds data.
func forEachDataBlock(t *testing.T, f *os.File, bs int, fn func(daddr int64, b []byte)) {
	st, _ := f.Stat()
	const seekData, seekHole = 3, 4
	buf := make([]byte, bs)
	for off := int64(0); off < st.Size(); {
		data, err := syscall.Seek(int(f.Fd()), off, seekData)
		if err != nil {
			return
		}
		hole, err := syscall.Seek(int(f.Fd()), data, seekHole)
		if err != nil {
			t.Fatal(err)
		}
		for p := data / int64(bs) * int64(bs); p < hole; p += int64(bs) {
			if _, err := f.ReadAt(buf, p); err != nil {
				break
			}
			fn(p>>9, buf)
		}
		off = hole
	}
}
