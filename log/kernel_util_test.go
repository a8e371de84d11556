package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Helpers for tests that hold the journal's output to the kernel and
// xfsprogs.

// readSuperblock reads and verifies the primary superblock of dev.
func readSuperblock(t testing.TB, dev ondisk.Storage) (*ondisk.Superblock, *ondisk.Geometry) {
	t.Helper()
	sb, err := ondisk.ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	return sb, ondisk.NewGeometry(sb)
}

// openJournal opens the image for writing and the journal on it; the
// device is closed when the test ends.
func openJournal(t testing.TB, img string, opt Options) (*ondisk.Device, *Journal) {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	sb, g := readSuperblock(t, dev)
	j, err := Open(dev, sb, g, opt)
	if err != nil {
		t.Fatal(err)
	}
	return dev, j
}

// dmesgLines returns the kernel log as lines.
func dmesgLines() []string {
	out, _ := exec.Command("dmesg").Output()
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// mountResult is what one mount of an image showed.
type mountResult struct {
	dmesg []string // kernel lines about this mount's loop device
	err   error
}

// mountImage attaches img to a loop device, mounts it, runs fn on the
// mount point, unmounts and detaches, and returns the kernel's messages
// about the device. Unlike oracle.Mount it releases everything before
// returning, so that loops can mount hundreds of images.
func mountImage(img string, fn func(dir string) error) (dmesg []string, err error) {
	prev := dmesgLines()
	last := prev[len(prev)-1] // the ring buffer may be full: find this line again
	loopOut, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %v: %s", img, err, loopOut)
	}
	loop := strings.TrimSpace(string(loopOut))
	defer func() {
		if derr := oracle.DetachErr(loop); derr != nil && err == nil {
			err = derr
		}
		name := "(" + filepath.Base(loop) + ")"
		lines := dmesgLines()
		from := 0
		for i := len(lines) - 1; i >= 0; i-- {
			if lines[i] == last {
				from = i + 1
				break
			}
		}
		for _, l := range lines[from:] {
			if strings.Contains(l, name) {
				dmesg = append(dmesg, l)
			}
		}
	}()
	dir, err := os.MkdirTemp("", "jwmnt")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	if out, err := exec.Command("mount", "-t", "xfs", loop, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount %s: %v: %s", img, err, out)
	}
	var ferr error
	if fn != nil {
		ferr = fn(dir)
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("umount %s: %v: %s", dir, err, out)
	}
	return nil, ferr
}

// kmount is mountImage for a test: fn may call t.Fatal; a failed mount is
// returned in the result, any other failure fails the test.
func kmount(t testing.TB, img string, fn func(dir string)) mountResult {
	t.Helper()
	oracle.Require(t, oracle.Loop)
	dmesg, err := mountImage(img, func(dir string) error {
		if fn != nil {
			fn(dir)
		}
		return nil
	})
	if err != nil && !strings.HasPrefix(err.Error(), "mount ") {
		t.Fatal(err)
	}
	return mountResult{dmesg: dmesg, err: err}
}

func hasLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// fsFiles are the files populate makes, one per fork format the journal
// logs inode items for.
type fsFiles struct {
	root, ext, frag, xattr, link, dev uint64
}

func (f fsFiles) all() []uint64 { return []uint64{f.root, f.ext, f.frag, f.xattr, f.link, f.dev} }

