package convert_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/crashdev"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// enospcSession opens the engine over a fresh ~300 MiB image with empty
// files f0..f2, through a recorder that counts device writes.
func enospcSession(t *testing.T) (img string, s *convert.Session, rec *crashdev.Recorder, inos [3]uint64, done func()) {
	t.Helper()
	img = workloadImage(t, workload{files: 3, size: 300 << 20})
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	rec = crashdev.Wrap(dev)
	s, err = convert.Open(rec, convert.Options{DirtyLimit: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range inos {
		if inos[i], err = s.Lookup(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return img, s, rec, inos, func() { dev.Close() }
}

var availRe = regexp.MustCompile(`with (\d+) available`)

// noSpace makes a write that cannot fit and checks that it fails at once
// with ENOSPC, writing nothing, changing no reservation; it returns the
// blocks the error says are available.
func noSpace(t *testing.T, s *convert.Session, rec *crashdev.Recorder, ino uint64, off int64, data []byte) int64 {
	t.Helper()
	ops, dl, bw := len(rec.Ops()), s.Journal().Delalloc(), s.Stats().BytesWritten
	t0 := time.Now()
	err := s.Write(ino, off, data)
	took := time.Since(t0)
	if !errors.Is(err, ondisk.ErrNoSpace) {
		t.Fatalf("pwrite %d %d: %v, want ENOSPC", off, len(data), err)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("pwrite %d %d", off, len(data))) || strings.Contains(msg, "\n") {
		t.Errorf("unclear message: %q", msg)
	}
	// Before giving up the kernel writes back what is dirty (that frees
	// the worst-case BMBT reservations) and trims preallocation, then
	// retries: device writes of earlier data are allowed, and delayed
	// allocation may only shrink. Without dirty data nothing is written.
	if n := len(rec.Ops()) - ops; n != 0 && dl == 0 {
		t.Errorf("the failed pwrite issued %d device writes or flushes with nothing dirty", n)
	}
	if d := s.Journal().Delalloc(); d > dl {
		t.Errorf("the failed pwrite left delalloc %d, was %d", d, dl)
	}
	if b := s.Stats().BytesWritten; b != bw {
		t.Errorf("the failed pwrite wrote %d bytes into the page cache", b-bw)
	}
	if took > time.Second {
		t.Errorf("the failed pwrite took %v", took)
	}
	mm := availRe.FindStringSubmatch(msg)
	if mm == nil {
		t.Fatalf("message names no available count: %q", msg)
	}
	avail, _ := strconv.ParseInt(mm[1], 10, 64)
	t.Logf("%s (in %v)", msg, took)
	return avail
}

// finish closes the session and holds the image to the model: the kernel
// reads the same bytes, repair and check are clean.
// writeWant writes data at off through the session and into want, the
// file's bytes as they must read back.
func writeWant(t *testing.T, s *convert.Session, ino uint64, want *[]byte, off int64, data []byte) {
	t.Helper()
	if err := s.Write(ino, off, data); err != nil {
		t.Fatalf("pwrite inode %d %d %d: %v", ino, off, len(data), err)
	}
	if end := off + int64(len(data)); end > int64(len(*want)) {
		*want = append(*want, make([]byte, end-int64(len(*want)))...)
	}
	copy((*want)[off:], data)
}

func finish(t *testing.T, img string, s *convert.Session, done func(), want [3][]byte) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := s.Journal().Delalloc(); d != 0 {
		t.Errorf("delalloc %d after close", d)
	}
	done()
	oracle.RequireRepairClean(t, img)
	checktest.RequireClean(t, img)
	mnt, umount := mountLoop(t, img, "ro")
	defer umount()
	for i, w := range want {
		b, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, w) {
			t.Errorf("f%d: the kernel reads %d bytes, not the %d written", i, len(b), len(w))
		}
	}
}

func randBytes(r *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestEngineNoSpace: on a small image, writes that fit succeed; a pwrite
// that does not fails at once with ENOSPC, before any of its data is
// written and with nothing reserved; what was written before is intact
// after close, the kernel reads it, repair and check are clean, and no
// delayed allocation is left.
func TestEngineNoSpace(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img, s, rec, inos, done := enospcSession(t)
	r := rand.New(rand.NewPCG(1, 2))
	var want [3][]byte
	write := func(f int, off int64, data []byte) {
		t.Helper()
		writeWant(t, s, inos[f], &want[f], off, data)
	}
	free := s.Journal().FreeBlocks() * int64(s.Geometry().BlockSize)
	t.Logf("free: %d MiB", free>>20)
	// Writes that fit: sequential, unaligned, an fsync between.
	write(0, 0, randBytes(r, 40<<20))
	write(1, 1000, randBytes(r, 30<<20+77))
	if err := s.Fsync(inos[1]); err != nil {
		t.Fatal(err)
	}
	write(2, 5<<20, randBytes(r, 20<<20))
	// Too big by far, then by little: the second is sized from the
	// count the first reports.
	avail := noSpace(t, s, rec, inos[0], int64(len(want[0])), make([]byte, free))
	bs := int64(s.Geometry().BlockSize)
	noSpace(t, s, rec, inos[0], int64(len(want[0])), make([]byte, (avail+1)*bs))
	// Over a hole that fits, written blocks and one that does not: the
	// first hole's reservation is given back.
	noSpace(t, s, rec, inos[2], 0, make([]byte, 25<<20+avail*bs))
	// The same through a script: one write(2) of 200 MiB, refused whole,
	// the message naming the command.
	c, err := convert.ParseCommand(fmt.Sprintf("pwrite -b 200m %d 200m", len(want[0])), 7, bs, 512)
	if err != nil {
		t.Fatal(err)
	}
	ops, bw := len(rec.Ops()), s.Stats().BytesWritten
	err = s.Run(inos[0], c)
	if !errors.Is(err, ondisk.ErrNoSpace) || !strings.HasPrefix(err.Error(), "line 7: pwrite -b 200m") || strings.Contains(err.Error(), "\n") {
		t.Errorf("script pwrite: %v", err)
	}
	if len(rec.Ops()) != ops || s.Stats().BytesWritten != bw {
		t.Errorf("the refused script pwrite wrote")
	}
	t.Log(err)
	// Overwrites of written or delayed blocks need no space.
	write(0, 4096, randBytes(r, 1<<20))
	write(2, 5<<20+3, randBytes(r, 100000))
	finish(t, img, s, done, want)
}

// TestEngineNoSpacePrealloc: an extending write on a nearly full file
// system whose speculative preallocation does not fit, though its data
// does: the reservation is retried without the preallocation and the
// write succeeds.
func TestEngineNoSpacePrealloc(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img, s, rec, inos, done := enospcSession(t)
	r := rand.New(rand.NewPCG(3, 4))
	bs := int64(s.Geometry().BlockSize)
	var want [3][]byte
	write := func(f int, off int64, data []byte) {
		t.Helper()
		writeWant(t, s, inos[f], &want[f], off, data)
	}
	// f0: 1 MiB on disk, one extent: an extending write gets
	// speculative preallocation past it.
	write(0, 0, randBytes(r, 1<<20))
	if err := s.Fsync(inos[0]); err != nil {
		t.Fatal(err)
	}
	free := make([]byte, s.Journal().FreeBlocks()*bs)
	avail := noSpace(t, s, rec, inos[1], 0, free)
	// Fill f1 (small: no preallocation of its own) to leave ~400 blocks.
	write(1, 0, randBytes(r, (avail-400)*bs))
	avail = noSpace(t, s, rec, inos[1], int64(len(want[1])), free)
	// The write: n blocks ending 100 bytes short of a block just past a
	// 64 KiB boundary, so that the preallocation (at least 64 KiB,
	// aligned) reaches 15 blocks past it.
	n := avail - 30
	for (256+n)%16 != 1 {
		n--
	}
	// Fill f2 one block at a time until the write's data and its
	// indirect blocks fit, but not 15 more.
	for avail > n+12 {
		write(2, int64(len(want[2])), randBytes(r, bs))
		avail = noSpace(t, s, rec, inos[2], int64(len(want[2])), free)
	}
	dl := s.Journal().Delalloc()
	write(0, 1<<20, randBytes(r, n*bs-100))
	used := s.Journal().Delalloc() - dl
	left := noSpace(t, s, rec, inos[2], int64(len(want[2])), free)
	t.Logf("%d blocks available; a %d-block extending write reserved %d, leaving %d", avail, n, used, left)
	if used < n || used >= n+15 {
		t.Errorf("the write reserved %d blocks for %d blocks of data: the preallocation was kept or the data not reserved", used, n)
	}
	finish(t, img, s, done, want)
}
