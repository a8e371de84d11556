package log

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// FuzzRecordRoundTrip lays out arbitrary transactions (region sizes and
// contents from the input, head anywhere in a small log, several record
// roundoffs) and reads them back with the independent test decoder: every
// region must come back whole, in order, across record boundaries, split
// regions and the physical end of the log.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3}, uint16(0), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff, 0x7f, 9}, 40), uint16(4000), uint8(1))
	f.Add(bytes.Repeat([]byte{0x80, 0x20}, 200), uint16(4090), uint8(2))
	f.Fuzz(func(t *testing.T, spec []byte, head uint16, ro uint8) {
		const logBBs = 4096
		roundoffs := []int{512, 4096, 32768}
		roundoff := roundoffs[int(ro)%len(roundoffs)]
		dev := ondisk.NewMemDevice(make([]byte, logBBs*ondisk.BBSize))
		a := &Area{Dev: dev, Start: 0, BBs: logBBs}
		hsize := DefaultHSize
		w := &logWriter{a: a, hsize: hsize, hblks: 1, roundoff: roundoff, capacity: hsize - ondisk.BBSize, cycle: 5, prev: -1}
		w.head = int64(head) % logBBs / int64(roundoff/ondisk.BBSize) * int64(roundoff/ondisk.BBSize)
		// Regions: each pair of input bytes gives a size (multiple of 4,
		// up to 64 KiB) and a fill byte.
		var regions [][]byte
		for i := 0; i+1 < len(spec) && len(regions) < 64; i += 2 {
			n := (int(binary.BigEndian.Uint16(spec[i:])) % 65536) &^ 3
			r := make([]byte, n)
			for k := range r {
				r[k] = spec[i+1] + byte(k*31)
			}
			regions = append(regions, r)
		}
		var total int
		for _, r := range regions {
			total += len(r) + OpHeaderSize
		}
		if total > logBBs*ondisk.BBSize/3 {
			return
		}
		tid := uint32(0x12345678)
		var th [TransHeaderSize]byte
		TransHeader{Magic: TransMagic, Type: TransCheckpoint, Tid: tid, NumItems: uint32(len(regions))}.Encode(th[:])
		ops := []op{{client: ClientTransaction, flags: OpStart}, {client: ClientTransaction, data: th[:]}}
		for _, r := range regions {
			ops = append(ops, op{client: ClientTransaction, data: r, split: true})
		}
		ops = append(ops, op{client: ClientTransaction, flags: OpCommit})
		recs, _, err := w.pack(tid, ops)
		if err != nil {
			t.Fatal(err)
		}
		start, cycle := w.head, w.cycle
		out, lsn, st := w.layout(recs, MakeLSN(cycle, uint32(start)))
		if lsn != MakeLSN(cycle, uint32(start)) || st.total != int64(len(out)) || st.total%int64(roundoff) != 0 {
			t.Fatalf("layout: lsn %x, %d bytes, stats %+v", lsn, len(out), st)
		}
		if err := w.writeOut(out, start); err != nil {
			t.Fatal(err)
		}
		got := readTestRecords(t, a, start, cycle)
		if len(got) != len(recs) {
			t.Fatalf("read %d records, wrote %d", len(got), len(recs))
		}
		for _, r := range got {
			if !r.crcOK || r.h.Len > uint32(hsize) || int(r.h.Len)+ondisk.BBSize > hsize {
				t.Fatalf("record at %d: crc %v len %d", r.blk, r.crcOK, r.h.Len)
			}
		}
		trs, err := parseTestTrans(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != 1 || !trs[0].committed || len(trs[0].regions) != len(regions) {
			t.Fatalf("%d transactions (committed %v), %d regions for %d", len(trs), len(trs) > 0 && trs[0].committed, len(trs[0].regions), len(regions))
		}
		for i, r := range regions {
			if !bytes.Equal(trs[0].regions[i], r) {
				t.Fatalf("region %d (%d bytes) came back as %d bytes", i, len(r), len(trs[0].regions[i]))
			}
		}
	})
}
