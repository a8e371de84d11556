package main

import (
	"io"
	"testing"

	"github.com/xfsimg/xfsimg/images"
)

// BenchmarkInspectFreesp runs `xfsimg inspect IMAGE freesp` in process on
// the fragmented-free-space fixture: both free-space btrees of every AG,
// read and binned. The extracted image is in the page cache, so the reads
// take the cached path (ondisk.Device.ReadCached); what is measured is
// mostly the walks and the binning.
func BenchmarkInspectFreesp(b *testing.B) {
	img := images.Extract(b, "freesp-1k")
	for b.Loop() {
		if r := runCLITo(b, io.Discard, "inspect", img, "freesp"); r.code != 0 {
			b.Fatalf("exit %d: %s", r.code, r.err)
		}
	}
}
