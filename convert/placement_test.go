package convert_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// bmap -v: "N: [a..b]: c..d AG (e..f) total"; positions in 512-byte units.
var bmapLine = regexp.MustCompile(`^\s*\d+: \[(\d+)\.\.(\d+)\]:\s+(\d+)\.\.(\d+)`)

// kernelPositions is a file's extents as the kernel reports them:
// "fileblock+blocks@daddr".
func kernelPositions(t *testing.T, path string, bs int64) []string {
	t.Helper()
	out := oracle.Run(t, "xfs_io", "-r", "-c", "bmap -v", path)
	var ex []string
	for _, l := range strings.Split(out, "\n") {
		if m := bmapLine.FindStringSubmatch(l); m != nil {
			a, _ := strconv.ParseInt(m[1], 10, 64)
			b, _ := strconv.ParseInt(m[2], 10, 64)
			c, _ := strconv.ParseInt(m[3], 10, 64)
			ex = append(ex, fmt.Sprintf("%d+%d@%d", a*512/bs, (b+1-a)*512/bs, c))
		}
	}
	return ex
}

// TestSamePlacementAsKernel runs a seeded sequence of falloc, fpunch and
// truncate one command at a time through xfsimg and through the kernel,
// with the log forced after each (syncfs; a checkpoint here) so that no
// freed extent is still busy on either side, and requires the same
// extents at the same disk addresses after every command: the allocation
// targets, lengths and AG choice are the kernel's, and with them the
// extent counts. (With busy extents left to each side's log timing,
// positions may differ; TestAgainstKernel compares mappings then.)
func TestSamePlacementAsKernel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Xfsprogs)
	n := 200
	if os.Getenv("XFSIMG_LONG") == "1" {
		n = 2000
	}
	for _, g := range []geometry{
		{name: "1k-frag", size: 400 << 20, mkfs: []string{"-b", "size=1024", "-d", "agcount=4"},
			files: 2, window: 40 << 20, fragment: 30 << 20},
		{name: "4k", size: 1 << 30, files: 2, window: 100 << 20},
	} {
		t.Run(g.name, func(t *testing.T) {
			img := kernelFixture(t, g)
			kimg := filepath.Join(t.TempDir(), "k.img")
			oracle.Run(t, "cp", "--sparse=always", img, kimg)
			mnt, umount := mountLoop(t, kimg)
			defer umount()
			var inos []uint64
			var bs, sect int64
			var geo *ondisk.Geometry
			// session runs fn in a session of its own: a new journal has
			// no busy extents, as the kernel has none after syncfs.
			session := func(fn func(s *convert.Session)) {
				dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
				if err != nil {
					t.Fatal(err)
				}
				defer dev.Close()
				s, err := convert.Open(dev, convert.Options{})
				if err != nil {
					t.Fatal(err)
				}
				fn(s)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			session(func(s *convert.Session) {
				geo = s.Geometry()
				bs, sect = int64(geo.BlockSize), int64(geo.SectSize)
				for i := 0; i < g.files; i++ {
					ino, err := s.Lookup(fmt.Sprintf("f%d", i))
					if err != nil {
						t.Fatal(err)
					}
					inos = append(inos, ino)
				}
			})
			for i, op := range genOps(g, bs, n, 99) {
				path := filepath.Join(mnt, fmt.Sprintf("f%d", op.file))
				runXfsIO(t, fmt.Sprintf("open %s\n%s\nsyncfs\n", path, op.cmd))
				var ours []string
				session(func(s *convert.Session) {
					c, err := convert.ParseCommand(op.cmd, 0, bs, sect)
					if err != nil {
						t.Fatal(err)
					}
					if err := s.Run(inos[op.file], c); err != nil {
						t.Fatal(err)
					}
					exts, err := s.Extents(inos[op.file])
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range exts {
						ours = append(ours, fmt.Sprintf("%d+%d@%d", e.StartOff, e.BlockCount, geo.FSBDaddr(e.StartBlock)))
					}
				})
				if k := kernelPositions(t, path, bs); strings.Join(k, " ") != strings.Join(ours, " ") {
					t.Fatalf("op %d (%s on f%d): extents differ\n kernel %v\n ours   %v", i, op.cmd, op.file, k, ours)
				}
			}
			t.Logf("%d commands: every extent where the kernel put it", n)
		})
	}
}
