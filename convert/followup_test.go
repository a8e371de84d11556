package convert

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/internal/crashcheck"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
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
	dir, _ := oracle.Mount(t, img)
	// Eight written extents near the inode, in AG 0.
	args := []string{"-f"}
	for i := 0; i < 8; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q %d 64k", i*2<<20))
	}
	oracle.Run(t, "xfs_io", append(args, "-c", "fsync", filepath.Join(dir, "f"))...)
	oracle.Unmount(t, dir)
	base, dev, rec := crashcheck.Record(t, img)
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
			for _, by := range []string{crashcheck.Kernel, crashcheck.Xfsimg} {
				crashcheck.Build(t, rec, base, work, k, func(int) bool { return keepAll }, nil)
				crashcheck.Recover(t, work, by, fmt.Sprintf("crash after flush %d (pending writes kept: %v), recovered by %s", k, keepAll, by), nil)
			}
		}
	}
	t.Logf("%d crash points around 4 follow-up frees, each recovered clean by the kernel and by xfsimg", rec.Flushes()+1)
}
