package crashdev

import (
	"bytes"
	"testing"
)

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestCrashImages(t *testing.T) {
	base := make([]byte, 8192)
	r := NewRecorder(base)
	r.WriteAt(fill(512, 1), 0)    // window 0: write 0
	r.Flush()                     // flush 1
	r.WriteAt(fill(1024, 2), 512) // window 1: write 0
	r.WriteAt(fill(512, 3), 2048) // window 1: write 1
	r.Flush()                     // flush 2
	r.WriteAt(fill(1536, 4), 4096)
	if r.Flushes() != 2 || len(r.Window(1)) != 2 || len(r.Window(2)) != 1 {
		t.Fatalf("flushes %d, windows %d %d", r.Flushes(), len(r.Window(1)), len(r.Window(2)))
	}
	if !bytes.Equal(r.Bytes()[4096:5632], fill(1536, 4)) {
		t.Fatal("the recorder is not the device")
	}
	at := func(img []byte, off, n int) []byte { return img[off : off+n] }
	img, err := r.CrashImage(0, nil, nil)
	if err != nil || !bytes.Equal(img, base) {
		t.Fatalf("crash before any flush, nothing kept: %v", err)
	}
	img, _ = r.CrashImage(1, func(i int) bool { return i == 1 }, nil)
	if !bytes.Equal(at(img, 0, 512), fill(512, 1)) || !bytes.Equal(at(img, 512, 1024), make([]byte, 1024)) ||
		!bytes.Equal(at(img, 2048, 512), fill(512, 3)) {
		t.Fatal("after flush 1 keeping write 1 only")
	}
	img, _ = r.CrashImage(2, nil, &Tear{Index: 0, Sectors: 2})
	if !bytes.Equal(at(img, 512, 1024), fill(1024, 2)) || !bytes.Equal(at(img, 4096, 1024), fill(1024, 4)) ||
		!bytes.Equal(at(img, 5120, 512), make([]byte, 512)) {
		t.Fatal("after flush 2 with the last write torn after 2 sectors")
	}
	if _, err := r.CrashImage(2, nil, &Tear{Index: 0, Sectors: 3}); err == nil {
		t.Fatal("a tear that keeps the whole write")
	}
	if _, err := r.CrashImage(3, nil, nil); err == nil {
		t.Fatal("crash after a flush that never happened")
	}
}
