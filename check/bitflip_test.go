package check_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// overlay is a read-only Storage over an image with some byte ranges
// replaced, and a record of what was read: damage without copying images.
type overlay struct {
	base    ondisk.Storage
	patches map[int64][]byte // by byte offset; ranges do not overlap

	mu    sync.Mutex
	reads map[[2]int64]bool // offset, length of every read, when recording
}

func (o *overlay) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.base.ReadAt(p, off)
	if err != nil {
		return n, err
	}
	end := off + int64(len(p))
	for po, pb := range o.patches {
		if pe := po + int64(len(pb)); po < end && pe > off {
			lo, hi := max(po, off), min(pe, end)
			copy(p[lo-off:hi-off], pb[lo-po:hi-po])
		}
	}
	if o.reads != nil {
		o.mu.Lock()
		o.reads[[2]int64{off, int64(len(p))}] = true
		o.mu.Unlock()
	}
	return n, nil
}

func (o *overlay) WriteAt(p []byte, off int64) (int, error) { return 0, fmt.Errorf("read-only") }
func (o *overlay) Flush() error                             { return nil }
func (o *overlay) Size() int64                              { return o.base.Size() }
func (o *overlay) SectorSize() int                          { return o.base.SectorSize() }

// metaRegion is a piece of metadata the checker reads, in units that carry
// one CRC each (a block, a sector, an inode).
type metaRegion struct {
	off    int64
	len    int
	crcOff int // -1: no CRC known
}

