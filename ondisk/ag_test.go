package ondisk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// agImage is a real file system made by mkfs.xfs (and perhaps the kernel)
// that the AG header and btree tests read and compare with xfs_db.
type agImage struct {
	name string
	path string
	sb   *Superblock
	g    *Geometry
	// Facts about the populated image used to find interesting structures.
	bmbtIno uint64 // an inode whose data fork is a BMBT (0: none)
}

const agImageSize = 512 << 20

// agGeometries are the mkfs variants every AG header test runs on.
var agGeometries = []struct {
	name string
	args []string
}{
	{"default", nil},
	{"bsize1k", []string{"-b", "size=1024"}},
	{"agcount7", []string{"-d", "agcount=7"}},
	{"sect4k", []string{"-s", "size=4096"}},
	{"rmapbt", []string{"-m", "rmapbt=1", "-i", "sparse=0"}},
}

// agImages makes one image per geometry plus, when the kernel can mount,
// one populated through it.
func agImages(t *testing.T) []*agImage {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs)
	var imgs []*agImage
	for _, geo := range agGeometries {
		path := oracle.Mkfs(t, agImageSize, geo.args...)
		imgs = append(imgs, agOpenImage(t, geo.name, path))
	}
	if oracle.Have(oracle.Loop) || oracle.Required() {
		imgs = append(imgs, agPopulatedImage(t))
	}
	return imgs
}

func agOpenImage(t *testing.T, name, path string) *agImage {
	t.Helper()
	sb, err := DecodeSuperblock(agReadAt(t, path, 0, 512))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if sb.SectSize > 512 {
		if sb, err = DecodeSuperblock(agReadAt(t, path, 0, int(sb.SectSize))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := sb.Verify(); err != nil {
		t.Fatalf("%s: superblock: %v", name, err)
	}
	return &agImage{name: name, path: path, sb: sb, g: NewGeometry(sb)}
}

func agReadAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatalf("read %d bytes at %d of %s: %v", n, off, path, err)
	}
	return buf
}

func agWriteAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func (im *agImage) sector(t testing.TB, daddr int64) []byte {
	return agReadAt(t, im.path, daddr<<BBShift, im.g.SectSize)
}

