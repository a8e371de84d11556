package log

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// fakeBnoBlock fills buf as an empty bnobt leaf at daddr: enough for the
// journal to accept, stamp and log it.
func fakeBnoBlock(buf []byte, daddr int64, g *ondisk.Geometry, agno uint32, fill byte) {
	for i := range buf {
		buf[i] = fill
	}
	h := &ondisk.BtreeBlock{Magic: ondisk.BnoMagic, LeftSib: ondisk.NullFSBlock, RightSib: ondisk.NullFSBlock,
		Blkno: uint64(daddr), UUID: g.MetaUUID, Owner: uint64(agno)}
	h.Encode(buf)
}

// newBlockTx commits a transaction that writes a whole fake btree block.
func newBlockTx(t *testing.T, j *Journal, daddr int64, fill byte) {
	t.Helper()
	tx, err := j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.NewBuf(daddr, j.g.BlockSize, BufBtree)
	if err != nil {
		t.Fatal(err)
	}
	fakeBnoBlock(b.Data, daddr, j.g, j.g.FSBAgno(j.g.DaddrFSB(daddr)), fill)
	tx.LogBuf(b, 0, len(b.Data))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// invalidateTx commits a transaction that frees the block at daddr.
func invalidateTx(t *testing.T, j *Journal, daddr int64) {
	t.Helper()
	tx, err := j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.ReadBuf(daddr, j.g.BlockSize, BufBtree)
	if err != nil {
		t.Fatal(err)
	}
	// A change before the free is dropped with the buffer.
	b.Data[100] ^= 0xff
	tx.LogBuf(b, 100, 1)
	tx.Invalidate(b)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func devBytes(t *testing.T, dev ondisk.Storage, daddr int64, n int) []byte {
	t.Helper()
	out := make([]byte, n)
	if _, err := dev.ReadAt(out, daddr<<ondisk.BBShift); err != nil {
		t.Fatal(err)
	}
	return out
}

// A buffer logged and then freed in the same checkpoint is neither logged
// nor written back; readers see the device again.
func TestInvalidateDropsFromCheckpoint(t *testing.T) {
	tfs := newTestFS(t, 256)
	j := tfs.open(t, Options{})
	daddr := tfs.g.AGBDaddr(1, 700)
	before := devBytes(t, tfs.dev, daddr, tfs.g.BlockSize)
	newBlockTx(t, j, daddr, 0xab)
	if got := readMeta(t, j, daddr, tfs.g.BlockSize); binary.BigEndian.Uint32(got) != ondisk.BnoMagic {
		t.Fatal("committed block not visible")
	}
	invalidateTx(t, j, daddr)
	if got := readMeta(t, j, daddr, tfs.g.BlockSize); !bytes.Equal(got, before) {
		t.Fatal("readers still see the freed block's contents")
	}
	j.mu.Lock()
	_, inCIL := j.cil.bufs[daddr]
	_, cached := j.bufs[daddr]
	j.mu.Unlock()
	if inCIL || cached {
		t.Fatalf("freed buffer still in the CIL (%v) or the cache (%v)", inCIL, cached)
	}
	// Something else in the checkpoint, so that it is written.
	setLabelTx(t, j, "other")
	if err := j.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := devBytes(t, tfs.dev, daddr, tfs.g.BlockSize); !bytes.Equal(got, before) {
		t.Fatal("the freed block was written in place")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// Cancel undoes an Invalidate; getting the buffer again revives it.
func TestInvalidateCancelAndRevive(t *testing.T) {
	tfs := newTestFS(t, 256)
	j := tfs.open(t, Options{})
	g := tfs.g
	daddr := g.AGBDaddr(1, 701)
	newBlockTx(t, j, daddr, 0x11)
	committed := readMeta(t, j, daddr, g.BlockSize)

	tx, err := j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.ReadBuf(daddr, g.BlockSize, BufBtree)
	if err != nil {
		t.Fatal(err)
	}
	b.Data[200] = 0
	tx.LogBuf(b, 200, 1)
	tx.Invalidate(b)
	tx.Cancel()
	if got := readMeta(t, j, daddr, g.BlockSize); !bytes.Equal(got, committed) {
		t.Fatal("Cancel did not restore the invalidated buffer")
	}

	// Freed and handed out again in one transaction: the new contents
	// are committed and written.
	tx, err = j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err = tx.ReadBuf(daddr, g.BlockSize, BufBtree)
	if err != nil {
		t.Fatal(err)
	}
	tx.Invalidate(b)
	b, err = tx.NewBuf(daddr, g.BlockSize, BufBtree)
	if err != nil {
		t.Fatal(err)
	}
	fakeBnoBlock(b.Data, daddr, g, 1, 0x22)
	tx.LogBuf(b, 0, len(b.Data))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := j.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := devBytes(t, tfs.dev, daddr, g.BlockSize); got[100] != 0x22 {
		t.Fatalf("revived block not written: byte 100 = %#x", got[100])
	}

	// Invalidating a buffer the transaction does not hold fails it.
	tx, err = j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	tx.Invalidate(&Buf{Daddr: daddr})
	if err := tx.Commit(); err == nil || !strings.Contains(err.Error(), "Invalidate") {
		t.Fatalf("Invalidate of a foreign buffer: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// The kernel's view: a block logged and then freed in one checkpoint gets
// file data; the machine stops after the checkpoint reached the log but
// before anything was written in place. The kernel replays the checkpoint
// on mount, and the data must survive it. Without the Invalidate (the
// control) the replay writes the stale btree block over the data, which
// shows the test can tell the difference.
func TestInvalidateKernelReplayKeepsData(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop)
	for _, invalidate := range []bool{true, false} {
		name := "invalidate"
		if !invalidate {
			name = "control"
		}
		t.Run(name, func(t *testing.T) {
			img := oracle.Mkfs(t, 300<<20)
			dev, j := openJournal(t, img, Options{Hooks: Hooks{AfterLogFlush: func() error { return errHook }}})
			g := j.g
			// The last block of AG 1 is free on a fresh file system.
			agbno := g.AGSize(1) - 1
			if out := oracle.DB(t, img, "freesp -d -a 1"); !strings.Contains(out, " 1 ") {
				t.Fatalf("unexpected free space: %s", out)
			}
			daddr := g.AGBDaddr(1, agbno)
			newBlockTx(t, j, daddr, 0x5a)
			if invalidate {
				invalidateTx(t, j, daddr)
			}
			// The block's next owner writes its data directly.
			data := bytes.Repeat([]byte("file data! "), g.BlockSize/11+1)[:g.BlockSize]
			if _, err := dev.WriteAt(data, daddr<<ondisk.BBShift); err != nil {
				t.Fatal(err)
			}
			setLabelTx(t, j, "replayed")
			if err := j.Checkpoint(); err == nil {
				t.Fatal("hook did not stop the checkpoint")
			}
			dev.Close()
			label, res := mountLabel(t, img)
			if !hasLine(res.dmesg, "Starting recovery") || label != "replayed" {
				t.Fatalf("kernel did not replay the checkpoint (label %q):\n%s", label, strings.Join(res.dmesg, "\n"))
			}
			got := make([]byte, g.BlockSize)
			f, err := ondisk.Open(img, ondisk.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.ReadAt(got, daddr<<ondisk.BBShift); err != nil {
				t.Fatal(err)
			}
			if survived := bytes.Equal(got, data); survived != invalidate {
				t.Fatalf("data survived replay: %v, want %v (block starts %x)", survived, invalidate, got[:8])
			}
			oracle.RequireRepairClean(t, img)
		})
	}
}
