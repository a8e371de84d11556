package ondisk

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

func readSB(t testing.TB, img string) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestSuperblockRoundTrip decodes real superblocks of several geometries,
// verifies them, and re-encodes them byte for byte.
func TestSuperblockRoundTrip(t *testing.T) {
	for _, args := range [][]string{nil, {"-b", "size=1024"}, {"-s", "size=4096"}, {"-i", "size=1024", "-n", "size=8192"}, {"-m", "bigtime=0,finobt=0"}} {
		img := oracle.Mkfs(t, 512<<20, args...)
		raw := readSB(t, img)
		sb, err := DecodeSuperblock(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.Verify(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		ss := int(sb.SectSize)
		out := append([]byte(nil), raw[:ss]...)
		clear(out[:sbSize])
		sb.Encode(out)
		if !bytes.Equal(out, raw[:ss]) {
			t.Errorf("%v: re-encoded superblock differs", args)
		}
		if got := NewGeometry(sb); got.BlockSize != int(sb.BlockSize) || got.AGCount != sb.AGCount {
			t.Errorf("%v: geometry %+v", args, got)
		}
	}
}

// TestSuperblockVerifyRules breaks one rule at a time.
func TestSuperblockVerifyRules(t *testing.T) {
	img := oracle.Mkfs(t, 512<<20)
	raw := readSB(t, img)
	cases := []struct {
		name string
		mod  func(sb *Superblock)
		want error
	}{
		{"v4", func(sb *Superblock) { sb.VersionNum = sb.VersionNum&^VersionNumMask | 4 }, ErrUnsupported},
		{"version 3", func(sb *Superblock) { sb.VersionNum = sb.VersionNum&^VersionNumMask | 3 }, ErrCorrupt},
		{"block size", func(sb *Superblock) { sb.BlockSize = 3000 }, ErrCorrupt},
		{"block log", func(sb *Superblock) { sb.BlockLog = 11 }, ErrCorrupt},
		{"inode size", func(sb *Superblock) { sb.InodeSize = 300 }, ErrCorrupt},
		{"inopblock", func(sb *Superblock) { sb.InoPBlock = 7 }, ErrCorrupt},
		{"agcount 0", func(sb *Superblock) { sb.AGCount = 0 }, ErrCorrupt},
		{"agblklog", func(sb *Superblock) { sb.AGBlkLog++ }, ErrCorrupt},
		{"dblocks too big", func(sb *Superblock) { sb.DBlocks += uint64(sb.AGBlocks) }, ErrCorrupt},
		{"dblocks too small", func(sb *Superblock) { sb.DBlocks -= uint64(sb.AGBlocks) }, ErrCorrupt},
		{"unknown incompat", func(sb *Superblock) { sb.FeaturesIncompat |= 0x8000 }, ErrUnsupported},
		{"external log", func(sb *Superblock) { sb.LogStart = 0 }, ErrUnsupported},
		{"realtime", func(sb *Superblock) { sb.RBlocks = 10 }, ErrUnsupported},
		{"inprogress", func(sb *Superblock) { sb.InProgress = 1 }, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := append([]byte(nil), raw[:512]...)
			sb, err := DecodeSuperblock(buf)
			if err != nil {
				t.Fatal(err)
			}
			c.mod(sb)
			sb.Encode(buf)
			sb, err = DecodeSuperblock(buf)
			if err == nil {
				err = sb.Verify()
			}
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
	t.Run("bad crc", func(t *testing.T) {
		buf := append([]byte(nil), raw[:512]...)
		buf[300] ^= 1
		sb, err := DecodeSuperblock(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.Verify(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flipped byte: %v", err)
		}
	})
}

func FuzzDecodeSuperblock(f *testing.F) {
	if oracle.Have(oracle.Xfsprogs) {
		for _, args := range [][]string{nil, {"-b", "size=1024"}, {"-s", "size=4096"}} {
			f.Add(readSB(f, oracle.Mkfs(f, 512<<20, args...)))
		}
	}
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := DecodeSuperblock(b)
		if err != nil {
			return
		}
		_ = sb.Fields()
		_ = sb.FeatureList()
		if sb.Verify() != nil {
			return
		}
		g := NewGeometry(sb)
		_ = g.LocateInode(sb.RootIno)
		out := append([]byte(nil), b[:sb.SectSize]...)
		sb.Encode(out)
		if !bytes.Equal(out, b[:sb.SectSize]) {
			t.Fatalf("verified superblock does not re-encode to itself")
		}
	})
}