// agPopulatedImage makes a 1 KiB-block file system with rmapbt and reflink,
// fills it through the kernel so that every AG tree grows past one level,
// the AGFL ring moves and an unlinked-but-open inode sits on an AGI bucket,
// and snapshots it while frozen (so the AGI keeps that bucket).
func agPopulatedImage(t *testing.T) *agImage {
	t.Helper()
	oracle.Require(t, oracle.Loop)
	img := oracle.Mkfs(t, agImageSize, "-b", "size=1024", "-d", "agcount=2", "-m", "rmapbt=1")
	dir, _ := oracle.Mount(t, img)

	// 4000 empty files: more than 60 inode chunks (one 1 KiB inobt leaf).
	files := filepath.Join(dir, "files")
	agMkdir(t, files)
	for i := range 4000 {
		agWriteFile(t, filepath.Join(files, fmt.Sprint(i)), nil)
	}
	// Freeing some inodes of each chunk populates the finobt.
	for i := 0; i < 4000; i += 37 {
		agRemove(t, filepath.Join(files, fmt.Sprint(i)))
	}
	// 600 one-block files, every other one removed once on disk: 300 free
	// extents, more than a 1 KiB bnobt/cntbt leaf holds (121).
	small := filepath.Join(dir, "small")
	agMkdir(t, small)
	block := bytes.Repeat([]byte{0xa5}, 1024)
	for i := range 600 {
		agWriteFile(t, filepath.Join(small, fmt.Sprint(i)), block)
	}
	syscall.Sync()
	for i := 0; i < 600; i += 2 {
		agRemove(t, filepath.Join(small, fmt.Sprint(i)))
	}
	// A file of 300 one-block extents (a BMBT of several leaves), and a
	// reflinked copy (refcount records for each extent).
	frag := filepath.Join(dir, "frag")
	f, err := os.Create(frag)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := f.WriteAt(block, int64(i)*2048); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	oracle.Run(t, "cp", "--reflink=always", frag, filepath.Join(dir, "frag.clone"))
	var st syscall.Stat_t
	if err := syscall.Stat(frag, &st); err != nil {
		t.Fatal(err)
	}
	// An open, unlinked file: its inode heads an AGI unlinked bucket.
	held, err := os.Create(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	agRemove(t, filepath.Join(dir, "held"))
	syscall.Sync()

	snap := filepath.Join(t.TempDir(), "populated.img")
	oracle.Run(t, "fsfreeze", "-f", dir)
	_, cpErr := oracle.RunErr("cp", "--sparse=always", img, snap)
	oracle.Run(t, "fsfreeze", "-u", dir)
	if cpErr != nil {
		t.Fatalf("snapshot: %v", cpErr)
	}
	im := agOpenImage(t, "populated", snap)
	im.bmbtIno = st.Ino
	return im
}

func agMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func agWriteFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func agRemove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// agDBSections runs xfs_db once with cmds, where each group of commands that
// prints one structure is preceded by a marker, and returns the output of
// each group.
func agDBSections(t *testing.T, img string, groups [][]string) []string {
	t.Helper()
	var cmds []string
	for i, g := range groups {
		cmds = append(cmds, fmt.Sprintf("echo @@%d", i))
		cmds = append(cmds, g...)
	}
	out := agDBOut(t, img, cmds...)
	parts := strings.Split(out, "@@")
	if len(parts) != len(groups)+1 {
		t.Fatalf("xfs_db output has %d sections, want %d:\n%s", len(parts)-1, len(groups), out)
	}
	res := make([]string, len(groups))
	for i, p := range parts[1:] {
		_, body, _ := strings.Cut(p, "\n")
		res[i] = body
	}
	return res
}

// agDBOut runs xfs_db read-only and returns its standard output alone: on
// damaged images it reports verifier failures on standard error, between
// the fields.
func agDBOut(t *testing.T, img string, cmds ...string) string {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs)
	args := []string{"-r"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("xfs_db", append(args, img)...).Output()
	if err != nil {
		t.Fatalf("xfs_db %v: %v", args, err)
	}
	return string(out)
}

// agCompareDB fails with the first line where our rendering differs from
// xfs_db's.
func agCompareDB(t *testing.T, what string, got Fields, want string) {
	t.Helper()
	g, w := strings.Split(got.String(), "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("%s line %d:\n got %q\nwant %q (xfs_db)", what, i+1, gl, wl)
			return
		}
	}
}

