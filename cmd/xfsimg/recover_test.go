package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dirtyImage makes a file system, writes files through the kernel and
// shuts it down without writing metadata back, leaving a dirty log.
func dirtyImage(t *testing.T, work func(mnt string)) string {
	t.Helper()
	oracle.Require(t, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, 512<<20)
	mnt, _ := oracle.Mount(t, img)
	work(mnt)
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	oracle.Unmount(t, mnt)
	return img
}

func someFiles(t *testing.T) func(string) {
	return func(mnt string) {
		for i := range 50 {
			p := filepath.Join(mnt, fmt.Sprint("f", i))
			oracle.Run(t, "xfs_io", "-f", "-c", fmt.Sprintf("pwrite -S 0x%02x 0 %d", i, 1000*(i+1)), "-c", "fsync", p)
		}
		if err := os.Mkdir(filepath.Join(mnt, "dir"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoverCommand(t *testing.T) {
	img := dirtyImage(t, someFiles(t))
	sum := fileSHA(t, img)

	out := mustCLI(t, "recover", "--dry-run", img)
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "would write") {
		t.Errorf("dry run output:\n%s", out)
	}
	if fileSHA(t, img) != sum {
		t.Fatal("recover --dry-run changed the image")
	}

	var rep recoverJSON
	cliJSON(t, &rep, "recover", img)
	if rep.Clean || rep.DryRun || rep.Transactions == 0 || rep.Items["INODE"] == 0 || rep.Written.Buffers == 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.NewHead.Block <= rep.Head.Block && rep.NewHead.Cycle == rep.Head.Cycle {
		t.Errorf("new head %v not after the old one %v", rep.NewHead, rep.Head)
	}
	oracle.RequireRepairClean(t, img)

	var lg logJSON
	cliJSON(t, &lg, "inspect", img, "log")
	if !lg.Clean || lg.HeadBlock != rep.NewHead.Block || lg.HeadCycle != rep.NewHead.Cycle {
		t.Fatalf("after recover the log is %+v, want clean at %v", lg, rep.NewHead)
	}
	if out := mustCLI(t, "recover", img); !strings.Contains(out, "nothing to recover") {
		t.Errorf("second recover:\n%s", out)
	}
	// The kernel mounts it without recovery and sees the files.
	mnt, _ := oracle.Mount(t, img)
	b, err := os.ReadFile(filepath.Join(mnt, "f49"))
	if err != nil || len(b) != 50000 || b[0] != 49 {
		t.Fatalf("f49 after recovery: %d bytes, %v", len(b), err)
	}
	oracle.Unmount(t, mnt)
}

// TestRecoverCommandRefuses: what recovery does not do or cannot read is
// one line on stderr, exit 1, and an untouched image.
func TestRecoverCommandRefuses(t *testing.T) {
	oracle.Require(t, oracle.Loop, oracle.Xfsprogs)
	t.Run("unlinked-inodes", func(t *testing.T) {
		img := oracle.Mkfs(t, 512<<20)
		mnt, _ := oracle.Mount(t, img)
		p := filepath.Join(mnt, "f")
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 64k", "-c", "fsync", p)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
		oracle.Run(t, "xfs_io", "-c", "syncfs", mnt)
		oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
		f.Close()
		oracle.Unmount(t, mnt)
		sum := fileSHA(t, img)
		expectOneLineError(t, "unlinked list", "recover", img)
		if fileSHA(t, img) != sum {
			t.Fatal("refused recovery changed the image")
		}
	})
	t.Run("damaged-record", func(t *testing.T) {
		img := dirtyImage(t, someFiles(t))
		var lg logJSON
		cliJSON(t, &lg, "inspect", img, "log")
		if len(lg.Records) < 20 {
			t.Fatalf("only %d records", len(lg.Records))
		}
		// A flipped byte in the third record's data: corruption in the
		// middle of the log, not a torn write at its head.
		corruptAt(t, img, lg.Records[2].Block+1, 64)
		sum := fileSHA(t, img)
		expectOneLineError(t, fmt.Sprintf("log record at block %d: bad CRC", lg.Records[2].Block), "recover", img)
		if fileSHA(t, img) != sum {
			t.Fatal("refused recovery changed the image")
		}
		r := runCLI(t, "inspect", img, "log")
		if r.code != 1 || !strings.Contains(r.out, "BLOCK") {
			t.Errorf("inspect log of a damaged log: exit %d\n%s%s", r.code, r.out, r.err)
		}
	})
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"zeros", make([]byte, 1<<20), "not an XFS file system"},
		{"empty", nil, "too small"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, c.name+".img", c.data)
			expectOneLineError(t, c.want, "recover", p)
		})
	}
}

