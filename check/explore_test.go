package check_test

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// TestSilentFlipsAgainstRepair (XFSIMG_LONG=1) damages metadata as
// TestRandomBitFlips does and, whenever check finds nothing, asks
// xfs_repair -n: a flip repair flags and check does not is a check that
// is missing. This is how the inode field, superblock and log record
// checks were found.
func TestSilentFlipsAgainstRepair(t *testing.T) {
	if os.Getenv("XFSIMG_LONG") != "1" {
		t.Skip("XFSIMG_LONG=1 runs this (minutes)")
	}
	oracle.Require(t, oracle.Xfsprogs)
	for _, name := range []string{"sample", "freesp-1k", "files-4k", "dirs-4k", "multi-ag"} {
		t.Run(name, func(t *testing.T) {
			o, _, regions := metadataRegions(t, fixture(t, name))
			rng := rand.New(rand.NewPCG(uint64(len(name)), 99))
			for i := 0; i < 300; i++ {
				reg := regions[rng.IntN(len(regions))]
				what := damage(rng, o, reg, rng.IntN(4) != 0)
				r := checkBounded(t, o, what)
				if r == nil || !r.Clean() {
					continue
				}
				img := copyImage(t, fixture(t, name))
				f, err := os.OpenFile(img, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				for off, b := range o.patches {
					if _, err := f.WriteAt(b, off); err != nil {
						t.Fatal(err)
					}
				}
				f.Close()
				if flagged, out := repairFlags(t, img); flagged {
					t.Errorf("%s %s: check is clean, xfs_repair -n flags:\n%s", name, what, repairLines(out))
				}
				os.Remove(img)
			}
		})
	}
}
