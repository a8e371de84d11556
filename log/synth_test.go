package log

import (
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Test helpers that write log records by hand: one transaction per record,
// as the reference describes them, so that tests can put items the kernel
// rarely writes (intents, quota) into a log.

// txOps lays out a transaction's ops: START, the header, one op per region
// of each item, COMMIT.
func txOps(tid uint32, items [][][]byte) []Op {
	n := 0
	for _, it := range items {
		n += len(it)
	}
	hdr := make([]byte, TransHeaderSize)
	TransHeader{Magic: TransMagic, Type: TransCheckpoint, Tid: tid, NumItems: uint32(n)}.Encode(hdr)
	ops := []Op{
		{Header: OpHeader{Tid: tid, ClientID: ClientTransaction, Flags: OpStart}},
		{Header: OpHeader{Tid: tid, Len: TransHeaderSize, ClientID: ClientTransaction}, Data: hdr},
	}
	for _, it := range items {
		for _, r := range it {
			ops = append(ops, Op{Header: OpHeader{Tid: tid, Len: uint32(len(r)), ClientID: ClientTransaction}, Data: r})
		}
	}
	return append(ops, Op{Header: OpHeader{Tid: tid, ClientID: ClientTransaction, Flags: OpCommit}})
}

// buildRecord returns a record (header block, then data blocks) at log
// block blk in cycle cycle holding ops, packed and CRC'd as a writer must.
func buildRecord(cycle uint32, blk int64, tail LSN, prev int64, uuid ondisk.UUID, ops []Op) []byte {
	var data []byte
	for _, op := range ops {
		b := make([]byte, OpHeaderSize)
		op.Header.Len = uint32(len(op.Data))
		op.Header.Encode(b)
		data = append(append(data, b...), op.Data...)
	}
	hlen := (len(data) + ondisk.BBSize - 1) / ondisk.BBSize * ondisk.BBSize
	if hlen == 0 {
		hlen = ondisk.BBSize
	}
	rec := make([]byte, ondisk.BBSize+hlen)
	copy(rec[ondisk.BBSize:], data)
	hdr, d := rec[:ondisk.BBSize], rec[ondisk.BBSize:]
	be := binary.BigEndian
	be.PutUint32(hdr[0:], HeaderMagic)
	be.PutUint32(hdr[4:], cycle)
	be.PutUint32(hdr[8:], Version2)
	be.PutUint32(hdr[12:], uint32(hlen))
	be.PutUint64(hdr[16:], uint64(MakeLSN(cycle, uint32(blk))))
	be.PutUint64(hdr[24:], uint64(tail))
	be.PutUint32(hdr[36:], uint32(prev))
	be.PutUint32(hdr[40:], uint32(len(ops)))
	be.PutUint32(hdr[0x12c:], FmtLinuxLE)
	copy(hdr[0x130:0x140], uuid[:])
	be.PutUint32(hdr[0x140:], DefaultHSize)
	for i := 0; i*ondisk.BBSize < hlen; i++ {
		copy(hdr[44+4*i:], d[i*ondisk.BBSize:i*ondisk.BBSize+4])
		be.PutUint32(d[i*ondisk.BBSize:], cycle)
	}
	binary.LittleEndian.PutUint32(hdr[HeaderCRCOff:], recordCRC(hdr, d, headerCRCLen))
	return rec
}

// efiItem and efdItem are one-extent free intent and done items.
func efiItem(id uint64) [][]byte {
	b := make([]byte, 32)
	le := binary.LittleEndian
	le.PutUint16(b[0:], ItemEFI32)
	le.PutUint16(b[2:], 1)
	le.PutUint32(b[4:], 1)
	le.PutUint64(b[8:], id)
	le.PutUint64(b[16:], 100)
	le.PutUint32(b[24:], 1)
	return [][]byte{b}
}

func efdItem(id uint64) [][]byte {
	b := efiItem(id)[0]
	binary.LittleEndian.PutUint16(b[0:], ItemEFD)
	return [][]byte{b}
}

// appendTransaction writes a record holding one transaction of items at
// the head of the log of the image at path, leaving the log dirty with it.
func appendTransaction(t testing.TB, path string, tid uint32, items [][][]byte) {
	t.Helper()
	dev, err := ondisk.Open(path, ondisk.OpenOptions{Write: true, Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	sb, err := ondisk.ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	a := NewArea(dev, ondisk.NewGeometry(sb), sb.UUID)
	st, err := a.FindState()
	if err != nil {
		t.Fatal(err)
	}
	tail := st.Tail
	if st.Clean {
		tail = st.Head
	}
	rec := buildRecord(st.Head.Cycle(), int64(st.Head.Block()), tail, st.LastRecord, sb.UUID, txOps(tid, items))
	if int64(st.Head.Block())+int64(len(rec)/ondisk.BBSize) > a.BBs {
		t.Fatal("appendTransaction: no room before the end of the log")
	}
	if _, err := dev.WriteAt(rec, (a.Start+int64(st.Head.Block()))<<ondisk.BBShift); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}
}
