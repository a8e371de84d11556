package check_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// BenchmarkCheck checks the perf image when TestCheckPerformance has built
// it (else the dirs-4k fixture), with O_DIRECT as the command does.
func BenchmarkCheck(b *testing.B) {
	img := filepath.Join(perfCacheDir(b), "check-perf-100k.img")
	if _, err := os.Stat(img); err != nil {
		img = fixture(b, "dirs-4k")
	}
	b.Logf("image %s", img)
	for i := 0; i < b.N; i++ {
		f, err := xfs.Open(img, ondisk.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := check.Run(f, check.Options{}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