// TestAGHeadersMatchXfsDB decodes every AGF, AGI and AGFL of each image,
// checks they verify, render exactly as xfs_db prints them, and re-encode to
// the same sector.
func TestAGHeadersMatchXfsDB(t *testing.T) {
	for _, im := range agImages(t) {
		t.Run(im.name, func(t *testing.T) {
			var groups [][]string
			for agno := range im.g.AGCount {
				groups = append(groups,
					[]string{fmt.Sprintf("agf %d", agno), "p"},
					[]string{fmt.Sprintf("agi %d", agno), "p"},
					[]string{fmt.Sprintf("agfl %d", agno), "p"})
			}
			db := agDBSections(t, im.path, groups)
			var sawUnlinked, sawMoved bool
			var tall [5]uint32 // highest bno, cnt, rmap, refcount, inobt level
			for agno := range im.g.AGCount {
				agfBuf := im.sector(t, im.g.AGFDaddr(agno))
				agiBuf := im.sector(t, im.g.AGIDaddr(agno))
				agflBuf := im.sector(t, im.g.AGFLDaddr(agno))

				agf, err := DecodeAGF(agfBuf)
				if err != nil {
					t.Fatal(err)
				}
				if err := agf.Verify(im.g, agno); err != nil {
					t.Errorf("agf %d: Verify: %v", agno, err)
				}
				if err := agf.VerifyFeatures(im.sb); err != nil {
					t.Errorf("agf %d: VerifyFeatures: %v", agno, err)
				}
				agCompareDB(t, fmt.Sprintf("agf %d", agno), agf.Fields(im.sb), db[3*agno])
				agCheckRoundTrip(t, fmt.Sprintf("agf %d", agno), agfBuf, agf.Encode)

				agi, err := DecodeAGI(agiBuf)
				if err != nil {
					t.Fatal(err)
				}
				if err := agi.Verify(im.g, agno, im.sb); err != nil {
					t.Errorf("agi %d: Verify: %v", agno, err)
				}
				agCompareDB(t, fmt.Sprintf("agi %d", agno), agi.Fields(im.sb), db[3*agno+1])
				agCheckRoundTrip(t, fmt.Sprintf("agi %d", agno), agiBuf, agi.Encode)
				for _, u := range agi.Unlinked {
					sawUnlinked = sawUnlinked || u != NullAGIno
				}

				agfl, err := DecodeAGFL(agflBuf)
				if err != nil {
					t.Fatal(err)
				}
				if len(agfl.Bno) != im.g.AGFLSize() {
					t.Errorf("agfl %d: %d slots, want %d", agno, len(agfl.Bno), im.g.AGFLSize())
				}
				if err := agfl.Verify(im.g, agno); err != nil {
					t.Errorf("agfl %d: Verify: %v", agno, err)
				}
				agCompareDB(t, fmt.Sprintf("agfl %d", agno), agfl.Fields(), db[3*agno+2])
				agCheckRoundTrip(t, fmt.Sprintf("agfl %d", agno), agflBuf, agfl.Encode)
				active, err := agfl.Active(agf)
				if err != nil {
					t.Errorf("agfl %d: Active: %v", agno, err)
				}
				agCheckActiveAgainstDB(t, agno, agf, active, db[3*agno+2])
				sawMoved = sawMoved || agf.FLFirst != 1
				for i, l := range []uint32{agf.BnoLevel, agf.CntLevel, agf.RmapLevel, agf.RefcountLevel, agi.Level} {
					tall[i] = max(tall[i], l)
				}
			}
			if im.name == "populated" {
				if !sawUnlinked {
					t.Error("populated image: no AGI unlinked bucket in use; the test lost its point")
				}
				if !sawMoved {
					t.Error("populated image: the AGFL ring never moved from mkfs's position")
				}
				for i, l := range tall {
					if l < 2 {
						t.Errorf("populated image: tree %d (bno, cnt, rmap, refcount, inobt) has only %d level(s)", i, l)
					}
				}
			}
		})
	}
}

// agCheckRoundTrip encodes a decoded header into a zeroed sector and wants the
// original bytes back: every byte the format defines is modelled, spare
// bytes are zero on real images, and the CRC comes out the same.
func agCheckRoundTrip(t *testing.T, what string, orig []byte, encode func([]byte)) {
	t.Helper()
	got := make([]byte, len(orig))
	encode(got)
	if !bytes.Equal(got, orig) {
		for i := range got {
			if got[i] != orig[i] {
				t.Errorf("%s: re-encoded sector differs first at byte %d: 0x%02x, want 0x%02x", what, i, got[i], orig[i])
				return
			}
		}
	}
}

