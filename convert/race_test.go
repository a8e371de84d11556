package convert

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// The race, shown: the writeback races of the delalloc-conversion notes
// (§5), forced in a fixed order by parking writeback at its hook points,
// and run twice: with the pre-2019 kernel's writeback (legacyMapper), which
// must fail the oracles, and with the engine's, which must pass them.

// legacyMapper is xfs_map_blocks with xfs_iomap_write_allocate as they
// were before 2019 (§1.1): a cached mapping is trusted whenever it covers
// the block (no sequence number); a delayed extent is converted over the
// range the cached, unlocked lookup returned, in a loop of one-mapping
// xfs_bmapi_write calls, each over whatever the fork holds now at the
// loop's position: a delayed extent is allocated whole, a real extent is
// returned as it is, and a hole is allocated too (up to the next extent, or
// the whole remaining count at EOF), with no reservation behind it.
// Allocations are written extents, as they were before delayed extents
// became unwritten. There is no EOF clamp.
type legacyMapper struct{}

func (legacyMapper) mapBlock(s *Session, ip *inode, ctx *wbCtx, blk uint64) (mapping, error) {
	if ctx.valid && ctx.m.covers(blk) {
		return ctx.m, nil
	}
	ctx.valid = false
	ip.ilock.RLock()
	if c, ok, _ := ip.cow.lookup(blk); ok {
		ip.ilock.RUnlock()
		return legacyMapCow(s, ip, ctx, blk, c)
	}
	m, err := s.lookup(ip, blk)
	ip.ilock.RUnlock()
	if err != nil {
		return mapping{}, err
	}
	if m.kind == mapDelalloc {
		s.hook(HookAfterLookup, ip.ino, blk)
		if m, err = legacyWriteAllocate(s, ip, blk, m); err != nil {
			return mapping{}, err
		}
	}
	ctx.m, ctx.valid = m, m.real()
	return m, nil
}

// legacyMapCow is the COW side of xfs_map_blocks before Darrick's 2020
// fix ("fix missing CoW blocks writeback conversion retry"): when the
// conversion finds the COW extent gone (-EAGAIN) it retries, but without
// resetting the fork it looks in, so it finds nothing again and the block
// is skipped as a hole: the write is lost.
func legacyMapCow(s *Session, ip *inode, ctx *wbCtx, blk uint64, c mapping) (mapping, error) {
	if c.kind == mapDelalloc {
		s.hook(HookAfterLookup, ip.ino, blk)
		var err error
		for try := 0; try < 2; try++ {
			if c, _, err = s.convertCow(ip, blk); !errors.Is(err, errCowGone) {
				break
			}
		}
		if errors.Is(err, errCowGone) {
			return mapping{}, errSkipBlock
		}
		if err != nil {
			return mapping{}, err
		}
	}
	ctx.m, ctx.valid = c, true
	return c, nil
}

// legacyWriteAllocate is xfs_iomap_write_allocate: the range comes from
// imap, the mapping looked up without the lock.
func legacyWriteAllocate(s *Session, ip *inode, blk uint64, imap mapping) (mapping, error) {
	start, count := imap.off, imap.len
	for count > 0 {
		ip.ilock.Lock()
		got, err := legacyBmapiWrite(s, ip, start, count)
		ip.ilock.Unlock()
		if err != nil {
			return mapping{}, err
		}
		if got.covers(blk) {
			return got, nil
		}
		if got.end() <= start {
			return mapping{}, fmt.Errorf("legacy: no progress at %d", start)
		}
		count -= min(count, got.end()-start)
		start = got.end()
		s.hook(HookAfterPartialAlloc, ip.ino, blk)
	}
	return mapping{}, fmt.Errorf("legacy: inode %d: block %d not mapped by its cached range %v", ip.ino, blk, imap)
}

// legacyBmapiWrite is xfs_bmapi_write with nimaps 1 and no flags at start.
// The caller holds ilock exclusively.
func legacyBmapiWrite(s *Session, ip *inode, start, count uint64) (mapping, error) {
	if d, ok := ip.del.find(start); ok {
		// wasdel: the whole delayed extent, from its start.
		t, err := s.beginRsvd(ip.ino)
		if err != nil {
			return mapping{}, err
		}
		if err := t.tx.TakeReserved(int64(d.len + d.indlen)); err != nil {
			t.cancel()
			return mapping{}, err
		}
		nb := t.f.Core().NBlocks
		e, err := t.allocHole(d.off, d.len)
		if err == nil {
			err = t.f.SetState(e.StartOff, e.BlockCount, false)
		}
		if err != nil {
			t.cancel()
			return mapping{}, err
		}
		used := t.f.Core().NBlocks - nb - e.BlockCount
		left := d.len - e.BlockCount
		var leftInd uint64
		if left > 0 {
			leftInd = min(s.worstIndlen(left), d.indlen-min(used, d.indlen))
		}
		if err := t.tx.ReturnReserved(int64(left + leftInd)); err != nil {
			t.cancel()
			return mapping{}, err
		}
		if err := t.commit(); err != nil {
			return mapping{}, err
		}
		ip.del.del(d)
		if left > 0 {
			ip.del.put(dext{off: e.End(), len: left, indlen: leftInd})
		}
		ip.seq.Add(1)
		return mapping{off: e.StartOff, len: e.BlockCount, startBlock: e.StartBlock, kind: mapWritten}, nil
	}
	m, err := s.lookup(ip, start)
	if err != nil || m.real() {
		return m, err
	}
	// A hole: plain bmapi allocates it, up to the next extent, or the whole
	// count past the last one; the blocks come out of the free space, not
	// out of any reservation.
	length := count
	if m.end() != ondisk.MaxFileOff {
		length = min(length, m.end()-start)
	}
	res := int64(length) + int64(s.maxLevels)
	tx, err := s.j.Begin(log.Reservation{Blocks: res, Rsvd: true})
	if err != nil {
		return mapping{}, err
	}
	t, err := s.beginTx(tx, ip.ino, res)
	if err != nil {
		return mapping{}, err
	}
	e, err := t.allocHole(start, length)
	if err == nil {
		err = t.f.SetState(e.StartOff, e.BlockCount, false)
	}
	if err != nil {
		t.cancel()
		return mapping{}, err
	}
	if err := t.commit(); err != nil {
		return mapping{}, err
	}
	ip.seq.Add(1)
	return mapping{off: e.StartOff, len: e.BlockCount, startBlock: e.StartBlock, kind: mapWritten}, nil
}

