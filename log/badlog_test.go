package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Damaged and unsupported logs: each gives one clear error and leaves the
// image exactly as it was.

// manyRecords makes a dirty log of many small records: every fsync forces
// the log out.
func manyRecords(t *testing.T) string {
	return makeDirty(t, 512<<20, nil, func(mnt string) {
		for i := range 30 {
			xfsIO(t, "-f", "-c", fmt.Sprintf("pwrite -S 0x%02x 0 4k", i), "-c", "fsync", filepath.Join(mnt, fmt.Sprint("f", i)))
		}
	})
}

// logRecords lists the records between tail and head.
func logRecords(t *testing.T, img string) []*Record {
	t.Helper()
	st := dirtyState(t, img)
	var recs []*Record
	withArea(t, img, func(a *Area) {
		var err error
		if recs, err = a.Records(int64(st.Tail.Block()), int64(st.Head.Block())); err != nil {
			t.Fatal(err)
		}
	})
	if len(recs) < 2*maxICLogs {
		t.Fatalf("only %d records in the log", len(recs))
	}
	return recs
}

// rewriteRecord applies change to the raw (packed) header and data of the
// record at block blk; with fixCRC the CRC is recomputed after.
func rewriteRecord(t *testing.T, img string, r *Record, fixCRC bool, change func(hdr, data []byte)) {
	t.Helper()
	var a *Area
	withArea(t, img, func(x *Area) { a = x })
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := r.Blocks() * ondisk.BBSize
	buf := make([]byte, n)
	pos := (a.Start + r.Block) << ondisk.BBShift
	if _, err := f.ReadAt(buf, pos); err != nil {
		t.Fatal(err)
	}
	hdr, data := buf[:r.HBlocks*ondisk.BBSize], buf[r.HBlocks*ondisk.BBSize:]
	change(hdr, data)
	if fixCRC {
		binary.LittleEndian.PutUint32(hdr[HeaderCRCOff:], recordCRC(hdr, data[:r.Header.Len], headerCRCLen))
	}
	if _, err := f.WriteAt(buf, pos); err != nil {
		t.Fatal(err)
	}
}

// mountFails checks that the kernel refuses to mount img either.
func mountFails(t *testing.T, img string) {
	t.Helper()
	dev := oracle.Attach(t, img)
	dir := t.TempDir()
	if out, err := oracle.RunErr("mount", "-t", "xfs", dev, dir); err == nil {
		oracle.Unmount(t, dir)
		t.Fatalf("the kernel mounted it: %s", out)
	}
}