// agCheckActiveAgainstDB wants Active to list, in ring order, exactly the
// slots xfs_db prints between flfirst and fllast.
func agCheckActiveAgainstDB(t *testing.T, agno uint32, agf *AGF, active []uint32, db string) {
	t.Helper()
	slots := map[int]string{}
	for _, kv := range oracle.ParseFields(db) {
		if !strings.HasPrefix(kv.Name, "bno[") {
			continue
		}
		for _, e := range strings.Fields(kv.Value) {
			i, v, _ := strings.Cut(e, ":")
			var n int
			fmt.Sscan(i, &n)
			slots[n] = v
		}
	}
	size := len(slots)
	if uint32(len(active)) != agf.FLCount {
		t.Fatalf("agfl %d: %d active blocks, want flcount %d", agno, len(active), agf.FLCount)
	}
	for k, b := range active {
		i := (int(agf.FLFirst) + k) % size
		if slots[i] != fmt.Sprint(b) {
			t.Errorf("agfl %d: active[%d] = %d, xfs_db slot %d = %q", agno, k, b, i, slots[i])
		}
	}
}

// TestAGHeadersCorruptCRC flips one byte of each header on a copy of the
// image: Verify must report the CRC, and xfs_db must agree that the CRC is
// bad, which our rendering must say too.
func TestAGHeadersCorruptCRC(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	img := oracle.Mkfs(t, agImageSize, "-d", "agcount=4")
	im := agOpenImage(t, "default", img)
	agno := uint32(2)
	type hdr struct {
		name   string
		daddr  int64
		flip   int // a byte no structural check looks at first
		verify func([]byte) (error, Fields)
	}
	hdrs := []hdr{
		{"agf", im.g.AGFDaddr(agno), 100, func(b []byte) (error, Fields) {
			a, err := DecodeAGF(b)
			if err != nil {
				t.Fatal(err)
			}
			return a.Verify(im.g, agno), a.Fields(im.sb)
		}},
		{"agi", im.g.AGIDaddr(agno), 52, func(b []byte) (error, Fields) {
			a, err := DecodeAGI(b)
			if err != nil {
				t.Fatal(err)
			}
			return a.Verify(im.g, agno, im.sb), a.Fields(im.sb)
		}},
		{"agfl", im.g.AGFLDaddr(agno), 300, func(b []byte) (error, Fields) {
			a, err := DecodeAGFL(b)
			if err != nil {
				t.Fatal(err)
			}
			return a.Verify(im.g, agno), a.Fields()
		}},
	}
	for _, h := range hdrs {
		buf := im.sector(t, h.daddr)
		buf[h.flip] ^= 0x40
		agWriteAt(t, img, h.daddr<<BBShift, buf)
		err, fields := h.verify(buf)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "CRC") {
			t.Errorf("%s with byte %d flipped: Verify = %v, want a CRC error", h.name, h.flip, err)
		}
		crc, _ := fields.Get("crc")
		if !strings.HasSuffix(crc.Text, "(bad)") {
			t.Errorf("%s: crc renders %q, want a (bad) verdict", h.name, crc.Text)
		}
		out := agDBOut(t, img, fmt.Sprintf("%s %d", h.name, agno), "p")
		if h.name != "agfl" {
			// xfs_db reads every AGF and AGI when it starts; a CRC
			// failure there is forgotten by the time "agf N" reads the
			// cached buffer again, so it says "(correct)". Compare the
			// rest; the AGFL shows the real verdict.
			out = strings.Replace(out, "(correct)", "(bad)", 1)
		}
		agCompareDB(t, h.name+" (corrupt)", fields, out)
	}
}