// sched parks the writeback goroutine at one named hook point, once, so
// that the test script can run the racing operation and then release it.
type sched struct {
	mu      sync.Mutex
	point   string
	match   func(ino, blk uint64) bool
	armed   bool
	parked  chan struct{}
	release chan struct{}
}

func newSched() *sched {
	return &sched{parked: make(chan struct{}), release: make(chan struct{})}
}

func (sc *sched) hook(point string, ino, blk uint64) {
	sc.mu.Lock()
	hit := sc.armed && point == sc.point && sc.match(ino, blk)
	if hit {
		sc.armed = false
	}
	sc.mu.Unlock()
	if hit {
		sc.parked <- struct{}{}
		<-sc.release
	}
}

func (sc *sched) arm(point string, match func(ino, blk uint64) bool) {
	sc.mu.Lock()
	sc.point, sc.match, sc.armed = point, match, true
	sc.mu.Unlock()
}

// waitParked waits for the armed point to be reached, or for done (the
// goroutine that should have parked returned instead).
func (sc *sched) waitParked(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case <-sc.parked:
	case err := <-done:
		t.Fatalf("writeback returned (%v) without reaching %s", err, sc.point)
	case <-time.After(30 * time.Second):
		t.Fatalf("writeback never reached %s", sc.point)
	}
}

// raceEnv is one engine's run of a scenario on its own copy of the image.
type raceEnv struct {
	t     *testing.T
	img   string
	dev   *ondisk.Device
	s     *Session
	sc    *sched
	bs    int64
	files map[string]uint64
}

func openRace(t *testing.T, img string, legacy bool, names ...string) *raceEnv {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	sc := newSched()
	s, err := Open(dev, Options{Hook: sc.hook, Workers: 1})
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	if legacy {
		s.mapper = legacyMapper{}
	}
	e := &raceEnv{t: t, img: img, dev: dev, s: s, sc: sc, bs: int64(s.g.BlockSize), files: map[string]uint64{}}
	for _, n := range names {
		ino, err := s.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		e.files[n] = ino
	}
	return e
}

// close closes the session and the device and returns Close's error.
func (e *raceEnv) close() error {
	err := e.s.Close()
	if derr := e.dev.Close(); err == nil {
		err = derr
	}
	return err
}

// async runs fn in a goroutine and returns the channel its error comes on.
func async(fn func() error) chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

func fill(n int64, b byte) []byte { return bytes.Repeat([]byte{b}, int(n)) }

// raceImage makes a fresh image with the named files through the kernel,
// sparse, of the sizes given (on disk: a truncate that moves the in-core
// size below it needs no writeback first), after staining the free space: a file of 0xee bytes written and
// removed, so that blocks handed out again show stale data if read.
func raceImage(t *testing.T, size int64, mkfs []string, files map[string]int64) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, size, mkfs...)
	mnt, _ := oracle.Mount(t, img)
	stain := filepath.Join(mnt, "stain")
	oracle.Run(t, "xfs_io", "-f", "-c", "pwrite -q -S 0xee -b 1m 0 64m", "-c", "fsync", stain)
	if err := os.Remove(stain); err != nil {
		t.Fatal(err)
	}
	for f, sz := range files {
		if err := os.WriteFile(filepath.Join(mnt, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(mnt, f), sz); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Run(t, "sync")
	oracle.Unmount(t, mnt)
	return img
}

// verdict is what the oracles found on an image after a session.
type verdict struct {
	problems []string
}

func (v *verdict) add(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *verdict) clean() bool { return len(v.problems) == 0 }

func (v *verdict) String() string { return strings.Join(v.problems, "\n") }

// judge runs the oracles: the session's close, xfs_repair -n, xfsimg
// check, no real blocks past EOF of a file not flagged preallocated, and
// the bytes the kernel reads (want: file name to contents; a byte func
// may be given instead for a file whose exact contents are free in part).
func judge(t *testing.T, img string, closeErr error, want map[string][]byte) *verdict {
	t.Helper()
	v := &verdict{}
	if closeErr != nil {
		v.add("session close: %v", closeErr)
	}
	if out, ok := oracle.Repair(t, img); !ok {
		v.add("xfs_repair -n: %s", firstLines(out, 6))
	}
	if rep := checktest.Run(t, img); !rep.Clean() {
		v.add("xfsimg check: %s: %v", rep.Summary(), firstN(rep.Findings, 4))
	}
	if f, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true}); err != nil {
		v.add("open: %v", err)
	} else {
		for name := range want {
			ip, err := f.Lookup("/"+name, true)
			if err != nil {
				v.add("%s: %v", name, err)
				continue
			}
			exts, err := ip.Extents(bmbt.DataFork)
			if err != nil {
				v.add("%s: extents: %v", name, err)
				continue
			}
			eof := (uint64(ip.Core.Size) + uint64(f.Geo.BlockSize) - 1) / uint64(f.Geo.BlockSize)
			for _, x := range exts {
				if x.End() > eof && ip.Core.Flags&ondisk.DiFlagPrealloc == 0 {
					v.add("%s: real blocks past EOF: file blocks [%d,+%d) with EOF at block %d", name, x.StartOff, x.BlockCount, eof)
				}
			}
		}
		f.Close()
	}
	mnt, _ := oracle.Mount(t, img, "ro")
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil {
			v.add("%s: kernel read: %v", name, err)
			continue
		}
		if !bytes.Equal(got, w) {
			v.add("%s: the kernel reads other bytes: %s", name, diffAt(got, w))
		}
	}
	oracle.Unmount(t, mnt)
	return v
}

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = append(l[:n], "...")
	}
	return strings.Join(l, " | ")
}

