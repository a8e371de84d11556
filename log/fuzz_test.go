package log

import (
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

var fuzzUUID = ondisk.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// seedItems is a transaction's worth of items as the kernel logs them: an
// AGF buffer (one chunk), an inode with its core and one extent, an inode
// chunk allocation.
func seedItems() [][][]byte {
	le := binary.LittleEndian
	bf := &BufLogFormat{Size: 2, Flags: uint16(BufAGF) << blfTypeShift, Len: 1, Blkno: 1, DataMap: []uint32{1}}
	bfmt := make([]byte, bf.EncodedSize())
	bf.Encode(bfmt)
	agf := make([]byte, BufChunkSize)
	binary.BigEndian.PutUint32(agf, ondisk.AGFMagic)
	inf := &InodeLogFormat{Size: 3, Fields: ILogCore | ILogDExt, DSize: 16, Ino: 131, Blkno: 128, Len: 32, BOffset: 1536}
	ifmt := make([]byte, InodeLogFormatSize)
	inf.Encode(ifmt)
	core := make([]byte, LogDinodeSize)
	le.PutUint16(core[0:], ondisk.DinodeMagic)
	le.PutUint16(core[2:], 0o100644)
	core[4], core[5] = 3, ondisk.FmtExtents
	le.PutUint64(core[64:], 16)
	le.PutUint32(core[76:], 1)
	ext := make([]byte, 16)
	binary.BigEndian.PutUint64(ext[8:], 24<<21|16)
	icr := make([]byte, icreateLogSize)
	le.PutUint16(icr[0:], ItemICreate)
	le.PutUint16(icr[2:], 1)
	for i, v := range []uint32{0, 40, 64, 512, 8, 0x1234} {
		binary.BigEndian.PutUint32(icr[4+4*i:], v)
	}
	return [][][]byte{{bfmt, agf}, {ifmt, core, ext}, {icr}, efiItem(9), efdItem(9)}
}

// seedLog lays out a small log: records from block 0 in cycle 1, the
// first transaction split over two records by a continued region, then
// zeros; clean adds an unmount record.
func seedLog(blocks int, clean bool) []byte {
	log := make([]byte, blocks*ondisk.BBSize)
	ops := txOps(0x11, seedItems())
	// Split the AGF chunk region (op 3) in two.
	cut := 3
	a, b := ops[cut], ops[cut]
	a.Data, a.Header.Flags = a.Data[:64], OpContinue
	b.Data, b.Header.Flags = b.Data[64:], OpWasCont|OpEnd
	first := append(append([]Op{}, ops[:cut]...), a)
	second := append([]Op{b}, ops[cut+1:]...)
	blk := int64(0)
	put := func(ops []Op) {
		rec := buildRecord(1, blk, MakeLSN(1, 0), blk-1, fuzzUUID, ops)
		copy(log[blk*ondisk.BBSize:], rec)
		blk += int64(len(rec) / ondisk.BBSize)
	}
	put(first)
	put(second)
	put(txOps(0x22, [][][]byte{efdItem(5)}))
	if clean {
		um := make([]byte, unmountSize)
		binary.LittleEndian.PutUint16(um, UnmountMagic)
		put([]Op{{Header: OpHeader{Tid: 0x33, ClientID: ClientLog, Flags: OpUnmount}, Data: um}})
	}
	return log
}

// FuzzRecordParse feeds ParseRecord and the transaction assembler one
// record's bytes: header block(s) then data.
func FuzzRecordParse(f *testing.F) {
	for _, l := range [][]byte{seedLog(32, false), seedLog(32, true)} {
		f.Add(l[:1536])
		f.Add(l[1536:4096])
	}
	f.Add(buildRecord(5, 7, MakeLSN(5, 1), 1, fuzzUUID, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < ondisk.BBSize {
			return
		}
		h := decodeRecordHeader(b)
		hblks := min(hblksFor(h.Version, min(h.Size, maxRecordBytes)), len(b)/ondisk.BBSize)
		hdr, data := b[:hblks*ondisk.BBSize], b[hblks*ondisk.BBSize:]
		keep := append([]byte(nil), data...)
		r, err := ParseRecord(7, hdr, data, DefaultHSize)
		if err != nil {
			return
		}
		if uint32(len(r.Ops)) > h.NumLogOps || len(r.Ops) > len(data)/OpHeaderSize {
			t.Fatalf("%d ops from %d announced in %d bytes", len(r.Ops), h.NumLogOps, len(data))
		}
		for _, op := range r.Ops {
			if int(op.Header.Len) != len(op.Data) || cap(op.Data) != len(op.Data) {
				t.Fatalf("op of %d bytes announced %d (cap %d)", len(op.Data), op.Header.Len, cap(op.Data))
			}
		}
		// Parsing is deterministic and the CRC is over the bytes as
		// written, before the cycle data went back.
		r2, err := ParseRecord(7, hdr, keep, DefaultHSize)
		if err != nil || r2.CRC != r.CRC || len(r2.Ops) != len(r.Ops) {
			t.Fatalf("second parse differs: %v", err)
		}
		as := newAssembler(func(tx *Transaction) error {
			for i := range tx.Items {
				exerciseItem(&tx.Items[i])
			}
			return nil
		})
		_ = as.addRecord(r)
		for _, tx := range as.uncommitted() {
			for i := range tx.Items {
				exerciseItem(&tx.Items[i])
			}
		}
	})
}

// exerciseItem runs the pure decoding and replay steps of recovery on an
// item, into scratch buffers.
func exerciseItem(it *Item) {
	it.Describe()
	if len(it.Regions) == 0 {
		return
	}
	g := &ondisk.Geometry{InodeSize: 512, Nrext64: true}
	switch it.Type {
	case ItemBuf:
		f, err := DecodeBufLogFormat(it.Regions[0])
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		_ = replayRegions(f, it.Regions, buf)
		_ = replayInodeBuffer(f, it.Regions, buf, 512)
		bufTypeMatches(f.Type(), buf)
		bufLSN(buf, fuzzUUID, fuzzUUID)
		kindOf(buf)
	case ItemInode:
		if len(it.Regions) > 1 && len(it.Regions[1]) == LogDinodeSize {
			if checkLogDinode(it.Regions[1], g) == nil {
				dip := make([]byte, 512)
				logDinodeToDisk(dip, it.Regions[1], 5)
			}
		}
		for _, r := range it.Regions[1:] {
			_ = bmbtToBmdr(r, make([]byte, 336))
		}
	case ItemICreate:
		_, _ = decodeICreate(it.Regions[0])
	}
}

// FuzzTransactions runs head and tail finding, verification, the record
// walk with transaction reassembly, and the whole-log scan over a small
// mutated log region.
func FuzzTransactions(f *testing.F) {
	f.Add(seedLog(24, false))
	f.Add(seedLog(24, true))
	// A log that wrapped: the last records of cycle 1 at the end, cycle 2
	// from block 0.
	w := seedLog(24, false)
	rec := buildRecord(2, 0, MakeLSN(1, 8), 20, fuzzUUID, txOps(0x44, seedItems()[2:3]))
	copy(w, rec)
	for i := 0; i < 24; i++ {
		if binary.BigEndian.Uint32(w[i*ondisk.BBSize:]) == 0 {
			binary.BigEndian.PutUint32(w[i*ondisk.BBSize:], 1)
		}
	}
	f.Add(w)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := min(len(b)/ondisk.BBSize, 128)
		if n < 4 {
			return
		}
		img := append([]byte(nil), b[:n*ondisk.BBSize]...)
		a := &Area{Dev: ondisk.NewMemDevice(img), Start: 0, BBs: int64(n), UUID: fuzzUUID}
		if _, err := a.Scan(); err != nil {
			t.Fatalf("scan of an in-memory log: %v", err)
		}
		st, err := a.FindState()
		if err != nil {
			return
		}
		if !st.Clean && !st.Empty {
			if err := a.VerifyState(st); err != nil {
				return
			}
		}
		ntx := 0
		_, _ = a.Walk(st, Walk{Transaction: func(tx *Transaction) error {
			ntx++
			for i := range tx.Items {
				exerciseItem(&tx.Items[i])
			}
			return nil
		}})
		if ntx > n*ondisk.BBSize/OpHeaderSize {
			t.Fatalf("%d transactions from %d blocks", ntx, n)
		}
	})
}