// TestAGIUnlinkedRendering sets some unlinked buckets with xfs_db itself and
// checks the sparse "i:v" rendering, including a last bucket in use (no
// trailing separator) and one before it (with one).
func TestAGIUnlinkedRendering(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	img := oracle.Mkfs(t, agImageSize)
	set := func(cmds ...string) {
		args := []string{"-x", "-c", "agi 1"}
		for _, c := range cmds {
			args = append(args, "-c", "write -d "+c)
		}
		oracle.Run(t, "xfs_db", append(args, img)...)
	}
	im := agOpenImage(t, "default", img)
	check := func(want error) {
		t.Helper()
		agi, err := DecodeAGI(im.sector(t, im.g.AGIDaddr(1)))
		if err != nil {
			t.Fatal(err)
		}
		agCompareDB(t, "agi 1", agi.Fields(im.sb), agDBOut(t, img, "agi 1", "p"))
		if err := agi.Verify(im.g, 1, im.sb); (err == nil) != (want == nil) {
			t.Errorf("Verify = %v, want %v", err, want)
		}
	}
	set("unlinked[5] 133", "unlinked[63] 191")
	check(nil)
	set("unlinked[63] 0xffffffff")
	check(nil) // a trailing separator after 5:133 now
	set("unlinked[1] 0")
	check(ErrCorrupt) // 0 is shown (only null is skipped) but is no inode
}

// agValidHeaders returns the headers of AG 1 of a default image, for the
// Verify tables.
func agValidHeaders(t *testing.T) (*agImage, []byte, []byte, []byte) {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs)
	img := oracle.Mkfs(t, agImageSize)
	im := agOpenImage(t, "default", img)
	return im, im.sector(t, im.g.AGFDaddr(1)), im.sector(t, im.g.AGIDaddr(1)), im.sector(t, im.g.AGFLDaddr(1))
}