func firstN[T any](x []T, n int) []T {
	if len(x) > n {
		return x[:n]
	}
	return x
}

func diffAt(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("size %d, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("byte %d (file block %d) is 0x%02x, want 0x%02x", i, i/4096, got[i], want[i])
		}
	}
	return "equal"
}

// bothWays runs a scenario with the legacy engine and with the engine's
// own, each on a copy of the image, and holds the legacy run to failing
// the oracles and the engine's to passing them.
func bothWays(t *testing.T, img string, run func(t *testing.T, img string, legacy bool) *verdict) {
	for _, legacy := range []bool{true, false} {
		name := map[bool]string{true: "legacy", false: "fixed"}[legacy]
		t.Run(name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "fs.img")
			oracle.Run(t, "cp", "--sparse=always", img, cp)
			v := run(t, cp, legacy)
			switch {
			case legacy && v.clean():
				t.Fatalf("the legacy engine passed every oracle: the scenario does not show the race")
			case legacy:
				t.Logf("legacy engine fails the oracles, as it must:\n%s", v)
			case !v.clean():
				t.Fatalf("the engine fails the oracles:\n%s", v)
			}
		})
	}
}

// TestRaceStaleRealMapping is scenario 2: file blocks [0,64) are converted
// and the mapping cached; between pages the file is truncated to 8 blocks,
// [8,64) written again (new delayed extents), and another file allocates
// the freed blocks. The legacy writeback goes on with its cached mapping
// and writes pages 8-63 over the other file; the engine sees the fork's
// sequence number moved, looks the block up again and converts the new
// delayed extent.
func TestRaceStaleRealMapping(t *testing.T) {
	img := raceImage(t, 512<<20, nil, map[string]int64{"f0": 256 << 10, "f1": 0})
	bothWays(t, img, func(t *testing.T, img string, legacy bool) *verdict {
		e := openRace(t, img, legacy, "f0", "f1")
		f0, f1 := e.files["f0"], e.files["f1"]
		bs := e.bs
		if err := e.s.Write(f0, 0, fill(64*bs, 0x11)); err != nil {
			t.Fatal(err)
		}
		e.sc.arm(HookBetweenPages, func(ino, blk uint64) bool { return ino == f0 && blk == 4 })
		done := async(func() error { return e.s.Fsync(f0) })
		e.sc.waitParked(t, done)
		ip, _ := e.s.inode(f0)
		stale := fmt.Sprint(ip.pc.t.Len())
		// The race: truncate, rewrite, and another file's allocation.
		if err := e.s.Truncate(f0, 8*bs); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Write(f0, 8*bs, fill(56*bs, 0x22)); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Write(f1, 0, fill(56*bs, 0x33)); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Fsync(f1); err != nil {
			t.Fatal(err)
		}
		x0, _ := e.s.Extents(f0)
		x1, _ := e.s.Extents(f1)
		t.Logf("f0 (%s pages in cache) now maps %v; f1 maps %v", stale, x0, x1)
		e.sc.release <- struct{}{}
		wbErr := <-done
		want0 := append(fill(8*bs, 0x11), fill(56*bs, 0x22)...)
		err := e.close()
		if wbErr != nil {
			err = fmt.Errorf("fsync: %v; close: %v", wbErr, err)
		}
		return judge(t, img, err, map[string][]byte{"f0": want0, "f1": fill(56*bs, 0x33)})
	})
}

// fragImage makes an image whose free space is all in pieces of 16 blocks
// (4 KiB blocks), each stained with 0xee: a file is written with 0xee,
// the rest of the file system filled with preallocation (reserve pool set
// to 0 so that the kernel hands out everything), then every other 16
// blocks of the first file punched.
func fragImage(t *testing.T, files map[string]int64) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, 320<<20, "-m", "reflink=0,rmapbt=0", "-b", "size=4096")
	mnt, _ := oracle.Mount(t, img)
	for f, sz := range files {
		if err := os.WriteFile(filepath.Join(mnt, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(mnt, f), sz); err != nil {
			t.Fatal(err)
		}
	}
	const comb = 48 << 20
	combPath := filepath.Join(mnt, "comb")
	oracle.Run(t, "xfs_io", "-f", "-c", fmt.Sprintf("pwrite -q -S 0xee -b 1m 0 %d", comb), "-c", "fsync", combPath)
	var sc strings.Builder
	fmt.Fprintf(&sc, "open -f %s\nresblks 0\n", filepath.Join(mnt, "fill"))
	for i, sz := 0, int64(512<<20); sz >= 4096; i, sz = i+1, sz/2 {
		fmt.Fprintf(&sc, "falloc %d %d\n", int64(i)<<30, sz)
	}
	fmt.Fprintf(&sc, "open %s\n", combPath)
	for off := int64(0); off < comb; off += 32 * 4096 {
		fmt.Fprintf(&sc, "fpunch %d %d\n", off+16*4096, 16*4096)
	}
	cmd := exec.Command("xfs_io", "-x")
	cmd.Stdin = strings.NewReader(sc.String())
	_, _ = cmd.CombinedOutput() // the fallocs run out of space, as meant
	oracle.Run(t, "sync")
	oracle.Unmount(t, mnt)
	return img
}

