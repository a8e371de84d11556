package main

import (
	"testing"

	"github.com/xfsimg/xfsimg/internal/journaltest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

var _ xfs.MetaReader = (*log.Journal)(nil)
var _ xfs.MetaReader = (*log.Tx)(nil)

// The read path over the journal's buffer cache sees committed changes that
// are not on disk yet; over the device it does not.
func TestReadPathOverJournal(t *testing.T) {
	img := oracle.Mkfs(t, 512<<20)
	dev, f, j := journaltest.Open(t, img, log.Options{})
	root := f.SB.RootIno
	loc := f.Geo.LocateInode(root)
	tx, err := j.Begin(log.Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, log.BufDino)
	if err != nil {
		t.Fatal(err)
	}
	ip := cl.Data[loc.Offset : loc.Offset+f.Geo.InodeSize]
	d, err := ondisk.DecodeDinode(ip)
	if err != nil {
		t.Fatal(err)
	}
	d.Mtime = ondisk.Timestamp{Sec: 1234567890}
	d.Encode(ip)
	tx.LogInode(root, log.ILogCore)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	plain, _ := xfs.New(dev)
	if ino, err := plain.Inode(root); err != nil || ino.Core.Mtime.Sec == 1234567890 {
		t.Fatalf("device read sees the uncheckpointed change (%v)", err)
	}
	f.SetMetaReader(j)
	ino, err := f.Inode(root)
	if err != nil {
		t.Fatal(err)
	}
	if ino.Core.Mtime.Sec != 1234567890 {
		t.Fatalf("read path over the journal: mtime %d", ino.Core.Mtime.Sec)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := xfs.New(dev)
	if ino, err := after.Inode(root); err != nil || ino.Core.Mtime.Sec != 1234567890 {
		t.Fatalf("after Close the device does not have the change (%v)", err)
	}
	dev.Close()
	oracle.RequireRepairClean(t, img)
}