// TestAGFVerifyRules breaks one AGF rule per case (re-encoding, so the CRC
// stays right except in the CRC case) and wants an error naming it.
func TestAGFVerifyRules(t *testing.T) {
	im, agfBuf, _, _ := agValidHeaders(t)
	g := im.g
	size := uint32(g.AGFLSize())
	other := im.g.MetaUUID
	other[0] ^= 1
	cases := []struct {
		name string
		mut  func(a *AGF)
		raw  func(b []byte) // instead of mut: corrupt bytes, no re-encode
		want string
	}{
		{"magic", func(a *AGF) { a.MagicNum = AGIMagic }, nil, "magic 0x58414749, want 0x58414746"},
		{"version", func(a *AGF) { a.VersionNum = 2 }, nil, "versionnum 2, want 1"},
		{"crc", nil, func(b []byte) { b[56]++ }, "bad CRC"},
		{"uuid", func(a *AGF) { a.UUID = other }, nil, "uuid " + other.String() + ", want " + g.MetaUUID.String()},
		{"seqno", func(a *AGF) { a.SeqNo = 2 }, nil, "seqno 2, want 1"},
		{"length", func(a *AGF) { a.Length-- }, nil, fmt.Sprintf("length %d, want %d", g.AGBlocks-1, g.AGBlocks)},
		{"bnolevel 0", func(a *AGF) { a.BnoLevel = 0 }, nil, fmt.Sprintf("bnolevel 0, want 1..%d", AllocMaxLevels(g))},
		{"cntlevel high", func(a *AGF) { a.CntLevel = 9 }, nil, fmt.Sprintf("cntlevel 9, want 1..%d", AllocMaxLevels(g))},
		{"bnoroot header", func(a *AGF) { a.BnoRoot = 0 }, nil, "bnoroot 0 outside the AG"},
		{"cntroot beyond", func(a *AGF) { a.CntRoot = g.AGBlocks }, nil, fmt.Sprintf("cntroot %d outside the AG", g.AGBlocks)},
		{"rmaplevel", func(a *AGF) { a.RmapRoot = 7; a.RmapLevel = 0 }, nil, "rmaplevel 0, want 1.."},
		{"rmaproot", func(a *AGF) { a.RmapRoot = g.AGBlocks + 5; a.RmapLevel = 1 }, nil, "rmaproot"},
		{"rmapblocks", func(a *AGF) { a.RmapRoot, a.RmapLevel, a.RmapBlocks = 7, 1, g.AGBlocks+1 }, nil, "rmapblocks"},
		{"refcntlevel", func(a *AGF) { a.RefcountLevel = 0 }, nil, "refcntlevel 0, want 1.."},
		{"refcntroot", func(a *AGF) { a.RefcountRoot = NullAGBlock }, nil, "refcntroot 4294967295 outside the AG"},
		{"refcntblocks", func(a *AGF) { a.RefcountBlocks = g.AGBlocks + 1 }, nil, "refcntblocks"},
		{"flfirst", func(a *AGF) { a.FLFirst = size }, nil, fmt.Sprintf("flfirst %d, want < AGFL size %d", size, size)},
		{"fllast", func(a *AGF) { a.FLLast = size + 3 }, nil, fmt.Sprintf("fllast %d, want < AGFL size %d", size+3, size)},
		{"flcount", func(a *AGF) { a.FLCount = size + 1 }, nil, fmt.Sprintf("flcount %d, want at most AGFL size %d", size+1, size)},
		{"flcount ring", func(a *AGF) { a.FLCount-- }, nil, "spans 4 slots"},
		{"freeblks", func(a *AGF) { a.FreeBlks = a.Length + 1 }, nil, "freeblks"},
		{"longest", func(a *AGF) { a.Longest = a.FreeBlks + 1 }, nil, "longest"},
		{"btreeblks", func(a *AGF) { a.BtreeBlks = a.Length - a.FreeBlks }, nil, "btreeblks"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(agfBuf)
			if c.raw != nil {
				c.raw(b)
			} else {
				a, _ := DecodeAGF(b)
				c.mut(a)
				a.Encode(b)
			}
			a, err := DecodeAGF(b)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Verify(g, 1)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want ErrCorrupt containing %q", err, c.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "agf 1: ") {
				t.Errorf("error %q does not say which AGF", err)
			}
		})
	}
	// The untouched AGF passes; VerifyFeatures catches a refcount tree on a
	// file system without reflink and a missing one with it.
	a, _ := DecodeAGF(agfBuf)
	if err := a.Verify(g, 1); err != nil {
		t.Fatalf("valid AGF: %v", err)
	}
	sb := *im.sb
	sb.FeaturesROCompat &^= ROCompatReflink
	if err := a.VerifyFeatures(&sb); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "reflink") {
		t.Errorf("VerifyFeatures without reflink = %v, want an error naming reflink", err)
	}
	sb.FeaturesROCompat |= ROCompatRmapbt | ROCompatReflink
	if err := a.VerifyFeatures(&sb); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "rmapbt") {
		t.Errorf("VerifyFeatures with rmapbt = %v, want an error naming rmapbt", err)
	}
	// A wrapped ring with the right count is fine; an empty one with any
	// indices too.
	for _, r := range [][3]uint32{{size - 2, 1, 4}, {5, 4, 0}, {0, size - 1, size}, {7, 6, size}} {
		b := bytes.Clone(agfBuf)
		a, _ := DecodeAGF(b)
		a.FLFirst, a.FLLast, a.FLCount = r[0], r[1], r[2]
		a.Encode(b)
		a, _ = DecodeAGF(b)
		if err := a.Verify(g, 1); err != nil {
			t.Errorf("ring first %d last %d count %d: %v", r[0], r[1], r[2], err)
		}
	}
}

