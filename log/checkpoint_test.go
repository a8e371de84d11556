package log

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// logAll logs every inode of the test cluster with all fork flags and
// returns the cluster contents.
func TestInodeItemRoundTrip(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	g := tfs.g
	loc := g.LocateInode(tfsRootIno)
	tx, _ := j.Begin(Reservation{})
	cl, err := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
	if err != nil {
		t.Fatal(err)
	}
	// Change each inode a little (a timestamp and the change count) and
	// restamp its CRC as a caller encoding it would.
	inos := []uint64{tfsRootIno, tfsFileIno, tfsBtreeIno, tfsAttrIno, tfsDevIno}
	for _, ino := range inos {
		off := g.LocateInode(ino).Offset
		ip := cl.Data[off : off+g.InodeSize]
		d, err := ondisk.DecodeDinode(ip)
		if err != nil {
			t.Fatal(err)
		}
		d.Mtime.Sec = int64(ino)
		d.ChangeCount++
		d.Encode(ip)
	}
	tx.LogInode(tfsRootIno, ILogDData)
	tx.LogInode(tfsFileIno, ILogDExt)
	tx.LogInode(tfsBtreeIno, ILogDBroot)
	tx.LogInode(tfsAttrIno, ILogAData|ILogDExt)
	tx.LogInode(tfsDevIno, ILogDev)
	want := append([]byte(nil), cl.Data...)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	head := j.w.head
	if err := j.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	recs := readTestRecords(t, j.area, head, 1)
	if len(recs) != 1 || !recs[0].crcOK {
		t.Fatalf("%d records, CRC ok %v", len(recs), len(recs) > 0 && recs[0].crcOK)
	}
	trs, err := parseTestTrans(recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(trs) != 1 || !trs[0].committed || trs[0].header.Type != TransCheckpoint ||
		int(trs[0].header.NumItems) != len(trs[0].regions) {
		t.Fatalf("transactions %+v", trs)
	}
	items, err := splitTestItems(trs[0].regions)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(inos) {
		t.Fatalf("%d items, want %d inode items and no buffer", len(items), len(inos))
	}
	for i, it := range items {
		ino := inos[i]
		if it.typ != ItemInode {
			t.Fatalf("item %d type 0x%x", i, it.typ)
		}
		f, err := DecodeInodeLogFormat(it.regions[0])
		if err != nil {
			t.Fatal(err)
		}
		iloc := g.LocateInode(ino)
		if f.Ino != ino || f.Blkno != iloc.ClusterDaddr || int(f.Len) != iloc.ClusterLen>>9 || int(f.BOffset) != iloc.Offset ||
			int(f.Size) != len(it.regions) {
			t.Fatalf("inode %d: format %+v", ino, f)
		}
		ip := want[iloc.Offset : iloc.Offset+g.InodeSize]
		core := make([]byte, LogDinodeSize)
		LogToDiskDinode(core, it.regions[1])
		exp := append([]byte(nil), ip[:ondisk.DinodeCoreSize]...)
		binary.BigEndian.PutUint32(exp[96:], 0xffffffff)
		clear(exp[100:104])
		clear(exp[112:120])
		if !bytes.Equal(core, exp) {
			t.Fatalf("inode %d: logged core differs\n got %x\nwant %x", ino, core, exp)
		}
		fork := ip[ondisk.DinodeCoreSize:]
		switch ino {
		case tfsRootIno:
			if f.Fields != ILogCore|ILogDData || f.DSize != 10 || !bytes.Equal(it.regions[2], append(fork[:10:10], 0, 0)) {
				t.Fatalf("root: fields %x dsize %d region %x", f.Fields, f.DSize, it.regions[2])
			}
		case tfsFileIno:
			if f.Fields != ILogCore|ILogDExt || f.DSize != 32 || !bytes.Equal(it.regions[2], fork[:32]) {
				t.Fatalf("file: fields %x dsize %d", f.Fields, f.DSize)
			}
		case tfsBtreeIno:
			r := it.regions[2]
			if f.Fields != ILogCore|ILogDBroot || int(f.DSize) != 72+32 || len(r) != 104 ||
				binary.BigEndian.Uint32(r) != ondisk.BmapMagic || binary.BigEndian.Uint16(r[6:]) != 2 ||
				binary.BigEndian.Uint64(r[8:]) != ^uint64(0) || binary.BigEndian.Uint64(r[56:]) != ino ||
				binary.BigEndian.Uint64(r[72+8:]) != 500 || binary.BigEndian.Uint64(r[72+16+8:]) != 301 {
				t.Fatalf("btree: fields %x dsize %d root %x", f.Fields, f.DSize, r)
			}
		case tfsAttrIno:
			// Extents data fork with no extents: no data region; the
			// shortform attr fork is logged with its totsize.
			af := ip[ondisk.DinodeCoreSize+24*8:]
			if f.Fields != ILogCore|ILogAData || f.ASize != 12 || len(it.regions) != 3 || !bytes.Equal(it.regions[2], af[:12]) {
				t.Fatalf("attr: fields %x asize %d regions %d", f.Fields, f.ASize, len(it.regions))
			}
		case tfsDevIno:
			if f.Fields != ILogCore|ILogDev || f.Rdev != 0x0801 || len(it.regions) != 2 {
				t.Fatalf("dev: fields %x rdev %x", f.Fields, f.Rdev)
			}
		}
	}
	// Written back: each logged inode stamped with the checkpoint LSN and
	// a valid CRC; the others untouched.
	disk := make([]byte, loc.ClusterLen)
	tfs.dev.ReadAt(disk, loc.ClusterDaddr<<9)
	for i := 0; i < loc.ClusterLen/g.InodeSize; i++ {
		ino := uint64(tfsRootIno + i)
		ip := disk[i*g.InodeSize : (i+1)*g.InodeSize]
		logged := i < len(inos)
		lsn := LSN(binary.BigEndian.Uint64(ip[ondisk.DinodeLSNOff:]))
		if logged && (lsn != recs[0].h.LSN || !ondisk.VerifyCRC(ip, ondisk.DinodeCRCOff)) {
			t.Fatalf("inode %d: lsn %x crc ok %v", ino, lsn, ondisk.VerifyCRC(ip, ondisk.DinodeCRCOff))
		}
		if !logged && lsn != 0 {
			t.Fatalf("inode %d not logged but stamped", ino)
		}
	}
}

// A checkpoint larger than a record spreads over several records, splits
// regions with CONTINUE/WAS_CONT/END, and wraps at the end of the log.
func TestCheckpointSplitsAndWraps(t *testing.T) {
	tfs := newTestFS(t, 128) // 1024 log blocks
	j := tfs.open(t, Options{CheckpointBytes: 1 << 30})
	g := tfs.g
	var lastHead int64
	var lastCycle uint32
	wraps := 0
	for round := 0; round < 12; round++ {
		lastHead, lastCycle = j.w.head, j.w.cycle
		tx, _ := j.Begin(Reservation{})
		var want [][]byte
		for i := 0; i < 24; i++ {
			daddr := g.AGBDaddr(1, uint32(100+i))
			b, err := tx.NewBuf(daddr, tfsBlock, BufBtree)
			if err != nil {
				t.Fatal(err)
			}
			binary.BigEndian.PutUint32(b.Data, ondisk.BnoMagic)
			binary.BigEndian.PutUint64(b.Data[16:], uint64(daddr))
			copy(b.Data[32:48], g.MetaUUID[:])
			for k := 56; k < len(b.Data); k++ {
				b.Data[k] = byte(k*7 + i + round)
			}
			tx.LogBuf(b, 0, len(b.Data))
			want = append(want, append([]byte(nil), b.Data...))
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := j.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if j.w.cycle != lastCycle {
			wraps++
		}
		recs := readTestRecords(t, j.area, lastHead, lastCycle)
		if len(recs) < 3 {
			t.Fatalf("round %d: %d records for 96 KiB", round, len(recs))
		}
		for _, r := range recs {
			if !r.crcOK {
				t.Fatalf("round %d: record at %d: bad CRC", round, r.blk)
			}
			if r.h.Len > uint32(r.h.Size) || r.h.TailLSN != recs[0].h.LSN {
				t.Fatalf("round %d: record %+v", round, r.h)
			}
		}
		trs, err := parseTestTrans(recs)
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != 1 || !trs[0].committed {
			t.Fatalf("round %d: %d transactions", round, len(trs))
		}
		items, _ := splitTestItems(trs[0].regions)
		if len(items) != 24 {
			t.Fatalf("round %d: %d items", round, len(items))
		}
		for i, it := range items {
			f, err := DecodeBufLogFormat(it.regions[0])
			if err != nil {
				t.Fatal(err)
			}
			if f.Blkno != g.AGBDaddr(1, uint32(100+i)) || f.Type() != BufBtree || f.Len != 8 || f.DataMap[0] != 0xffffffff {
				t.Fatalf("item %d: %+v", i, f)
			}
			// The logged image is the committed contents (stamps are
			// applied only to the in-place copy).
			if !bytes.Equal(it.regions[1], want[i]) {
				t.Fatalf("round %d item %d: logged data differs", round, i)
			}
		}
	}
	if wraps < 1 {
		t.Fatalf("log never wrapped (head %d cycle %d)", j.w.head, j.w.cycle)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := NewArea(tfs.dev, g, tfs.sb.UUID).FindState()
	if err != nil || !st.Clean || st.Head != MakeLSN(j.w.cycle, uint32(j.w.head)) {
		t.Fatalf("after close: %+v %v (writer at %d/%d)", st, err, j.w.cycle, j.w.head)
	}
}

// Hooks stop a checkpoint where a crash would: after the log flush nothing
// is in place, and the journal refuses to go on.
func TestHookStopsCheckpoint(t *testing.T) {
	tfs := newTestFS(t, 512)
	stop := errHook
	j := tfs.open(t, Options{Hooks: Hooks{AfterLogFlush: func() error { return stop }}})
	tx, _ := j.Begin(Reservation{})
	setAGFFree(t, tx, tfs.g, 0, 42)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := j.Checkpoint(); err == nil {
		t.Fatal("checkpoint went past the hook")
	}
	disk := make([]byte, 512)
	tfs.dev.ReadAt(disk, tfs.g.AGFDaddr(0)<<9)
	if binary.BigEndian.Uint32(disk[agfFreeOff:]) != 0 {
		t.Fatal("written in place after the hook stopped the checkpoint")
	}
	if err := j.Close(); err == nil {
		t.Fatal("Close after a stop succeeded")
	}
	st, err := NewArea(tfs.dev, tfs.g, tfs.sb.UUID).FindState()
	if err != nil || st.Clean {
		t.Fatalf("log after a stop: %+v %v; want dirty", st, err)
	}
	if _, err := Open(tfs.dev, tfs.sb, tfs.g, Options{}); err == nil {
		t.Fatal("Open accepted a dirty log")
	}
}
