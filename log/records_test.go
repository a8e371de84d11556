package log

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// A small independent log decoder for tests: it reads records the way
// recovery does (CRC, cycle data, op headers, continued regions) so that
// tests can check what the writer put in the log.

type testRecord struct {
	blk   int64
	h     *RecordHeader
	data  []byte // unpacked data, h_len bytes
	crcOK bool
}

type testTrans struct {
	tid       uint32
	lsn       LSN // record holding START
	header    TransHeader
	regions   [][]byte
	committed bool
	unmount   bool
}

// readTestRecords reads consecutive records from log block from (cycle
// cycle) until a block that is not a record header of the expected cycle.
func readTestRecords(t testing.TB, a *Area, from int64, cycle uint32) []testRecord {
	t.Helper()
	var out []testRecord
	blk := from
	for n := 0; n < 1<<20; n++ {
		hb, err := a.ReadBlocks(blk, 1)
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint32(hb) != HeaderMagic {
			return out
		}
		h := decodeRecordHeader(hb)
		if h.Cycle != cycle || h.LSN != MakeLSN(cycle, uint32(blk)) {
			return out
		}
		hblks := h.HeaderBlocks()
		total := int64(hblks + h.DataBlocks())
		raw := make([]byte, total*ondisk.BBSize)
		first := min(total, a.BBs-blk)
		b1, err := a.ReadBlocks(blk, int(first))
		if err != nil {
			t.Fatal(err)
		}
		copy(raw, b1)
		if first < total {
			b2, err := a.ReadBlocks(0, int(total-first))
			if err != nil {
				t.Fatal(err)
			}
			copy(raw[first*ondisk.BBSize:], b2)
		}
		r := testRecord{blk: blk, h: h, crcOK: writtenCRC(raw, int(h.Len)) == h.CRC}
		data := append([]byte(nil), raw[hblks*ondisk.BBSize:hblks*ondisk.BBSize+int(h.Len)]...)
		for i := 0; i < int(h.Len)/ondisk.BBSize; i++ {
			slot := 44 + 4*i
			if i >= cycleDataSlots {
				slot = (i/cycleDataSlots)*ondisk.BBSize + 4 + 4*(i%cycleDataSlots)
			}
			copy(data[i*ondisk.BBSize:], raw[slot:slot+4])
		}
		r.data = data
		out = append(out, r)
		blk += total
		if blk >= a.BBs {
			blk -= a.BBs
			cycle++
		}
	}
	return out
}

// parseTestTrans groups the ops of records into transactions, following
// xlog_recover_process_ophdr.
func parseTestTrans(recs []testRecord) ([]*testTrans, error) {
	byTid := map[uint32]*testTrans{}
	var order []*testTrans
	for _, r := range recs {
		dp := r.data
		for n := uint32(0); n < r.h.NumLogOps; n++ {
			if len(dp) < OpHeaderSize {
				return nil, fmt.Errorf("record %d: op header past the end", r.blk)
			}
			oh := DecodeOpHeader(dp)
			dp = dp[OpHeaderSize:]
			if int(oh.Len) > len(dp) {
				return nil, fmt.Errorf("record %d: op of %d bytes past the end", r.blk, oh.Len)
			}
			if oh.ClientID != ClientTransaction && oh.ClientID != ClientLog {
				return nil, fmt.Errorf("record %d: client 0x%x", r.blk, oh.ClientID)
			}
			payload := dp[:oh.Len]
			dp = dp[oh.Len:]
			tr := byTid[oh.Tid]
			if oh.Flags&OpUnmount != 0 {
				order = append(order, &testTrans{tid: oh.Tid, unmount: true, regions: [][]byte{payload}, lsn: r.h.LSN})
				continue
			}
			if tr == nil {
				if oh.Flags&OpStart == 0 {
					return nil, fmt.Errorf("record %d: op of unknown tid %x without START", r.blk, oh.Tid)
				}
				tr = &testTrans{tid: oh.Tid, lsn: r.h.LSN}
				byTid[oh.Tid] = tr
				order = append(order, tr)
				continue
			}
			flags := oh.Flags &^ OpEnd
			if flags&OpWasCont != 0 {
				flags &^= OpContinue
			}
			switch flags {
			case OpCommit:
				tr.committed = true
				delete(byTid, oh.Tid)
			case OpWasCont:
				if len(tr.regions) == 0 {
					return nil, fmt.Errorf("continued region without a start")
				}
				last := len(tr.regions) - 1
				tr.regions[last] = append(tr.regions[last], payload...)
			case 0, OpContinue:
				tr.regions = append(tr.regions, append([]byte(nil), payload...))
			default:
				return nil, fmt.Errorf("record %d: op flags 0x%x", r.blk, oh.Flags)
			}
		}
	}
	for _, tr := range order {
		if tr.unmount || len(tr.regions) == 0 {
			continue
		}
		h, err := DecodeTransHeader(tr.regions[0])
		if err != nil {
			return nil, err
		}
		tr.header = h
		tr.regions = tr.regions[1:]
	}
	return order, nil
}

// testItem is one log item: its format region and the regions after it.
type testItem struct {
	typ     uint16
	regions [][]byte
}

func splitTestItems(regions [][]byte) ([]testItem, error) {
	var out []testItem
	for len(regions) > 0 {
		f := regions[0]
		if len(f) < 4 {
			return nil, fmt.Errorf("item format of %d bytes", len(f))
		}
		n := int(binary.LittleEndian.Uint16(f[2:]))
		if n < 1 || n > len(regions) {
			return nil, fmt.Errorf("item of %d regions with %d left", n, len(regions))
		}
		out = append(out, testItem{typ: binary.LittleEndian.Uint16(f), regions: regions[:n]})
		regions = regions[n:]
	}
	return out, nil
}
