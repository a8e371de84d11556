package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xfsimg/xfsimg/ondisk"
)

// compareImageFiles compares two images of the same file system block by
// block, outside the log, ignoring the LSN and CRC fields of metadata (by
// magic; in inode clusters, of every inode), and returns the differences
// left. Holes both images share are skipped.
func compareImageFiles(t testing.TB, pa, pb string) []string {
	t.Helper()
	fa, err := os.Open(pa)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(pb)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	sa, _ := fa.Stat()
	sbb, _ := fb.Stat()
	if sa.Size() != sbb.Size() {
		t.Fatalf("images of %d and %d bytes", sa.Size(), sbb.Size())
	}
	size := sa.Size()
	head := make([]byte, 512)
	if _, err := fa.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(head)
	if err != nil {
		t.Fatal(err)
	}
	g := ondisk.NewGeometry(sb)
	logStart := g.LogDaddr() << ondisk.BBShift
	logEnd := logStart + g.LogBBs()<<ondisk.BBShift
	const chunk = 1 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	var out []string
	for pos := int64(0); pos < size; {
		start := min(seekData(t, fa, pos, size), seekData(t, fb, pos, size))
		if start >= size {
			break
		}
		start -= start % int64(g.BlockSize)
		n := min(int64(chunk), size-start)
		readFull(t, fa, ba[:n], start)
		readFull(t, fb, bb[:n], start)
		for off := int64(0); off+int64(g.BlockSize) <= n; off += int64(g.BlockSize) {
			abs := start + off
			if abs >= logStart && abs < logEnd {
				continue
			}
			out = append(out, compareBlock(ba[off:off+int64(g.BlockSize)], bb[off:off+int64(g.BlockSize)], g, abs)...)
		}
		pos = start + n
	}
	return out
}

func seekData(t testing.TB, f *os.File, pos, size int64) int64 {
	off, err := unix.Seek(int(f.Fd()), pos, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return size
	}
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func readFull(t testing.TB, f *os.File, b []byte, off int64) {
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

// compareBlock compares one file-system block at byte offset abs; the
// first block of an AG holds sector-sized headers compared one by one.
func compareBlock(x, y []byte, g *ondisk.Geometry, abs int64) []string {
	if bytes.Equal(x, y) {
		return nil
	}
	pieces := [][2]int{{0, len(x)}}
	if abs%(int64(g.AGBlocks)*int64(g.BlockSize)) == 0 {
		pieces = nil
		for s := 0; s < len(x); s += g.SectSize {
			pieces = append(pieces, [2]int{s, s + g.SectSize})
		}
	}
	var out []string
	for _, p := range pieces {
		px := append([]byte(nil), x[p[0]:p[1]]...)
		py := append([]byte(nil), y[p[0]:p[1]]...)
		maskLSNCRC(px, g)
		maskLSNCRC(py, g)
		if bytes.Equal(px, py) {
			continue
		}
		i := 0
		for px[i] == py[i] {
			i++
		}
		out = append(out, fmt.Sprintf("daddr %d: magic 0x%08x differs first at byte %d: %x vs %x",
			(abs+int64(p[0]))/512, binary.BigEndian.Uint32(px), i, px[i:min(i+16, len(px))], py[i:min(i+16, len(py))]))
	}
	return out
}

func maskLSNCRC(b []byte, g *ondisk.Geometry) {
	k, ok := kindOf(b)
	if !ok {
		return
	}
	if k.dino {
		for off := 0; off+g.InodeSize <= len(b); off += g.InodeSize {
			clear(b[off+ondisk.DinodeCRCOff : off+ondisk.DinodeCRCOff+4])
			clear(b[off+ondisk.DinodeLSNOff : off+ondisk.DinodeLSNOff+8])
		}
		return
	}
	clear(b[k.lsnOff : k.lsnOff+8])
	clear(b[k.crcOff : k.crcOff+4])
	if binary.BigEndian.Uint32(b) == ondisk.SBMagic {
		// mkfs.xfs writes 0 for absent quota inodes; the kernel reads 0
		// as NULLFSINO and writes that back when it next logs or unmounts
		// the superblock. Both mean "none".
		for _, off := range []int{160, 168, 232} { // uquotino, gquotino, pquotino
			if binary.BigEndian.Uint64(b[off:]) == 0 {
				binary.BigEndian.PutUint64(b[off:], ondisk.NullFSIno)
			}
		}
	}
}