// corruptAt flips a byte at offset off of log block blk of img.
func corruptAt(t *testing.T, img string, blk int64, off int64) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sect := make([]byte, 512)
	if _, err := f.ReadAt(sect, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(sect)
	if err != nil {
		t.Fatal(err)
	}
	pos := (ondisk.NewGeometry(sb).LogDaddr()+blk)*512 + off
	b := []byte{0}
	f.ReadAt(b, pos)
	b[0] ^= 0x80
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

// TestInspectLogAgainstLogprint: the records between tail and head and
// the transactions in them are those xfs_logprint finds.
func TestInspectLogAgainstLogprint(t *testing.T) {
	img := dirtyImage(t, someFiles(t))
	var lg logJSON
	cliJSON(t, &lg, "inspect", img, "log")
	if lg.Clean || lg.Error != "" {
		t.Fatalf("log %+v", lg)
	}
	rec := regexp.MustCompile(`LOG REC AT LSN cycle (\d+) block (\d+)`)
	var want []int64
	tout := oracle.Run(t, "xfs_logprint", "-t", img)
	for _, m := range rec.FindAllStringSubmatch(tout, -1) {
		b, _ := strconv.ParseInt(m[2], 10, 64)
		want = append(want, b)
	}
	var got []int64
	for _, r := range lg.Records {
		got = append(got, r.Block)
		if !r.CRCOK || r.Ops == 0 {
			t.Errorf("record %+v", r)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records at %v, xfs_logprint finds %v", got, want)
	}
	// Transactions and item counts as xfs_logprint -t shows them.
	trans := regexp.MustCompile(`TRANS: tid:0x([0-9a-f]+)`).FindAllStringSubmatch(tout, -1)
	var tids []string
	counts := map[string]int{}
	for _, tx := range lg.Transactions {
		if tx.Committed {
			tids = append(tids, strings.TrimPrefix(tx.Tid, "0x"))
		}
		for _, it := range tx.Items {
			counts[it.Type]++
		}
	}
	var wantTids []string
	for _, m := range trans {
		wantTids = append(wantTids, fmt.Sprintf("%08s", m[1]))
	}
	if fmt.Sprint(tids) != fmt.Sprint(wantTids) {
		t.Errorf("transactions %v, xfs_logprint -t shows %v", tids, wantTids)
	}
	for typ, prefix := range map[string]string{"BUF": "BUF:", "INODE": "INO:", "ICREATE": "ICR:"} {
		if n := len(regexp.MustCompile(`(?m)^`+prefix+` `).FindAllString(tout, -1)); n != counts[typ] {
			t.Errorf("%d %s items, xfs_logprint -t shows %d", counts[typ], typ, n)
		}
	}
	// Human output names the records and items.
	out := mustCLI(t, "inspect", img, "log")
	for _, w := range []string{"state        dirty", "BLOCK  LSN", "transaction 0x", "INODE   ino", "BUF     daddr"} {
		if !strings.Contains(out, w) {
			t.Errorf("inspect log output lacks %q:\n%s", w, out[:min(len(out), 2000)])
		}
	}
	// --all lists the mkfs record at block 0 too.
	var all logJSON
	cliJSON(t, &all, "inspect", img, "log", "--all")
	if len(all.Records) < len(lg.Records)+1 || all.Records[0].Block != 0 {
		t.Fatalf("--all found %d records, first %+v", len(all.Records), all.Records[0])
	}
}

// TestRecoverFreesCowLeftovers: the kernel crashes with copy-on-write
// staging extents on disk (a reflinked file overwritten and fsync'd: the
// COW fork's extent-size preallocation is staged past what was written).
// The kernel frees them when it recovers the log; xfsimg recover must
// leave the same file system: repair clean (no leftover CoW extents), the
// same free space, the same refcount records and file bytes.
func TestRecoverFreesCowLeftovers(t *testing.T) {
	img := dirtyImage(t, func(mnt string) {
		f0, f1 := filepath.Join(mnt, "f0"), filepath.Join(mnt, "f1")
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite -q -S 0x11 0 1m", "-c", "fsync", f0)
		oracle.Run(t, "cp", "--reflink=always", f0, f1)
		for _, off := range []string{"8k", "300k", "700k"} {
			oracle.Run(t, "xfs_io", "-c", "pwrite -q -S 0x22 "+off+" 4k", "-c", "fsync", f0)
		}
	})
	kimg := filepath.Join(t.TempDir(), "kernel.img")
	oracle.Run(t, "cp", "--sparse=always", img, kimg)
	// The kernel's recovery, on the copy.
	mnt, _ := oracle.Mount(t, kimg)
	want := map[string]string{}
	for _, n := range []string{"f0", "f1"} {
		want[n] = fileSHA(t, filepath.Join(mnt, n))
	}
	oracle.Unmount(t, mnt)

	var rep recoverJSON
	cliJSON(t, &rep, "recover", img)
	if rep.CowFreed == nil || rep.CowFreed.Extents == 0 || rep.CowFreed.Blocks == 0 {
		t.Fatalf("recover freed no COW leftovers: %+v", rep.CowFreed)
	}
	t.Logf("freed %d staging extents, %d blocks; fdblocks %d -> %d", rep.CowFreed.Extents, rep.CowFreed.Blocks,
		rep.Counters.FDBlocks.Before, rep.Counters.FDBlocks.After)
	oracle.RequireRepairClean(t, img)
	var lg logJSON
	cliJSON(t, &lg, "inspect", img, "log")
	if !lg.Clean || lg.HeadBlock != rep.NewHead.Block || lg.HeadCycle != rep.NewHead.Cycle {
		t.Fatalf("after recover the log is %+v, want clean at %v", lg, rep.NewHead)
	}
	for agno := range 4 {
		a := oracle.Run(t, "xfs_db", "-r", "-c", fmt.Sprintf("agf %d", agno), "-c", "p freeblks", "-c", "p refcntblocks", img)
		b := oracle.Run(t, "xfs_db", "-r", "-c", fmt.Sprintf("agf %d", agno), "-c", "p freeblks", "-c", "p refcntblocks", kimg)
		if a != b {
			t.Errorf("agf %d: xfsimg recover left %q, the kernel %q", agno, a, b)
		}
		ra := oracle.Run(t, "xfs_db", "-r", "-c", fmt.Sprintf("agf %d", agno), "-c", "addr refcntroot", "-c", "p", img)
		rb := oracle.Run(t, "xfs_db", "-r", "-c", fmt.Sprintf("agf %d", agno), "-c", "addr refcntroot", "-c", "p", kimg)
		if recs(ra) != recs(rb) {
			t.Errorf("agf %d refcount records: xfsimg recover left\n%s\nthe kernel\n%s", agno, recs(ra), recs(rb))
		}
	}
	mnt, _ = oracle.Mount(t, img)
	for n, sum := range want {
		if got := fileSHA(t, filepath.Join(mnt, n)); got != sum {
			t.Errorf("%s: different bytes after xfsimg recover", n)
		}
	}
	oracle.Unmount(t, mnt)
}

// recs keeps the record lines of an xfs_db print of a btree block (the
// header holds the LSN, which differs).
func recs(p string) string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if strings.HasPrefix(l, "recs[") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
