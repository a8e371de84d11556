package convert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/internal/crashdev"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// TestFollowUpFrees: a transaction that allocated in a high AG cannot then
// take a lower AG's header to free there (the allocator keeps the kernel's
// lock order). Such frees go into a second transaction, and both must
// reach the log in one checkpoint: a crash at any point of the session
// leaves, after recovery by the kernel and by xfsimg, an image that
// xfs_repair -n and xfsimg check accept — the unmapped blocks are never
// both unmapped and still allocated (a leak, which only check sees), nor
// free and still mapped.
func TestFollowUpFrees(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, 512<<20, "-d", "agcount=4")
	dir := t.TempDir()
	if out, err := oracle.RunErr("mount", "-o", "loop", img, dir); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	// Eight written extents near the inode, in AG 0.
	args := []string{"-f"}
	for i := 0; i < 8; i++ {
		args = append(args, "-c", "pwrite -q "+itoa(int64(i)*2<<20)+" 64k")
	}
	oracle.Run(t, "xfs_io", append(args, "-c", "fsync", filepath.Join(dir, "f"))...)
	oracle.Run(t, "umount", dir)
	for strings.TrimSpace(oracle.Run(t, "losetup", "-j", img)) != "" {
	}
	base := filepath.Join(t.TempDir(), "base.img")
	oracle.Run(t, "cp", "--sparse=always", img, base)

	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := crashdev.Wrap(dev)
	s, err := Open(rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ino, err := s.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	g := s.Geometry()
	for round := 0; round < 4; round++ {
		tr, err := s.begin(ino, 64)
		if err != nil {
			t.Fatal(err)
		}
		// Map a block from AG 3 at the end of the file: AG 3 is now held.
		fsb, n, err := tr.al.Alloc(agf.Request{Target: g.FSB(3, 1000), MinLen: 1, MaxLen: 1, Align: 1})
		if err != nil || g.FSBAgno(fsb) != 3 {
			t.Fatalf("alloc in AG 3: %d %d %v", fsb, n, err)
		}
		if err := tr.f.Insert(ondisk.Extent{StartOff: uint64(100+round) << 10, StartBlock: fsb, BlockCount: 1}); err != nil {
			t.Fatal(err)
		}
		// Unmap one of the AG 0 extents: its free has to wait.
		pieces, err := tr.f.Remove(uint64(round)*(2<<20)/uint64(g.BlockSize), 16)
		if err != nil || len(pieces) != 1 || g.FSBAgno(pieces[0].StartBlock) != 0 {
			t.Fatalf("remove: %v %v", pieces, err)
		}
		if err := tr.free(pieces); err != nil {
			t.Fatal(err)
		}
		if err := tr.commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if st := s.Stats(); st.FollowUps != 4 {
		t.Fatalf("%d follow-up transactions, want 4", st.FollowUps)
	}
	oracle.RequireRepairClean(t, img)

	work := filepath.Join(t.TempDir(), "crash.img")
	for k := 0; k <= rec.Flushes(); k++ {
		for _, keepAll := range []bool{false, true} {
			for _, by := range []string{"kernel", "xfsimg"} {
				oracle.Run(t, "cp", "--sparse=always", base, work)
				f, err := os.OpenFile(work, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				err = rec.ApplyCrash(f, k, func(int) bool { return keepAll }, nil)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				if by == "kernel" {
					if out, err := oracle.RunErr("mount", "-o", "loop", work, dir); err != nil {
						t.Fatalf("flush %d: mount: %v: %s", k, err, out)
					}
					oracle.Run(t, "umount", dir)
					for strings.TrimSpace(oracle.Run(t, "losetup", "-j", work)) != "" {
					}
				} else {
					d, err := ondisk.Open(work, ondisk.OpenOptions{Write: true, NoWait: true})
					if err != nil {
						t.Fatal(err)
					}
					_, err = log.Recover(d, log.RecoverOptions{})
					d.Close()
					if err != nil {
						t.Fatalf("flush %d: recover: %v", k, err)
					}
				}
				if out, ok := oracle.Repair(t, work); !ok {
					t.Fatalf("crash after flush %d (pending writes kept: %v), recovered by %s: xfs_repair -n:\n%s", k, keepAll, by, out)
				}
				// xfs_repair -n skips its free space rebuild: a block
				// neither free nor owned is for xfsimg check to find.
				if rep := checkImage(t, work); !rep.Clean() {
					t.Fatalf("crash after flush %d (pending writes kept: %v), recovered by %s: xfsimg check: %s\n%v",
						k, keepAll, by, rep.Summary(), rep.Findings)
				}
			}
		}
	}
	t.Logf("%d crash points around 4 follow-up frees, each recovered clean by the kernel and by xfsimg", rec.Flushes()+1)
}

func checkImage(t *testing.T, img string) *check.Report {
	t.Helper()
	f, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := check.Run(f, check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func itoa(v int64) string {
	b := []byte{}
	if v == 0 {
		return "0"
	}
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}