// metadataRegions runs a clean check on img, recording every read, and
// cuts the reads into CRC-carrying units by their magic numbers.
func metadataRegions(t testing.TB, img string) (*overlay, *ondisk.Geometry, []metaRegion) {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	o := &overlay{base: dev, reads: map[[2]int64]bool{}}
	f, err := xfs.New(o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := check.Run(f, check.Options{})
	if err != nil || !r.Clean() {
		t.Fatalf("clean check of %s: %v %v", img, err, r)
	}
	reads := o.reads
	o.reads = nil
	g := f.Geo
	var regions []metaRegion
	seen := map[int64]bool{}
	add := func(off int64, n, crc int) {
		if !seen[off] {
			seen[off] = true
			regions = append(regions, metaRegion{off, n, crc})
		}
	}
	for rd := range reads {
		off, n := rd[0], int(rd[1])
		buf := make([]byte, n)
		if _, err := dev.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if n <= g.SectSize { // AG header sectors
			crc := map[uint32]int{ondisk.AGFMagic: ondisk.AGFCRCOff, ondisk.AGIMagic: ondisk.AGICRCOff,
				ondisk.AGFLMagic: ondisk.AGFLCRCOff, 0x58465342: 224}[binary.BigEndian.Uint32(buf)]
			if crc == 0 {
				crc = -1
			}
			add(off, n, crc)
			continue
		}
		// Larger reads hold inodes, blocks of trees, directories and
		// symlinks, and (where reads bridge gaps) file data: cut them into
		// units that carry one CRC each and keep the units that are
		// metadata by their magic.
		for pos := 0; pos < n; {
			if pos+g.InodeSize <= n && binary.BigEndian.Uint16(buf[pos:]) == ondisk.DinodeMagic {
				add(off+int64(pos), g.InodeSize, ondisk.DinodeCRCOff)
				pos += g.InodeSize
				continue
			}
			unit := g.BlockSize
			crc := crcOffset(buf[pos:min(pos+unit, n)])
			switch binary.BigEndian.Uint32(buf[pos:]) {
			case ondisk.Dir3BlockMagic, ondisk.Dir3DataMagic, ondisk.Dir3FreeMagic:
				unit = g.DirBlkSize
			}
			if len(buf[pos:]) > 10 {
				switch binary.BigEndian.Uint16(buf[pos+8:]) {
				case ondisk.DA3NodeMagic, ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic:
					unit = g.DirBlkSize
				}
			}
			if crc >= 0 && pos+unit <= n {
				add(off+int64(pos), unit, crc)
			}
			pos += min(unit, g.BlockSize) // a directory block's later blocks are skipped as unknown
			if crc >= 0 {
				pos += unit - min(unit, g.BlockSize)
			}
		}
	}
	slices.SortFunc(regions, func(a, b metaRegion) int { return int(a.off - b.off) })
	return o, g, regions
}

// crcOffset finds where a block keeps its CRC, by its magic number.
func crcOffset(b []byte) int {
	switch binary.BigEndian.Uint32(b) {
	case ondisk.BnoMagic, ondisk.CntMagic, ondisk.InoMagic, ondisk.FinoMagic, ondisk.RefcMagic, ondisk.RmapMagic:
		return ondisk.ShortCRCOff
	case ondisk.BmapMagic:
		return ondisk.LongCRCOff
	case ondisk.Dir3BlockMagic, ondisk.Dir3DataMagic, ondisk.Dir3FreeMagic:
		return ondisk.Dir3BlkHdrCRCOff
	case ondisk.SymlinkMagic:
		return ondisk.SymlinkCRCOff
	}
	if len(b) > 10 {
		switch binary.BigEndian.Uint16(b[8:]) {
		case ondisk.DA3NodeMagic, ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic:
			return ondisk.DA3BlkInfoCRCOff
		}
	}
	return -1
}

// damage flips 1..8 bits of a region and, if restamp, recomputes its CRC
// so that the checks behind the CRC are reached.
func damage(rng *rand.Rand, o *overlay, reg metaRegion, restamp bool) string {
	buf := make([]byte, reg.len)
	o.base.ReadAt(buf, reg.off)
	flips := 1 + rng.IntN(8)
	var where []int
	for range flips {
		bit := rng.IntN(reg.len * 8)
		buf[bit/8] ^= 1 << (bit % 8)
		where = append(where, bit)
	}
	if restamp && reg.crcOff >= 0 {
		ondisk.StampCRC(buf, reg.crcOff)
	}
	o.patches = map[int64][]byte{reg.off: buf}
	return fmt.Sprintf("region at byte %d (%d bytes), bits %v, restamped %v", reg.off, reg.len, where, restamp && reg.crcOff >= 0)
}

// checkBounded runs a check with a time bound and a memory bound.
func checkBounded(t *testing.T, o *overlay, what string) *check.Report {
	t.Helper()
	f, err := xfs.New(o)
	if err != nil {
		return nil // the superblock itself was hit: Open refuses, fine
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan *check.Report, 1)
	go func() {
		r, err := check.Run(f, check.Options{})
		if err != nil {
			r = nil
		}
		done <- r
	}()
	select {
	case r := <-done:
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<20 {
			t.Fatalf("%s: one check allocated %d MiB", what, alloc>>20)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: check did not finish in 10 s", what)
	}
	return nil
}

// TestRandomBitFlips damages metadata the checker reads, a few bits at a
// time (half of the time with the CRC made good again so that the deeper
// checks see the damage), and holds the checker to: no panic, no hang, a
// bounded amount of memory. A flip that leaves no finding must have hit
// bits nothing depends on; those are counted, and must stay a minority.
func TestRandomBitFlips(t *testing.T) {
	n := 300
	if os.Getenv("XFSIMG_LONG") == "1" {
		n = 5000
	}
	for _, name := range []string{"sample", "freesp-1k", "files-4k", "dirs-4k"} {
		t.Run(name, func(t *testing.T) {
			o, _, regions := metadataRegions(t, fixture(t, name))
			if len(regions) < 20 {
				t.Fatalf("only %d metadata regions recorded", len(regions))
			}
			rng := rand.New(rand.NewPCG(uint64(len(name)), 2024))
			found, restampedSilent, runs := 0, 0, 0
			for i := 0; i < n/4; i++ {
				reg := regions[rng.IntN(len(regions))]
				restamp := rng.IntN(2) == 0
				what := damage(rng, o, reg, restamp)
				r := checkBounded(t, o, what)
				if r == nil {
					continue
				}
				runs++
				if !r.Clean() {
					found++
				} else if !restamp {
					// A flip under a CRC must always be found.
					if reg.crcOff >= 0 {
						t.Errorf("%s: no finding", what)
					}
				} else {
					restampedSilent++
				}
			}
			t.Logf("%d damaged checks: %d with findings, %d restamped flips without (bits nothing checks)", runs, found, restampedSilent)
			if found < runs/2 {
				t.Errorf("only %d of %d damaged images gave findings", found, runs)
			}
		})
	}
}
