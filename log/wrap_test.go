package log

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// A log that wrapped past its physical end takes 64 MiB of log traffic to
// make through the kernel (mkfs's smallest log). Instead, the records of a
// kernel-written dirty log are moved so that they run past the end of the
// log and go on at block 0 in the next cycle, re-packed and re-CRC'd as the
// kernel writes a wrapping record (xlog_split_iclog), with the blocks in
// between holding cleared headers of the old cycle. The kernel recovers the
// result, so it stays the oracle.

// relocateLog moves the records of the dirty log of img so that the
// physical end falls two blocks into the data of the middle record.
func relocateLog(t *testing.T, img string) {
	t.Helper()
	var a *Area
	var recs []*Record
	var raws [][]byte
	withArea(t, img, func(x *Area) {
		a = x
		st, err := a.FindState()
		if err != nil || st.Clean {
			t.Fatalf("state %+v, %v", st, err)
		}
		if recs, err = a.Records(int64(st.Tail.Block()), int64(st.Head.Block())); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			raw, err := a.ReadBlocks(r.Block, int(r.Blocks()))
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, raw)
		}
	})
	if len(recs) < 3 {
		t.Fatalf("only %d records", len(recs))
	}
	mid := len(recs) / 2
	var before int64
	for _, r := range recs[:mid] {
		before += r.Blocks()
	}
	start := a.BBs - (before + int64(recs[mid].HBlocks) + 2)
	if recs[mid].Header.DataBlocks() < 3 {
		t.Fatalf("middle record too short to split")
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	be := binary.BigEndian
	writeBlk := func(blk int64, b []byte) {
		if _, err := f.WriteAt(b, (a.Start+blk%a.BBs)<<ondisk.BBShift); err != nil {
			t.Fatal(err)
		}
	}
	tail := MakeLSN(1, uint32(start))
	pos, prev := start, int64(-1)
	for i, r := range recs {
		hb := r.HBlocks
		hdr := append([]byte(nil), raws[i][:hb*ondisk.BBSize]...)
		data := append([]byte(nil), raws[i][hb*ondisk.BBSize:]...)
		h := decodeRecordHeader(hdr)
		unpackCycleData(h, hdr, data)
		cycle := uint32(1)
		if pos >= a.BBs {
			cycle = 2
		}
		blk := pos % a.BBs
		be.PutUint32(hdr[4:], cycle)
		be.PutUint64(hdr[16:], uint64(MakeLSN(cycle, uint32(blk))))
		be.PutUint64(hdr[24:], uint64(tail))
		be.PutUint32(hdr[36:], uint32(prev))
		for j := 0; j*ondisk.BBSize < len(data); j++ {
			c := cycle
			if pos+int64(hb)+int64(j) >= a.BBs {
				c = 2
			}
			if j < cycleDataSlots {
				copy(hdr[44+4*j:], data[j*ondisk.BBSize:j*ondisk.BBSize+4])
			} else {
				k, s := j/cycleDataSlots, j%cycleDataSlots
				copy(hdr[k*ondisk.BBSize+4+4*s:], data[j*ondisk.BBSize:j*ondisk.BBSize+4])
			}
			be.PutUint32(data[j*ondisk.BBSize:], c)
		}
		for k := 1; k < hb; k++ {
			be.PutUint32(hdr[k*ondisk.BBSize:], cycle)
		}
		binary.LittleEndian.PutUint32(hdr[HeaderCRCOff:], recordCRC(hdr, data[:h.Len], headerCRCLen))
		rec := append(hdr, data...)
		for j := 0; j*ondisk.BBSize < len(rec); j++ {
			writeBlk(pos+int64(j), rec[j*ondisk.BBSize:(j+1)*ondisk.BBSize])
		}
		prev = blk
		pos += int64(len(rec) / ondisk.BBSize)
	}
	head := pos % a.BBs
	// Blocks from the new head to the first record: cleared headers of
	// cycle 1, as the kernel leaves behind its head.
	empty := make([]byte, ondisk.BBSize)
	for blk := head; blk < start; blk++ {
		clear(empty)
		be.PutUint32(empty[0:], HeaderMagic)
		be.PutUint32(empty[4:], 1)
		be.PutUint32(empty[8:], Version2)
		be.PutUint64(empty[16:], uint64(MakeLSN(1, uint32(blk))))
		be.PutUint64(empty[24:], uint64(tail))
		be.PutUint32(empty[0x12c:], FmtLinuxLE)
		copy(empty[0x130:0x140], a.UUID[:])
		writeBlk(blk, empty)
	}
	if pos <= a.BBs || head >= start {
		t.Fatalf("relocation did not wrap: start %d end %d", start, pos)
	}
}

func TestRecoverWrappedLog(t *testing.T) {
	img := makeDirty(t, 512<<20, nil, richWorkload(t))
	relocateLog(t, img)
	var st *State
	withArea(t, img, func(a *Area) {
		var err error
		if st, err = a.FindState(); err != nil {
			t.Fatal(err)
		}
		if err := a.VerifyState(st); err != nil {
			t.Fatal(err)
		}
	})
	if st.Head.Cycle() != 2 || st.Tail.Cycle() != 1 || st.Tail.Block() <= st.Head.Block() {
		t.Fatalf("relocated log state %+v: want the head in cycle 2 before the tail in cycle 1", st)
	}
	rep := checkSameAsKernel(t, img)
	if rep.NewHead.Cycle() != 2 {
		t.Fatalf("new head %x", rep.NewHead)
	}
}