// populate fills a fresh image through the kernel: an extents file, a BMBT
// file, a file with a shortform xattr, a symlink and a device node.
func populate(t testing.TB, img string) fsFiles {
	t.Helper()
	var files fsFiles
	res := kmount(t, img, func(dir string) {
		p := func(n string) string { return filepath.Join(dir, n) }
		oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 4k", "-c", "pwrite 1m 4k", "-c", "pwrite 2m 4k", "-c", "fsync", p("ext"))
		args := []string{"-f"}
		for i := 0; i < 40; i++ {
			args = append(args, "-c", fmt.Sprintf("pwrite %d 4k", i*8192))
		}
		oracle.Run(t, "xfs_io", append(args, "-c", "fsync", p("frag"))...)
		if err := os.WriteFile(p("xattr"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setxattr(p("xattr"), "user.test", []byte("value"), 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("target", p("link")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mknod(p("dev"), syscall.S_IFCHR|0o600, 0x0801); err != nil {
			t.Fatal(err)
		}
		ino := func(n string) uint64 {
			var st syscall.Stat_t
			if err := syscall.Lstat(p(n), &st); err != nil {
				t.Fatal(err)
			}
			return st.Ino
		}
		files = fsFiles{ino("."), ino("ext"), ino("frag"), ino("xattr"), ino("link"), ino("dev")}
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	return files
}

// forkFlags are the ILog flags that log every fork of an inode as it is.
func forkFlags(d *ondisk.Dinode) uint32 {
	var f uint32
	switch d.Format {
	case ondisk.FmtLocal:
		f |= ILogDData
	case ondisk.FmtExtents:
		f |= ILogDExt
	case ondisk.FmtBtree:
		f |= ILogDBroot
	case ondisk.FmtDev:
		f |= ILogDev
	}
	if d.ForkOff != 0 {
		switch d.AFormat {
		case ondisk.FmtLocal:
			f |= ILogAData
		case ondisk.FmtExtents:
			f |= ILogAExt
		case ondisk.FmtBtree:
			f |= ILogABroot
		}
	}
	return f
}

// stampBase is the mtime second the session gives inodes at checkpoint 0.
const stampBase = 1_700_000_000

// setMtime sets an inode's mtime in a transaction and logs it with every
// fork, so that each fork format goes through the log.
func setMtime(t testing.TB, tx *Tx, ino uint64, sec int64) {
	t.Helper()
	g := tx.j.g
	loc := g.LocateInode(ino)
	cl, err := tx.ReadBuf(loc.ClusterDaddr, loc.ClusterLen, BufDino)
	if err != nil {
		t.Fatal(err)
	}
	ip := cl.Data[loc.Offset : loc.Offset+g.InodeSize]
	d, err := ondisk.DecodeDinode(ip)
	if err != nil {
		t.Fatal(err)
	}
	d.Mtime = ondisk.Timestamp{Sec: sec}
	d.Encode(ip)
	tx.LogInode(ino, forkFlags(d))
}

// setLabelTx changes the label in a transaction of its own (no checkpoint).
func setLabelTx(t testing.TB, j *Journal, label string) {
	t.Helper()
	tx, err := j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.ReadBuf(0, int(j.sb.SectSize), BufSB)
	if err != nil {
		t.Fatal(err)
	}
	clear(b.Data[sbFNameOff : sbFNameOff+LabelMax])
	copy(b.Data[sbFNameOff:], label)
	tx.LogBuf(b, sbFNameOff, LabelMax)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// bumpAGF adds delta to agf_freeblks and agf_longest... only freeblks is
// touched, and every bump is undone in the same checkpoint, so that the
// logged state stays consistent while transactions in between see it.
func bumpAGF(t testing.TB, j *Journal, ag uint32, delta int32) {
	t.Helper()
	tx, err := j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.ReadBuf(j.g.AGFDaddr(ag), j.g.SectSize, BufAGF)
	if err != nil {
		t.Fatal(err)
	}
	v := binary.BigEndian.Uint32(b.Data[agfFreeOff:])
	binary.BigEndian.PutUint32(b.Data[agfFreeOff:], uint32(int32(v)+delta))
	tx.LogBuf(b, agfFreeOff, 4)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// relogRoots logs, unchanged and whole, the free space and inode btree
// root blocks of an AG: volume for the log, and buffer items of every
// btree type for the kernel to replay.
func relogRoots(t testing.TB, j *Journal, ag uint32) {
	t.Helper()
	g := j.g
	tx, err := j.Begin(Reservation{})
	if err != nil {
		t.Fatal(err)
	}
	agfb, err := tx.ReadBuf(g.AGFDaddr(ag), g.SectSize, BufAGF)
	if err != nil {
		t.Fatal(err)
	}
	agib, err := tx.ReadBuf(g.AGIDaddr(ag), g.SectSize, BufAGI)
	if err != nil {
		t.Fatal(err)
	}
	agf, _ := ondisk.DecodeAGF(agfb.Data)
	agi, _ := ondisk.DecodeAGI(agib.Data)
	roots := []uint32{agf.BnoRoot, agf.CntRoot, agi.Root}
	if agi.FreeRoot != 0 {
		roots = append(roots, agi.FreeRoot)
	}
	for _, r := range roots {
		b, err := tx.ReadBuf(g.AGBDaddr(ag, r), g.BlockSize, BufBtree)
		if err != nil {
			t.Fatal(err)
		}
		tx.LogBuf(b, 0, len(b.Data))
	}
	tx.LogBuf(agib, 0, len(agib.Data))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// session runs checkpoints from..to of synthetic but consistent work: each
// checkpoint k sets the label to labelOf(k) and every file's mtime to
// stampBase+k, bumps an AGF counter up and back down, and relogs the
// btree roots of every AG. before is called before each checkpoint.
func session(t testing.TB, j *Journal, files fsFiles, from, to int, before func(k int)) {
	t.Helper()
	for k := from; k <= to; k++ {
		ag := uint32(k) % j.g.AGCount
		setLabelTx(t, j, labelOf(k))
		bumpAGF(t, j, ag, 1)
		for _, ino := range files.all() {
			tx, err := j.Begin(Reservation{})
			if err != nil {
				t.Fatal(err)
			}
			setMtime(t, tx, ino, stampBase+int64(k))
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		for a := uint32(0); a < j.g.AGCount; a++ {
			relogRoots(t, j, a)
		}
		bumpAGF(t, j, ag, -1)
		if before != nil {
			before(k)
		}
		if err := j.Checkpoint(); err != nil {
			if before != nil {
				return // a hook stopped it
			}
			t.Fatal(err)
		}
	}
}

func labelOf(k int) string { return fmt.Sprintf("ck%06d", k) }

// imageState reads the checkpoint number the label says the image is at
// (-1 if it is not one of ours, 0 if empty) and each file's mtime.
func imageState(t testing.TB, img string, files fsFiles) (label int, mtimes []int64) {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := readSuperblock(t, dev)
	dev.Close()
	name := string(bytes.TrimRight(sb.FName[:], "\x00"))
	label = -1
	if name == "" {
		label = 0
	} else if n, err := strconv.Atoi(strings.TrimPrefix(name, "ck")); err == nil && strings.HasPrefix(name, "ck") {
		label = n
	}
	for _, ino := range files.all() {
		mtimes = append(mtimes, inodeMtime(t, img, ino))
	}
	return label, mtimes
}

// inodeMtime reads an inode's mtime seconds straight from the image.
func inodeMtime(t testing.TB, img string, ino uint64) int64 {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_, g := readSuperblock(t, dev)
	loc := g.LocateInode(ino)
	buf := make([]byte, g.InodeSize)
	if _, err := dev.ReadAt(buf, loc.ClusterDaddr<<9+int64(loc.Offset)); err != nil {
		t.Fatal(err)
	}
	d, err := ondisk.DecodeDinode(buf)
	if err != nil {
		t.Fatal(err)
	}
	return d.Mtime.Sec
}

// copySparse copies a sparse file, skipping its holes.
func copySparse(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(st.Size()); err != nil {
		t.Fatal(err)
	}
	const seekData, seekHole = 3, 4
	fd := int(in.Fd())
	buf := make([]byte, 1<<20)
	for off := int64(0); off < st.Size(); {
		data, err := syscall.Seek(fd, off, seekData)
		if err != nil {
			break // no more data
		}
		hole, err := syscall.Seek(fd, data, seekHole)
		if err != nil {
			t.Fatal(err)
		}
		for p := data; p < hole; {
			n := min(int64(len(buf)), hole-p)
			if _, err := in.ReadAt(buf[:n], p); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], make([]byte, n)) {
				if _, err := out.WriteAt(buf[:n], p); err != nil {
					t.Fatal(err)
				}
			}
			p += n
		}
		off = hole
	}
}