// TestSeedLogs checks that the synthetic logs parse as intended: the
// fuzzers would be blind otherwise.
func TestSeedLogs(t *testing.T) {
	for _, clean := range []bool{false, true} {
		img := seedLog(32, clean)
		a := &Area{Dev: ondisk.NewMemDevice(img), BBs: 32, UUID: fuzzUUID}
		st, err := a.FindState()
		if err != nil {
			t.Fatal(err)
		}
		if st.Clean != clean {
			t.Fatalf("clean %v: state %+v", clean, st)
		}
		if clean {
			continue
		}
		if err := a.VerifyState(st); err != nil {
			t.Fatal(err)
		}
		txs, err := a.Transactions(st)
		if err != nil {
			t.Fatal(err)
		}
		if len(txs) != 2 || !txs[0].Committed || len(txs[0].Items) != 5 || len(txs[0].Items[0].Regions) != 2 || len(txs[0].Items[0].Regions[1]) != BufChunkSize {
			t.Fatalf("transactions %+v", txs)
		}
		if txs[0].Header.Tid != 0x11 || txs[0].LSN != MakeLSN(1, 0) || txs[0].CommitLSN == txs[0].LSN {
			t.Fatalf("first transaction %+v", txs[0])
		}
		for _, it := range txs[0].Items {
			if d := it.Describe(); d.Error != "" {
				t.Fatalf("%s: %s", d.Type, d.Error)
			}
		}
	}
}
