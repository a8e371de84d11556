package xfs

import (
	"io"
	"testing"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/ondisk"
)

func benchFS(b *testing.B, name string) *FS {
	b.Helper()
	f, err := Open(images.Extract(b, name), ondisk.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkExtentsBtree maps a file whose ~700 extents sit in a BMBT.
func BenchmarkExtentsBtree(b *testing.B) {
	f := benchFS(b, "files-4k")
	for b.Loop() {
		ip, err := f.Lookup("/frag-a", false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ip.Extents(bmbt.DataFork); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFreeSpace reads both free-space btrees of every AG.
func BenchmarkFreeSpace(b *testing.B) {
	f := benchFS(b, "freesp-1k")
	for b.Loop() {
		for agno := uint32(0); agno < f.Geo.AGCount; agno++ {
			ag, err := f.FreeSpace(agno)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ag.FreeExtents(ag.BnoTree()); err != nil {
				b.Fatal(err)
			}
			if _, err := ag.FreeExtents(ag.CntTree()); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCat streams the 64 MiB file of files-4k.
func BenchmarkCat(b *testing.B) {
	f := benchFS(b, "files-4k")
	ip, err := f.Lookup("/large", false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(ip.Size())
	for b.Loop() {
		r, err := ip.OpenFile()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