// TestAGIVerifyRules is the same for the AGI.
func TestAGIVerifyRules(t *testing.T) {
	im, _, agiBuf, _ := agValidHeaders(t)
	g := im.g
	other := g.MetaUUID
	other[15] ^= 0x80
	maxIno := g.AGBlocks << g.InoPBLog
	cases := []struct {
		name string
		mut  func(a *AGI)
		raw  func(b []byte)
		sb   func(sb *Superblock)
		want string
	}{
		{"magic", func(a *AGI) { a.MagicNum = AGFMagic }, nil, nil, "magic 0x58414746, want 0x58414749"},
		{"version", func(a *AGI) { a.VersionNum = 0 }, nil, nil, "versionnum 0, want 1"},
		{"crc", nil, func(b []byte) { b[AGICRCOff] ^= 1 }, nil, "bad CRC"},
		{"uuid", func(a *AGI) { a.UUID = other }, nil, nil, "uuid " + other.String()},
		{"seqno", func(a *AGI) { a.SeqNo = 0 }, nil, nil, "seqno 0, want 1"},
		{"length", func(a *AGI) { a.Length = 7 }, nil, nil, fmt.Sprintf("length 7, want %d", g.AGBlocks)},
		{"level", func(a *AGI) { a.Level = 0 }, nil, nil, fmt.Sprintf("level 0, want 1..%d", InobtMaxLevels(g))},
		{"root", func(a *AGI) { a.Root = g.AGBlocks }, nil, nil, fmt.Sprintf("root %d outside the AG", g.AGBlocks)},
		{"count", func(a *AGI) { a.Count = maxIno + 64 }, nil, nil, fmt.Sprintf("count %d, want at most %d", maxIno+64, maxIno)},
		{"freecount", func(a *AGI) { a.Count, a.FreeCount = 64, 65 }, nil, nil, "freecount 65, want at most count 64"},
		{"newino", func(a *AGI) { a.NewIno = 3 }, nil, nil, "newino 3 is not an inode"},
		{"unlinked range", func(a *AGI) { a.Unlinked[2] = maxIno + 2 }, nil, nil, fmt.Sprintf("unlinked[2] = %d is not an inode", maxIno+2)},
		{"unlinked bucket", func(a *AGI) { a.Unlinked[3] = 1000 }, nil, nil, "unlinked[3] = 1000, want an inode with agino % 64 == 3"},
		{"free_level", func(a *AGI) { a.FreeLevel = 99 }, nil, nil, "free_level 99"},
		{"free_root", func(a *AGI) { a.FreeRoot = 0 }, nil, nil, "free_root 0 outside the AG"},
		{"ino_blocks", func(a *AGI) { a.IBlocks = 0 }, nil, nil, "ino_blocks 0, want level 1"},
		{"fino_blocks", func(a *AGI) { a.FBlocks = g.AGBlocks + 1 }, nil, nil, "fino_blocks"},
		// Without the features the same fields are not looked at.
		{"free_root no finobt", func(a *AGI) { a.FreeRoot, a.FreeLevel, a.FBlocks = 0, 0, 0 }, nil,
			func(sb *Superblock) { sb.FeaturesROCompat &^= ROCompatFinobt }, ""},
		{"ino_blocks no inobtcount", func(a *AGI) { a.IBlocks, a.FBlocks = 0, 0 }, nil,
			func(sb *Superblock) { sb.FeaturesROCompat &^= ROCompatInobtCnt }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(agiBuf)
			if c.raw != nil {
				c.raw(b)
			} else {
				a, _ := DecodeAGI(b)
				c.mut(a)
				a.Encode(b)
			}
			sb := *im.sb
			if c.sb != nil {
				c.sb(&sb)
			}
			a, err := DecodeAGI(b)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Verify(g, 1, &sb)
			if c.want == "" {
				if err != nil {
					t.Errorf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want ErrCorrupt containing %q", err, c.want)
			}
		})
	}
}

