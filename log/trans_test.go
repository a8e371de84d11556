package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/ondisk"
)

// agfFreeOff is agf_freeblks, a field tests change and restore.
const agfFreeOff = 52

func readMeta(t *testing.T, j *Journal, daddr int64, n int) []byte {
	t.Helper()
	b, err := j.ReadMeta(daddr, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setAGFFree(t *testing.T, tx *Tx, g *ondisk.Geometry, ag uint32, v uint32) *Buf {
	t.Helper()
	b, err := tx.ReadBuf(g.AGFDaddr(ag), 512, BufAGF)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(b.Data[agfFreeOff:], v)
	tx.LogBuf(b, agfFreeOff, 4)
	return b
}

func TestTxSeesPreviousCommits(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	agf := tfs.g.AGFDaddr(0)
	tx, _ := j.Begin(Reservation{})
	setAGFFree(t, tx, tfs.g, 0, 111)
	// Uncommitted: invisible to readers, visible to the transaction.
	if v := binary.BigEndian.Uint32(readMeta(t, j, agf, 512)[agfFreeOff:]); v != 0 {
		t.Fatalf("reader sees uncommitted agf_freeblks %d", v)
	}
	own, _ := tx.ReadMeta(agf, 512)
	if v := binary.BigEndian.Uint32(own[agfFreeOff:]); v != 111 {
		t.Fatalf("transaction does not see its own change: %d", v)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Committed, not yet on disk: readers see it; a wider read too.
	if v := binary.BigEndian.Uint32(readMeta(t, j, agf, 512)[agfFreeOff:]); v != 111 {
		t.Fatalf("reader sees %d after commit", v)
	}
	wide := readMeta(t, j, 0, 4096)
	if v := binary.BigEndian.Uint32(wide[512+agfFreeOff:]); v != 111 {
		t.Fatalf("4 KiB read over the AGF sees %d", v)
	}
	disk := make([]byte, 512)
	tfs.dev.ReadAt(disk, agf<<9)
	if binary.BigEndian.Uint32(disk[agfFreeOff:]) != 0 {
		t.Fatal("commit wrote in place")
	}
	tx2, _ := j.Begin(Reservation{})
	b, err := tx2.ReadBuf(agf, 512, BufAGF)
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.BigEndian.Uint32(b.Data[agfFreeOff:]); v != 111 {
		t.Fatalf("second transaction reads %d", v)
	}
	tx2.Cancel()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	tfs.dev.ReadAt(disk, agf<<9)
	if binary.BigEndian.Uint32(disk[agfFreeOff:]) != 111 || !ondisk.VerifyCRC(disk, ondisk.AGFCRCOff) {
		t.Fatal("AGF not written back with a valid CRC")
	}
	st, err := NewArea(tfs.dev, tfs.g, tfs.sb.UUID).FindState()
	if err != nil || !st.Clean {
		t.Fatalf("after Close: %+v, %v", st, err)
	}
	if lsn := binary.BigEndian.Uint64(disk[ondisk.AGFLSNOff:]); lsn == 0 || LSN(lsn) >= st.Head {
		t.Fatalf("agf_lsn %x, head %x", lsn, st.Head)
	}
}

func TestCancelRestores(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	before := readMeta(t, j, 0, 64<<10)
	free := j.FreeBlocks()
	tx, _ := j.Begin(Reservation{Blocks: 10})
	setAGFFree(t, tx, tfs.g, 0, 5)
	setAGFFree(t, tx, tfs.g, 1, 6)
	nb, err := tx.NewBuf(tfs.g.AGBDaddr(0, 8), tfsBlock, BufBtree)
	if err != nil {
		t.Fatal(err)
	}
	copy(nb.Data, "garbage")
	tx.LogBuf(nb, 0, 7)
	loc := tfs.g.LocateInode(tfsFileIno)
	cl, _ := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
	cl.Data[loc.Offset+56] ^= 0xff
	tx.LogInode(tfsFileIno, ILogCore)
	tx.ModCounters(-3, 0, 0)
	if got := j.FreeBlocks(); got != free-10 {
		t.Fatalf("free blocks with a reservation: %d, want %d", got, free-10)
	}
	tx.Cancel()
	if got := j.FreeBlocks(); got != free {
		t.Fatalf("free blocks after cancel: %d, want %d", got, free)
	}
	if !bytes.Equal(readMeta(t, j, 0, 64<<10), before) {
		t.Fatal("cancel left a trace")
	}
	if n := len(j.bufs); n != 0 {
		t.Fatalf("%d buffers left in the cache", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if s := j.Stats(); s.Transactions != 0 || s.LogBytes != 0 {
		t.Fatalf("a cancelled transaction was logged: %+v", s)
	}
}

// A commit that fails its checks is cancelled: the changes are gone.
func TestFailedCommitLeavesNoTrace(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	before := readMeta(t, j, 0, 64<<10)
	for _, tc := range []struct {
		name string
		do   func(tx *Tx)
	}{
		{"unlogged byte", func(tx *Tx) {
			b := setAGFFree(t, tx, tfs.g, 0, 9)
			b.Data[300] = 1
		}},
		{"unknown magic", func(tx *Tx) {
			b, _ := tx.NewBuf(tfs.g.AGBDaddr(0, 9), tfsBlock, BufBtree)
			copy(b.Data, "NOPE")
			tx.LogBuf(b, 0, 4)
		}},
		{"type mismatch", func(tx *Tx) {
			b, _ := tx.ReadBuf(tfs.g.AGIDaddr(0), 512, BufAGF)
			tx.LogBuf(b, 0, 4)
		}},
		{"inode fork changed, not logged", func(tx *Tx) {
			loc := tfs.g.LocateInode(tfsFileIno)
			cl, _ := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
			cl.Data[loc.Offset+ondisk.DinodeCoreSize+3] ^= 1
			tx.LogInode(tfsFileIno, ILogCore)
		}},
		{"next_unlinked changed, inode logged", func(tx *Tx) {
			loc := tfs.g.LocateInode(tfsFileIno)
			cl, _ := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
			ip := cl.Data[loc.Offset : loc.Offset+tfs.g.InodeSize]
			binary.BigEndian.PutUint32(ip[96:], 1234)
			ondisk.StampCRC(ip, ondisk.DinodeCRCOff)
			tx.LogInode(tfsFileIno, ILogCore)
		}},
		{"inode of another number", func(tx *Tx) {
			loc := tfs.g.LocateInode(tfsFileIno)
			cl, _ := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
			tx.LogInode(tfsFileIno+16, ILogCore)
			_ = cl
		}},
		{"counter beyond reservation", func(tx *Tx) {
			setAGFFree(t, tx, tfs.g, 0, 9)
			tx.ModCounters(-1, 0, 0)
		}},
	} {
		tx, _ := j.Begin(Reservation{})
		tc.do(tx)
		if err := tx.Commit(); err == nil {
			t.Errorf("%s: commit succeeded", tc.name)
		}
		if !bytes.Equal(readMeta(t, j, 0, 64<<10), before) {
			t.Fatalf("%s: failed commit left a trace", tc.name)
		}
	}
	if s := j.Stats(); s.Transactions != 0 {
		t.Fatalf("failed commits counted: %+v", s)
	}
}

func TestNoSpaceBeforeChange(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	free := j.FreeBlocks()
	if _, err := j.Begin(Reservation{Blocks: free}); !errors.Is(err, ondisk.ErrNoSpace) {
		t.Fatalf("reserving all %d free blocks (set-aside included): %v", free, err)
	}
	tx, err := j.Begin(Reservation{Blocks: free - j.setAside})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Begin(Reservation{Blocks: 1}); !errors.Is(err, ondisk.ErrNoSpace) {
		t.Fatalf("second reservation: %v", err)
	}
	if j.FreeBlocks() != j.setAside {
		t.Fatalf("free blocks %d", j.FreeBlocks())
	}
	tx.ModCounters(-100, 0, 0)
	setAGFFree(t, tx, tfs.g, 0, 1)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := j.FreeBlocks(); got != free-100 {
		t.Fatalf("after using 100 of the reservation: %d free, want %d", got, free-100)
	}
}

func TestLocksBlockSecondTx(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	tx1, _ := j.Begin(Reservation{})
	setAGFFree(t, tx1, tfs.g, 0, 1)

	// Another AG's header is free to take.
	other := make(chan error, 1)
	go func() {
		tx, _ := j.Begin(Reservation{})
		b, err := tx.ReadBuf(tfs.g.AGFDaddr(1), 512, BufAGF)
		if err == nil {
			binary.BigEndian.PutUint32(b.Data[agfFreeOff:], 7)
			tx.LogBuf(b, agfFreeOff, 4)
			err = tx.Commit()
		}
		other <- err
	}()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a transaction on AG 1 waited for one holding AG 0")
	}

	got := make(chan uint32, 1)
	go func() {
		tx, _ := j.Begin(Reservation{})
		b, err := tx.ReadBuf(tfs.g.AGFDaddr(0), 512, BufAGF)
		if err != nil {
			t.Error(err)
			got <- 0
			return
		}
		v := binary.BigEndian.Uint32(b.Data[agfFreeOff:])
		binary.BigEndian.PutUint32(b.Data[agfFreeOff:], v+1)
		tx.LogBuf(b, agfFreeOff, 4)
		if err := tx.Commit(); err != nil {
			t.Error(err)
		}
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("second transaction got the locked AGF (read %d)", v)
	case <-time.After(200 * time.Millisecond):
	}
	// Re-getting a buffer it holds does not block the owner.
	if _, err := tx1.ReadBuf(tfs.g.AGFDaddr(0), 512, BufAGF); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != 1 {
			t.Fatalf("second transaction read %d, want the first one's 1", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second transaction never got the AGF")
	}
	if v := binary.BigEndian.Uint32(readMeta(t, j, tfs.g.AGFDaddr(0), 512)[agfFreeOff:]); v != 2 {
		t.Fatalf("agf_freeblks %d, want 2", v)
	}
}

var errHook = errors.New("simulated crash")

// Transactions from several goroutines on shared and separate AGs, with
// readers and checkpoints running meanwhile, lose no update.
func TestConcurrentTransactions(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{CheckpointBytes: 4096})
	const workers, each = 4, 150
	done := make(chan error, workers+1)
	stop := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if n%20 == 0 {
				if err := j.Checkpoint(); err != nil {
					done <- err
					return
				}
			}
			b, err := j.ReadMeta(0, 4096)
			if err != nil {
				done <- err
				return
			}
			if binary.BigEndian.Uint32(b[512:]) != ondisk.AGFMagic {
				done <- errors.New("reader saw a torn AGF")
				return
			}
		}
	}()
	for w := 0; w < workers; w++ {
		go func(w int) {
			for i := 0; i < each; i++ {
				tx, err := j.Begin(Reservation{})
				if err != nil {
					done <- err
					return
				}
				b, err := tx.ReadBuf(tfs.g.AGFDaddr(uint32(w%2)), 512, BufAGF)
				if err != nil {
					done <- err
					return
				}
				v := binary.BigEndian.Uint32(b.Data[agfFreeOff:])
				binary.BigEndian.PutUint32(b.Data[agfFreeOff:], v+1)
				tx.LogBuf(b, agfFreeOff, 4)
				if i%10 == 9 {
					tx.Cancel()
					continue
				}
				if err := tx.Commit(); err != nil {
					done <- err
					return
				}
				// Once Checkpoint returns, a checkpoint holding this
				// commit is done: every worker forces six in all.
				if i%25 == 0 {
					if err := j.Checkpoint(); err != nil {
						done <- err
						return
					}
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	want := uint32(workers / 2 * (each - each/10))
	for ag := uint32(0); ag < 2; ag++ {
		disk := make([]byte, 512)
		tfs.dev.ReadAt(disk, tfs.g.AGFDaddr(ag)<<9)
		if v := binary.BigEndian.Uint32(disk[agfFreeOff:]); v != want || !ondisk.VerifyCRC(disk, ondisk.AGFCRCOff) {
			t.Fatalf("AG %d: agf_freeblks %d, want %d", ag, v, want)
		}
	}
	if s := j.Stats(); s.Checkpoints < 5 {
		t.Fatalf("only %d checkpoints ran alongside the transactions", s.Checkpoints)
	}
}

// di_next_unlinked travels in the cluster buffer, as the kernel logs it; a
// buffer item of type DINO carries it next to the inode item.
func TestNextUnlinkedLoggedInBuffer(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	loc := tfs.g.LocateInode(tfsFileIno)
	tx, _ := j.Begin(Reservation{})
	cl, _ := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
	ip := cl.Data[loc.Offset : loc.Offset+tfs.g.InodeSize]
	binary.BigEndian.PutUint32(ip[96:], 1234)
	ondisk.StampCRC(ip, ondisk.DinodeCRCOff)
	tx.LogBuf(cl, loc.Offset+96, 4)
	tx.LogInode(tfsFileIno, ILogCore)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	head := j.w.head
	if err := j.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	trs, err := parseTestTrans(readTestRecords(t, j.area, head, 1))
	if err != nil {
		t.Fatal(err)
	}
	items, _ := splitTestItems(trs[0].regions)
	if len(items) != 2 || items[0].typ != ItemBuf || items[1].typ != ItemInode {
		t.Fatalf("items %+v", items)
	}
	f, _ := DecodeBufLogFormat(items[0].regions[0])
	if f.Type() != BufDino || f.Blkno != loc.ClusterDaddr || len(items[0].regions) != 2 ||
		binary.BigEndian.Uint32(items[0].regions[1][(loc.Offset+96)%BufChunkSize:]) != 1234 {
		t.Fatalf("buffer item %+v", f)
	}
}

// TestReadBufVerify: the verifier runs when a buffer comes from the
// device, not when it is cached; a buffer that fails it is not cached.
func TestReadBufVerify(t *testing.T) {
	tfs := newTestFS(t, 512)
	j := tfs.open(t, Options{})
	agf := tfs.g.AGFDaddr(1)
	bad := errors.New("refused")
	calls := 0
	verify := func(b []byte) error { calls++; return bad }
	tx, _ := j.Begin(Reservation{})
	if _, err := tx.ReadBufVerify(agf, 512, BufAGF, verify); !errors.Is(err, bad) {
		t.Fatalf("failing verifier: %v", err)
	}
	verify = func(b []byte) error { calls++; return nil }
	b, err := tx.ReadBufVerify(agf, 512, BufAGF, verify)
	if err != nil {
		t.Fatal(err)
	}
	// Change it, so that the committed buffer stays cached with a CRC
	// that is only right after writeback.
	binary.BigEndian.PutUint32(b.Data[agfFreeOff:], 1234)
	tx.LogBuf(b, agfFreeOff, 4)
	if calls != 2 {
		t.Fatalf("verifier ran %d times, want 2 (the failed read was not cached)", calls)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, _ = j.Begin(Reservation{})
	defer tx.Cancel()
	if _, err := tx.ReadBufVerify(agf, 512, BufAGF, verify); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("verifier ran on a cached, changed buffer (%d calls)", calls)
	}
}