// refused runs Recover on img and checks that it fails with an error
// matching want, with the image unchanged.
func refused(t *testing.T, img string, want ...string) error {
	t.Helper()
	sum := sha256File(t, img)
	_, err := recoverImage(t, img, RecoverOptions{})
	if err == nil {
		t.Fatal("Recover succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if got := sha256File(t, img); got != sum {
		t.Fatal("the image changed")
	}
	return err
}

func TestRecoverBadLogs(t *testing.T) {
	base := manyRecords(t)
	recs := logRecords(t, base)
	mid := recs[2] // far from the head: not a torn write
	for _, tc := range []struct {
		name   string
		fixCRC bool
		change func(hdr, data []byte)
		want   []string
	}{
		{"crc-in-the-middle", false, func(hdr, data []byte) { data[40] ^= 1 },
			[]string{fmt.Sprintf("log record at block %d", mid.Block), "bad CRC"}},
		{"impossible-length", false, func(hdr, data []byte) { binary.BigEndian.PutUint32(hdr[12:], 0x7ffffe00) },
			[]string{fmt.Sprintf("log record at block %d", mid.Block), "record length 2147483136 outside"}},
		{"unknown-client", true, func(hdr, data []byte) { data[8] = 0x12 },
			[]string{fmt.Sprintf("log record at block %d", mid.Block), "unknown client id 0x12"}},
		{"wrong-uuid", true, func(hdr, data []byte) { hdr[0x130] ^= 0xff },
			[]string{fmt.Sprintf("log record at block %d", mid.Block), "belongs to file system"}},
		{"bad-op-length", true, func(hdr, data []byte) { binary.BigEndian.PutUint32(data[4:], 1<<20) },
			[]string{fmt.Sprintf("log record at block %d", mid.Block), "runs past the record end"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := copyImage(t, base)
			rewriteRecord(t, img, mid, tc.fixCRC, tc.change)
			refused(t, img, tc.want...)
			mountFails(t, copyImage(t, img))
		})
	}
	t.Run("cycle-garbage", func(t *testing.T) {
		img := copyImage(t, base)
		var a *Area
		withArea(t, img, func(x *Area) { a = x })
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Block 0 in cycle 7 and the last block in cycle 3: no head.
		var w [4]byte
		binary.BigEndian.PutUint32(w[:], 7)
		f.WriteAt(w[:], a.Start<<ondisk.BBShift+4)
		binary.BigEndian.PutUint32(w[:], 3)
		f.WriteAt(w[:], (a.Start+a.BBs-1)<<ondisk.BBShift)
		f.Close()
		refused(t, img, "cycle 7 at block 0 but 3 at the end")
	})
	t.Run("sb-lsn-ahead", func(t *testing.T) {
		img := copyImage(t, base)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		sect := make([]byte, 512)
		f.ReadAt(sect, 0)
		binary.BigEndian.PutUint64(sect[240:], uint64(MakeLSN(100, 8)))
		ondisk.StampCRC(sect, 224)
		f.WriteAt(sect, 0)
		f.Close()
		refused(t, img, "metadata LSN ahead of the log", "(100,8)")
		mountFails(t, copyImage(t, img))
	})
}

// TestRecoverIntents: intents whose done item is in the log need nothing;
// an intent without one is refused by name.
func TestRecoverIntents(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	t.Run("efi-alone", func(t *testing.T) {
		img := oracle.Mkfs(t, 512<<20)
		appendTransaction(t, img, 0x1234, [][][]byte{efiItem(0xfeed)})
		err := refused(t, img, "transaction at (1,2) holds an EFI item without its EFD", "mount the file system")
		if !errors.Is(err, ondisk.ErrUnsupported) {
			t.Errorf("refusal %v is not ErrUnsupported", err)
		}
	})
	t.Run("efi-then-efd", func(t *testing.T) {
		img := oracle.Mkfs(t, 512<<20)
		appendTransaction(t, img, 0x1234, [][][]byte{efiItem(0xfeed)})
		appendTransaction(t, img, 0x5678, [][][]byte{efdItem(0xfeed)})
		rep, err := recoverImage(t, img, RecoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.IntentsDone != 1 || rep.Transactions != 2 {
			t.Fatalf("report %+v", rep)
		}
		oracle.RequireRepairClean(t, img)
		if oracle.Have(oracle.Loop) {
			if msgs := kernelRecover(t, img); strings.Contains(msgs, "Starting recovery") {
				t.Fatalf("log still dirty after Recover:\n%s", msgs)
			}
		}
	})
	t.Run("efd-of-an-older-efi", func(t *testing.T) {
		img := oracle.Mkfs(t, 512<<20)
		appendTransaction(t, img, 0x5678, [][][]byte{efdItem(0xfeed)})
		if _, err := recoverImage(t, img, RecoverOptions{}); err != nil {
			t.Fatal(err)
		}
		oracle.RequireRepairClean(t, img)
	})
	for _, tc := range []struct {
		typ  uint16
		want string
	}{
		{ItemDquot, "holds a DQUOT item"},
		{ItemQuotaOff, "holds a QUOTAOFF item"},
		{ItemATTRI, "holds an ATTRI item without its ATTRD"},
		{ItemRUI, "holds an RUI item without its RUD"},
		{0x1300, "holds an unknown item type 0x1300 item"},
	} {
		t.Run(ItemName(tc.typ), func(t *testing.T) {
			img := oracle.Mkfs(t, 512<<20)
			it := efiItem(7)
			binary.LittleEndian.PutUint16(it[0], tc.typ)
			appendTransaction(t, img, 0x1234, [][][]byte{it})
			refused(t, img, tc.want)
		})
	}
}

// TestRecoverRefusesUnlinkedInodes: files removed just before the crash
// are still on the AGI unlinked lists; freeing them is mount's job.
func TestRecoverRefusesUnlinkedInodes(t *testing.T) {
	oracle.Require(t, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, 512<<20)
	mnt, _ := oracle.Mount(t, img)
	p := filepath.Join(mnt, "f")
	xfsIO(t, "-f", "-c", "pwrite 0 1m", "-c", "fsync", p)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	// Removed while open, and still open when the file system stops:
	// the inode stays on the AGI unlinked list.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	xfsIO(t, "-c", "syncfs", mnt)
	xfsIO(t, "-x", "-c", "shutdown -f", mnt)
	f.Close()
	oracle.Unmount(t, mnt)
	refused(t, img, "unlinked list", "mount the file system")
	checkKernelStillRecovers(t, img)
}

func checkKernelStillRecovers(t *testing.T, img string) {
	t.Helper()
	if msgs := kernelRecover(t, copyImage(t, img)); !strings.Contains(msgs, "Starting recovery") {
		t.Fatalf("kernel did not recover:\n%s", msgs)
	}
}