// TestAGFLVerifyRules covers the AGFL verifier and the ring walk.
func TestAGFLVerifyRules(t *testing.T) {
	im, agfBuf, _, agflBuf := agValidHeaders(t)
	g := im.g
	other := g.MetaUUID
	other[3] ^= 2
	cases := []struct {
		name string
		mut  func(a *AGFL)
		raw  func(b []byte)
		want string
	}{
		{"magic", func(a *AGFL) { a.MagicNum = 0 }, nil, "magic 0x00000000, want 0x5841464c"},
		{"crc", nil, func(b []byte) { b[len(b)-1] ^= 0xff }, "bad CRC"},
		{"uuid", func(a *AGFL) { a.UUID = other }, nil, "uuid " + other.String()},
		{"seqno", func(a *AGFL) { a.SeqNo = 3 }, nil, "seqno 3, want 1"},
		{"bno", func(a *AGFL) { a.Bno[50] = g.AGBlocks }, nil, fmt.Sprintf("bno[50] = %d, want null or a block < length %d", g.AGBlocks, g.AGBlocks)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(agflBuf)
			if c.raw != nil {
				c.raw(b)
			} else {
				a, _ := DecodeAGFL(b)
				c.mut(a)
				a.Encode(b)
			}
			a, err := DecodeAGFL(b)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Verify(g, 1)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want ErrCorrupt containing %q", err, c.want)
			}
		})
	}
	// A sector of the wrong size (slots do not match the geometry).
	short := bytes.Clone(agflBuf[:len(agflBuf)-8])
	a, _ := DecodeAGFL(short)
	a.Encode(short)
	a, _ = DecodeAGFL(short)
	if err := a.Verify(g, 1); err == nil || !strings.Contains(err.Error(), "slots") {
		t.Errorf("short AGFL: Verify = %v, want a slot count error", err)
	}

	agf, _ := DecodeAGF(agfBuf)
	agfl, _ := DecodeAGFL(agflBuf)
	size := uint32(len(agfl.Bno))
	got, err := agfl.Active(agf)
	if err != nil || len(got) != int(agf.FLCount) {
		t.Fatalf("Active = %v, %v", got, err)
	}
	// Move the same blocks so that they wrap round the end of the ring.
	wrapped := *agfl
	wrapped.Bno = make([]uint32, size)
	for i := range wrapped.Bno {
		wrapped.Bno[i] = NullAGBlock
	}
	w := *agf
	w.FLFirst, w.FLLast = size-2, uint32(len(got))-3
	for k, b := range got {
		wrapped.Bno[(w.FLFirst+uint32(k))%size] = b
	}
	if again, err := wrapped.Active(&w); err != nil || fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("wrapped ring: Active = %v, %v; want %v", again, err, got)
	}
	bad := []struct {
		name string
		mut  func(a *AGFL, f *AGF)
		want string
	}{
		{"count", func(a *AGFL, f *AGF) { f.FLCount++ }, "spans"},
		{"index", func(a *AGFL, f *AGF) { f.FLLast = size }, "want indices <"},
		{"null slot", func(a *AGFL, f *AGF) { a.Bno[f.FLFirst+1] = NullAGBlock }, "active slot"},
		{"beyond AG", func(a *AGFL, f *AGF) { a.Bno[f.FLFirst] = f.Length }, "active slot"},
		{"duplicate", func(a *AGFL, f *AGF) { a.Bno[f.FLLast] = a.Bno[f.FLFirst] }, "twice"},
	}
	for _, c := range bad {
		a := *agfl
		a.Bno = append([]uint32(nil), agfl.Bno...)
		f := *agf
		c.mut(&a, &f)
		if _, err := a.Active(&f); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Active = %v, want ErrCorrupt containing %q", c.name, err, c.want)
		}
	}
}

// TestAGHeaderDecodeShort: a buffer too small for the structure is an error,
// not a panic.
func TestAGHeaderDecodeShort(t *testing.T) {
	for n := range 400 {
		b := make([]byte, n)
		if _, err := DecodeAGF(b); (err != nil) != (n < agfSize) {
			t.Errorf("DecodeAGF(%d bytes) = %v", n, err)
		}
		if _, err := DecodeAGI(b); (err != nil) != (n < agiSize) {
			t.Errorf("DecodeAGI(%d bytes) = %v", n, err)
		}
		if _, err := DecodeAGFL(b); (err != nil) != (n < AGFLHeaderSize+4) {
			t.Errorf("DecodeAGFL(%d bytes) = %v", n, err)
		}
	}
}