// TestRacePunchDuringConversion is scenario 1: file blocks [0,64) are
// delayed and dirty; writeback of block 40 caches the delayed extent and
// converts it, and free space in 16-block pieces makes the first
// allocation [0,16) only. There [16,32) is punched, as the kernel does it:
// the punch's own flush writes the range back (converting [16,32) of the
// delayed extent that is left) while the other writeback is stopped, then
// unmaps it. The legacy writeback goes on over its cached range and
// allocates the hole: written blocks with no page over them, showing their
// old contents. The engine looks block 40 up again and converts only the
// delayed extent there.
func TestRacePunchDuringConversion(t *testing.T) {
	img := fragImage(t, map[string]int64{"f0": 0})
	bothWays(t, img, func(t *testing.T, img string, legacy bool) *verdict {
		e := openRace(t, img, legacy, "f0")
		f0, bs := e.files["f0"], e.bs
		if err := e.s.Write(f0, 0, fill(64*bs, 0x11)); err != nil {
			t.Fatal(err)
		}
		e.sc.arm(HookAfterPartialAlloc, func(ino, blk uint64) bool { return ino == f0 && blk == 40 })
		done := async(func() error { return e.s.SyncRange(f0, 40*bs, 24*bs) })
		e.sc.waitParked(t, done)
		exts, _ := e.s.Extents(f0)
		t.Logf("first allocation: %v", exts)
		punch := async(func() error { return e.s.Punch(f0, 16*bs, 16*bs) })
		select {
		case err := <-punch:
			if err != nil {
				t.Fatalf("punch: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("punch [16,32) did not complete while writeback of block 40 was stopped")
		}
		exts, _ = e.s.Extents(f0)
		t.Logf("after the punch: %v", exts)
		e.sc.release <- struct{}{}
		err := <-done
		if cerr := e.close(); err == nil {
			err = cerr
		}
		want := append(append(fill(16*bs, 0x11), make([]byte, 16*bs)...), fill(32*bs, 0x11)...)
		return judge(t, img, err, map[string][]byte{"f0": want})
	})
}

// TestRaceTruncatePastCachedTail is scenario 3: writeback of block 40
// caches the delayed extent [0,64) and parks; the file is truncated to 8
// blocks (the truncate sets the size, then waits for the page under
// writeback). The legacy writeback, with no EOF clamp, converts its cached
// range past the new EOF, and into written extents: the truncate frees
// the part past EOF, but [0,8) stays written with nothing written to it,
// and a crash then (log forced) shows the blocks' old contents. The
// engine's unwritten conversion reads as zeros after the same crash.
func TestRaceTruncatePastCachedTail(t *testing.T) {
	img := raceImage(t, 512<<20, nil, map[string]int64{"f0": 256 << 10})
	bothWays(t, img, func(t *testing.T, img string, legacy bool) *verdict {
		e := openRace(t, img, legacy, "f0")
		f0, bs := e.files["f0"], e.bs
		if err := e.s.Write(f0, 0, fill(64*bs, 0x11)); err != nil {
			t.Fatal(err)
		}
		e.sc.arm(HookAfterLookup, func(ino, blk uint64) bool { return ino == f0 && blk == 40 })
		done := async(func() error { return e.s.SyncRange(f0, 40*bs, 24*bs) })
		e.sc.waitParked(t, done)
		trunc := async(func() error { return e.s.Truncate(f0, 8*bs) })
		ip, _ := e.s.inode(f0)
		for {
			ip.ilock.RLock()
			sz := ip.size
			ip.ilock.RUnlock()
			if sz == 8*bs {
				break
			}
			time.Sleep(time.Millisecond)
		}
		e.sc.release <- struct{}{}
		err := <-done
		if terr := <-trunc; err == nil {
			err = terr
		}
		v := &verdict{}
		if err != nil {
			v.add("writeback or truncate: %v", err)
		}
		exts, _ := e.s.Extents(f0)
		t.Logf("after the truncate: %v", exts)
		// The crash: the log forced, the image copied as it is.
		if err := e.s.j.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		crash, got, rerr := crashRead(t, img, "f0")
		if rerr != nil {
			v.add("crash image: read f0: %v", rerr)
		}
		// No data reached f0's blocks below the new EOF: they must read
		// as zeros, so be unwritten (or holes), whatever they held.
		if f, err := xfs.Open(crash, ondisk.OpenOptions{NoWait: true}); err != nil {
			v.add("crash image: %v", err)
		} else {
			ip, err := f.Lookup("/f0", true)
			if err == nil {
				var exts []ondisk.Extent
				exts, err = ip.Extents(bmbt.DataFork)
				for _, x := range exts {
					if !x.Unwritten {
						v.add("after a crash f0 maps written blocks nothing was written to: file blocks [%d,+%d) at block %d (stale data on read)", x.StartOff, x.BlockCount, x.StartBlock)
					}
				}
			}
			if err != nil {
				v.add("crash image: f0: %v", err)
			}
			f.Close()
		}
		for i, b := range got {
			if b != 0 && b != 0x11 {
				v.add("after a crash the kernel reads stale data in f0: byte %d (file block %d) is 0x%02x (size %d)", i, int64(i)/bs, b, len(got))
				break
			}
		}
		cerr := e.close()
		after := judge(t, img, cerr, map[string][]byte{"f0": fill(8*bs, 0x11)})
		v.problems = append(v.problems, after.problems...)
		return v
	})
}

// TestRaceFlushWhileParked: writeback of file blocks [40,64) stops just
// before it submits its I/O (the pages in flight, their data taken), and
// pages 44-47 are written again meanwhile (dirty while in flight). Then
// data-integrity flushes of the same file run, as the kernel lets them (no
// lock keeps two writebacks of a file apart, only the pages' writeback
// bit): a punch of [8,24), whose flush does not meet the stopped pages,
// completes while the writeback is stopped; a truncate whose flush covers
// them, or an fsync, writes every other page and waits. Once the writeback
// goes on, each completes having written pages 44-47 again: a flush
// returns with no page of its range in flight and none that was dirty
// when it started left dirty (write_cache_pages in WB_SYNC_ALL,
// filemap_fdatawait_range). The fsync is checked by a crash right after
// it, every run by the oracles after the session closes.
func TestRaceFlushWhileParked(t *testing.T) {
	img := raceImage(t, 512<<20, nil, map[string]int64{"f0": 0})
	for _, op := range []string{"punch+truncate", "fsync"} {
		t.Run(op, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "fs.img")
			oracle.Run(t, "cp", "--sparse=always", img, cp)
			e := openRace(t, cp, false, "f0")
			f0, bs := e.files["f0"], e.bs
			ip, err := e.s.inode(f0)
			if err != nil {
				t.Fatal(err)
			}
			var model []byte
			write := func(blk, n int64, b byte) {
				t.Helper()
				if err := e.s.Write(f0, blk*bs, fill(n*bs, b)); err != nil {
					t.Fatal(err)
				}
				if end := (blk + n) * bs; end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[blk*bs:], fill(n*bs, b))
			}
			write(0, 64, 0x11)
			write(96, 32, 0x44)
			e.sc.arm(HookBeforeSubmit, func(ino, blk uint64) bool { return ino == f0 && blk == 40 })
			wb := async(func() error { return e.s.SyncRange(f0, 40*bs, 24*bs) })
			e.sc.waitParked(t, wb)
			for _, p := range pageStates(ip) {
				if p.blk >= 40 && p.blk < 64 && (!p.busy || p.dirty) {
					t.Fatalf("setup: page %d is not in flight in the stopped writeback: %+v", p.blk, pageStates(ip))
				}
			}
			write(44, 4, 0x22) // dirty again, still in flight
			// Only the pages of the stopped writeback, and those
			// out of the flush's range, may be left in the cache.
			left := func(keep func(blk uint64) bool) func() bool {
				return func() bool {
					for _, p := range pageStates(ip) {
						if !keep(p.blk) {
							return false
						}
					}
					return true
				}
			}
			stopped := func(blk uint64) bool { return blk >= 40 && blk < 64 }
			var flush chan error
			switch op {
			case "punch+truncate":
				if err := await(t, "punch of [8,24)", async(func() error { return e.s.Punch(f0, 8*bs, 16*bs) })); err != nil {
					t.Fatalf("punch: %v", err)
				}
				clear(model[8*bs : 24*bs])
				size := 100*bs + 100
				flush = async(func() error { return e.s.Truncate(f0, size) })
				model = model[:size]
				// Its flush covers [24,101); [0,8) stays dirty.
				stillBlocked(t, "truncate", flush, left(func(blk uint64) bool { return blk < 8 || stopped(blk) }))
			case "fsync":
				flush = async(func() error { return e.s.Fsync(f0) })
				stillBlocked(t, "fsync", flush, left(stopped))
			}
			e.sc.release <- struct{}{}
			wbErr := await(t, "the stopped writeback", wb)
			ferr := await(t, op, flush)
			if wbErr != nil || ferr != nil {
				t.Fatalf("sync_range: %v; %s: %v", wbErr, op, ferr)
			}
			for _, p := range pageStates(ip) {
				if p.blk >= 8 || p.busy {
					t.Fatalf("%s returned with page %d still in the cache (dirty %v, in flight %v): it missed a page dirtied while in flight", op, p.blk, p.dirty, p.busy)
				}
			}
			if op == "fsync" {
				// The crash: the image as the fsync left it.
				_, got, err := crashRead(t, cp, "f0")
				if err != nil {
					t.Fatalf("crash image: %v", err)
				}
				if !bytes.Equal(got, model) {
					t.Fatalf("after fsync and a crash the kernel reads other bytes: %s", diffAt(got, model))
				}
			}
			if v := judge(t, cp, e.close(), map[string][]byte{"f0": model}); !v.clean() {
				t.Fatal(v)
			}
		})
	}
}

type pageState struct {
	blk         uint64
	dirty, busy bool
}

// pageStates lists the pages ip has in the page cache.
func pageStates(ip *inode) []pageState {
	ip.pc.mu.Lock()
	defer ip.pc.mu.Unlock()
	var out []pageState
	for _, p := range ip.pc.pages(0, ondisk.MaxFileOff) {
		out = append(out, pageState{p.blk, p.dirty, p.busy})
	}
	return out
}

// await returns what done delivers, failing the test if nothing comes
// within 30 s (a deadlock).
func await(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not complete", what)
		return nil
	}
}

// stillBlocked waits until ready holds, and then a little longer, failing
// the test if done delivers meanwhile: what must wait for the stopped
// writeback.
func stillBlocked(t *testing.T, what string, done <-chan error, ready func() bool) {
	t.Helper()
	fail := func(err error) {
		t.Fatalf("%s returned (%v) while pages of its range were in flight in the stopped writeback", what, err)
	}
	for deadline := time.Now().Add(30 * time.Second); !ready(); time.Sleep(time.Millisecond) {
		select {
		case err := <-done:
			fail(err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never wrote the pages not in flight", what)
		}
	}
	select {
	case err := <-done:
		fail(err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestRmapbtRefused: with rmapbt, a copy on write's refcount changes would
// need rmap records, which are not written: a file system with reflinked
// files and rmapbt is refused at open, clearly.
func TestRmapbtRefused(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	img := oracle.Mkfs(t, 512<<20, "-m", "reflink=1,rmapbt=1")
	mnt, _ := oracle.Mount(t, img)
	oracle.Run(t, "xfs_io", "-f", "-c", "pwrite -q -S 0x44 0 64k", "-c", "fsync", filepath.Join(mnt, "f0"))
	oracle.Run(t, "cp", "--reflink=always", filepath.Join(mnt, "f0"), filepath.Join(mnt, "f1"))
	oracle.Unmount(t, mnt)
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_, err = Open(dev, Options{})
	if err == nil || !errors.Is(err, ondisk.ErrUnsupported) {
		t.Fatalf("open with rmapbt: %v, want a refusal", err)
	}
	t.Logf("open: %v", err)
}

// TestRaceRandom: goroutines write, truncate, punch and sync three files
// at random while writeback runs all the time (4 workers, a page cache
// bound of 256 KiB, so that writers write back constantly, their own file
// and the others). Operations on one file are serialized by the test
// (each file's model of its bytes is then exact) and those on different
// files run concurrently. After each run: the session closes cleanly,
// xfs_repair -n and xfsimg check find nothing, no file maps real blocks
// past EOF, and the kernel reads each file as its model. Every other run
// has the background flusher on; half the runs start with files sharing
// blocks (copy on write). About 15 s; XFSIMG_LONG=1 runs at least
// 60 s, XFSIMG_RACE_SECONDS=N about N s (test.sh runs 60 s of it under
// -race). XFSIMG_SEED sets the first seed.
func TestRaceRandom(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	total, perRun := 15*time.Second, 3500*time.Millisecond
	if os.Getenv("XFSIMG_LONG") == "1" {
		total, perRun = 60*time.Second, 10*time.Second
	}
	if v := os.Getenv("XFSIMG_RACE_SECONDS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
			t.Fatalf("XFSIMG_RACE_SECONDS=%q: want a number of seconds", v)
		}
		total = time.Duration(n) * time.Second
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("XFSIMG_SEED"); v != "" {
		if _, err := fmt.Sscan(v, &seed); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for run := 0; time.Since(start) < total-perRun/2 || run == 0; run++ {
		s := seed + uint64(run)
		if !t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { randomRun(t, s, perRun) }) {
			t.Fatalf("seed %d failed (rerun with XFSIMG_SEED=%d)", s, s)
		}
	}
}

func randomRun(t *testing.T, seed uint64, dur time.Duration) {
	names := []string{"f0", "f1", "f2"}
	img := raceImage(t, 512<<20, nil, map[string]int64{"f0": 0, "f1": 0, "f2": 0})
	// Seeds 2 and 3 mod 4 start with shared blocks: f1 shares all of
	// f0's first MiB and f2 its middle half, so that the operations go
	// through copy on write.
	var init [3][]byte
	if seed%4 >= 2 {
		mnt, _ := oracle.Mount(t, img)
		p := func(i int) string { return filepath.Join(mnt, names[i]) }
		oracle.Run(t, "xfs_io", "-c", "pwrite -q -S 0x3c -b 1m 0 1m", "-c", "fsync", p(0))
		oracle.Run(t, "xfs_io", "-c", "reflink -q "+p(0), p(1))
		oracle.Run(t, "xfs_io", "-c", fmt.Sprintf("reflink -q %s 256k 0 512k", p(0)), p(2))
		oracle.Unmount(t, mnt)
		init = [3][]byte{fill(1<<20, 0x3c), fill(1<<20, 0x3c), fill(512<<10, 0x3c)}
	}
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	// Odd seeds run the background flusher too: it writes back from
	// its own goroutine while the writers go on.
	s, err := Open(dev, Options{Workers: 4, DirtyLimit: 256 << 10, Background: seed%2 == 1})
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	type file struct {
		mu    sync.Mutex
		ino   uint64
		model []byte
	}
	files := make([]*file, len(names))
	for i, n := range names {
		ino, err := s.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = &file{ino: ino, model: init[i]}
	}
	const span = 1200 << 10
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		ops   [5]int64
	)
	deadline := time.Now().Add(dur)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for time.Now().Before(deadline) {
				f := files[r.IntN(len(files))]
				op := r.IntN(10)
				f.mu.Lock()
				var err error
				var desc string
				switch {
				case op < 5: // write
					off, n := r.Int64N(span), 1+r.Int64N(64<<10)
					b := byte(1 + r.IntN(255))
					desc = fmt.Sprintf("pwrite -S 0x%02x %d %d", b, off, n)
					if err = s.Write(f.ino, off, fill(n, b)); err == nil {
						if end := off + n; end > int64(len(f.model)) {
							f.model = append(f.model, make([]byte, end-int64(len(f.model)))...)
						}
						copy(f.model[off:], fill(n, b))
					}
					op = 0
				case op < 7: // truncate
					size := r.Int64N(span)
					if r.IntN(3) == 0 {
						size = size / 4096 * 4096
					}
					desc = fmt.Sprintf("truncate %d", size)
					if err = s.Truncate(f.ino, size); err == nil {
						if size > int64(len(f.model)) {
							f.model = append(f.model, make([]byte, size-int64(len(f.model)))...)
						}
						f.model = f.model[:size]
					}
					op = 1
				case op < 8: // punch
					off, n := r.Int64N(span), 1+r.Int64N(256<<10)
					desc = fmt.Sprintf("fpunch %d %d", off, n)
					if err = s.Punch(f.ino, off, n); err == nil && off < int64(len(f.model)) {
						clear(f.model[off:min(off+n, int64(len(f.model)))])
					}
					op = 2
				case op < 9:
					desc = "fsync"
					err = s.Fsync(f.ino)
					op = 3
				default:
					off, n := r.Int64N(span), r.Int64N(512<<10)
					desc = fmt.Sprintf("sync_range %d %d", off, n)
					err = s.SyncRange(f.ino, off, n)
					op = 4
				}
				f.mu.Unlock()
				errMu.Lock()
				ops[op]++
				if err != nil && first == nil {
					first = fmt.Errorf("goroutine %d: inode %d: %s: %w", g, f.ino, desc, err)
				}
				stop := first != nil
				errMu.Unlock()
				if stop {
					return
				}
			}
		}(g)
	}
	wg.Wait()
	cerr := s.Close()
	if derr := dev.Close(); cerr == nil {
		cerr = derr
	}
	if first != nil {
		t.Fatal(first)
	}
	st := s.Stats()
	t.Logf("ops: %d writes, %d truncates, %d punches, %d fsyncs, %d sync_ranges; %d conversions, %d data writes, peak cache %d KiB",
		ops[0], ops[1], ops[2], ops[3], ops[4], st.DelallocConverted, st.DataWrites, st.PeakCacheBytes>>10)
	want := map[string][]byte{}
	for i, n := range names {
		want[n] = files[i].model
	}
	if v := judge(t, img, cerr, want); !v.clean() {
		t.Fatal(v)
	}
}

// crashRead copies img as a crash would leave it (the caller forced the
// log as far as it wants) and returns the copy and what the kernel reads
// of file name from it after log recovery.
func crashRead(t *testing.T, img, name string) (string, []byte, error) {
	t.Helper()
	crash := filepath.Join(t.TempDir(), "crash.img")
	oracle.Run(t, "cp", "--sparse=always", img, crash)
	mnt, _ := oracle.Mount(t, crash)
	got, err := os.ReadFile(filepath.Join(mnt, name))
	oracle.Unmount(t, mnt)
	return crash, got, err
}

// cowImage makes an image (free space stained as raceImage does) with f0:
// 64 blocks, block i filled with 0x40+i, written by the kernel, and f1
// sharing f0's blocks [from, 64) from its block 0.
func cowImage(t *testing.T, from int64) (img string, f0 []byte) {
	t.Helper()
	img = raceImage(t, 512<<20, nil, map[string]int64{"f0": 0, "f1": 0})
	mnt, _ := oracle.Mount(t, img)
	args := []string{"-c", "truncate 0"}
	for i := range int64(64) {
		args = append(args, "-c", fmt.Sprintf("pwrite -q -S 0x%x %d 4096", 0x40+i, i*4096))
		f0 = append(f0, fill(4096, byte(0x40+i))...)
	}
	args = append(args, "-c", "fsync", filepath.Join(mnt, "f0"))
	oracle.Run(t, "xfs_io", args...)
	oracle.Run(t, "xfs_io", "-c", fmt.Sprintf("reflink -q %s %d 0 %d", filepath.Join(mnt, "f0"), from*4096, (64-from)*4096), filepath.Join(mnt, "f1"))
	oracle.Unmount(t, mnt)
	return img, f0
}

// TestRaceCowAfterCaching is scenario 4: f0's blocks [32,64) are shared
// with f1. Pages 0-31 of f0 (its own blocks) are dirty; writeback maps
// page 0, caching f0's one data extent [0,64), and parks between pages.
// A write then dirties page 40, over a shared block: it gets a COW
// reservation, which moves the COW fork's sequence number. The legacy
// writeback trusts its cached mapping for page 40 and writes it in place,
// over the block f1 shares; the engine sees the number moved, finds the
// COW extent and writes to new blocks.
func TestRaceCowAfterCaching(t *testing.T) {
	img, orig := cowImage(t, 32)
	bothWays(t, img, func(t *testing.T, img string, legacy bool) *verdict {
		e := openRace(t, img, legacy, "f0", "f1")
		f0 := e.files["f0"]
		bs := e.bs
		if err := e.s.Write(f0, 0, fill(32*bs, 0x11)); err != nil {
			t.Fatal(err)
		}
		ip, _ := e.s.inode(f0)
		e.sc.arm(HookBetweenPages, func(ino, blk uint64) bool { return ino == f0 })
		done := async(func() error { return e.s.Fsync(f0) })
		e.sc.waitParked(t, done)
		if err := e.s.Write(f0, 40*bs, fill(bs, 0x55)); err != nil {
			t.Fatal(err)
		}
		ip.ilock.RLock()
		c, ok, _ := ip.cow.lookup(40)
		ip.ilock.RUnlock()
		if !ok {
			t.Fatalf("the write over a shared block made no COW reservation")
		}
		t.Logf("COW fork at block 40: %v", c)
		e.sc.release <- struct{}{}
		ferr := <-done
		want0 := append(fill(32*bs, 0x11), orig[32*bs:]...)
		copy(want0[40*bs:], fill(bs, 0x55))
		v := judge(t, img, e.close(), map[string][]byte{"f0": want0, "f1": orig[32*bs:]})
		if ferr != nil {
			v.add("fsync: %v", ferr)
		}
		return v
	})
}

// TestRaceCowGone is scenario 5: page 8 of f0, whose blocks f1 shares,
// is dirty over a delayed COW extent. Writeback looks it up (COW) and
// drops the lock; meanwhile a direct write remaps block 8: its COW extent
// is converted, written and moved into the data fork (xfs_reflink_end_cow,
// as a direct I/O completion does). The conversion then finds no COW
// extent at 8 (-EAGAIN). The engine looks the block up again in the data
// fork and writes the page there; the legacy retry looks in the COW fork
// again, finds nothing and skips the page: the buffered write is lost.
func TestRaceCowGone(t *testing.T) {
	img, orig := cowImage(t, 0)
	bothWays(t, img, func(t *testing.T, img string, legacy bool) *verdict {
		e := openRace(t, img, legacy, "f0", "f1")
		f0 := e.files["f0"]
		bs := e.bs
		if err := e.s.Write(f0, 8*bs, fill(bs, 0x66)); err != nil {
			t.Fatal(err)
		}
		ip, _ := e.s.inode(f0)
		e.sc.arm(HookAfterLookup, func(ino, blk uint64) bool { return ino == f0 && blk == 8 })
		done := async(func() error { return e.s.Fsync(f0) })
		e.sc.waitParked(t, done)
		// The direct write of block 8: its own COW blocks, its data,
		// then the remap at its completion.
		ip.ilock.Lock()
		d, ok := ip.cow.del.find(8)
		if !ok {
			ip.ilock.Unlock()
			t.Fatal("no delayed COW extent at block 8")
		}
		x, err := e.s.allocCow(ip, d)
		if err == nil && !(x.off <= 8 && x.end() > 8) {
			err = fmt.Errorf("COW allocation %+v misses block 8", x)
		}
		if err == nil {
			fsb := x.fsb + (8 - x.off)
			_, err = e.s.cdev.writeData([][]byte{ondisk.AlignedBuffer(int(bs), int(bs))}, e.s.g.FSBOffset(fsb))
			if err == nil {
				err = e.s.remapCow(ip, 8, 1, fsb)
			}
		}
		ip.ilock.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		e.sc.release <- struct{}{}
		ferr := <-done
		want0 := append([]byte(nil), orig...)
		copy(want0[8*bs:], fill(bs, 0x66))
		v := judge(t, img, e.close(), map[string][]byte{"f0": want0, "f1": orig})
		if ferr != nil {
			v.add("fsync: %v", ferr)
		}
		return v
	})
}

// TestRaceCowCancelledUnderWriteback: a writeback has mapped page 40 of
// f0 to a COW extent [32,64) and parks before page 41. A truncate to 44
// blocks cancels the COW extent past EOF (freeing its blocks) and a write
// then dirties page 50 again, over a hole now. When the writeback goes
// on, its cached COW mapping still covers page 50: trusted by its range
// alone (the kernel's rule for COW mappings) it would send the page to
// the freed blocks and lose it. The engine checks the COW fork's sequence
// number for COW mappings too and writes page 50 where it belongs.
func TestRaceCowCancelledUnderWriteback(t *testing.T) {
	img, orig := cowImage(t, 0)
	e := openRace(t, img, false, "f0", "f1")
	f0 := e.files["f0"]
	bs := e.bs
	if err := e.s.Write(f0, 40*bs, fill(8*bs, 0x21)); err != nil {
		t.Fatal(err)
	}
	e.sc.arm(HookBetweenPages, func(ino, blk uint64) bool { return ino == f0 && blk == 41 })
	done := async(func() error { return e.s.Fsync(f0) })
	e.sc.waitParked(t, done)
	if err := e.s.Truncate(f0, 44*bs); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Write(f0, 50*bs, fill(bs, 0x22)); err != nil {
		t.Fatal(err)
	}
	e.sc.release <- struct{}{}
	ferr := <-done
	want := append([]byte(nil), orig[:44*bs]...)
	copy(want[40*bs:], fill(4*bs, 0x21))
	want = append(want, make([]byte, 6*bs)...)
	want = append(want, fill(bs, 0x22)...)
	v := judge(t, img, e.close(), map[string][]byte{"f0": want, "f1": orig})
	if ferr != nil {
		v.add("fsync: %v", ferr)
	}
	if !v.clean() {
		t.Fatal(v)
	}
}

// TestRaceWriteAfterWriteback: a write of part of block 3 reserves while
// the block's page is dirty (over a delayed extent) and drops the lock; a
// writeback then writes the page out and it leaves the cache. The write
// must fill its new page from the block as the fork maps it now, written,
// and not from what it saw at reservation (no written data: zeros for
// the rest of the block). TestRaceRandom found this one in CI.
func TestRaceWriteAfterWriteback(t *testing.T) {
	img := raceImage(t, 512<<20, nil, map[string]int64{"f0": 0})
	e := openRace(t, img, false, "f0")
	f0 := e.files["f0"]
	bs := e.bs
	if err := e.s.Write(f0, 0, fill(8*bs, 0x11)); err != nil {
		t.Fatal(err)
	}
	e.sc.arm(HookWriteMapped, func(ino, blk uint64) bool { return ino == f0 && blk == 3 })
	done := async(func() error { return e.s.Write(f0, 3*bs+100, fill(200, 0x22)) })
	e.sc.waitParked(t, done)
	if err := e.s.Fsync(f0); err != nil {
		t.Fatal(err)
	}
	e.sc.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := fill(8*bs, 0x11)
	copy(want[3*bs+100:], fill(200, 0x22))
	if v := judge(t, img, e.close(), map[string][]byte{"f0": want}); !v.clean() {
		t.Fatal(v)
	}
}
