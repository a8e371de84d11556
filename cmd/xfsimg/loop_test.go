package main

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/oracle"
)

// TestLoopDevice reads a fixture through a loop device with O_DIRECT: the
// device's geometry comes from its ioctls and file bytes still match.
func TestLoopDevice(t *testing.T) {
	oracle.Require(t, oracle.Loop)
	m, err := images.Load("files-4k")
	if err != nil {
		t.Fatal(err)
	}
	dev := oracle.Attach(t, images.Extract(t, "files-4k"))
	var s summary
	cliJSON(t, &s, "inspect", dev)
	if !s.Device.BlockDevice || !s.Device.Direct || s.Device.Size != m.Size {
		t.Fatalf("device %+v: want a block device read with O_DIRECT, size %d", s.Device, m.Size)
	}
	for _, f := range m.Files {
		if f.Type != images.TypeFile {
			continue
		}
		h := &countingHash{h: sha256.New()}
		if r := runCLITo(t, h, "cat", dev, f.Path); r.code != 0 {
			t.Fatalf("cat %s on %s: %s", f.Path, dev, r.err)
		}
		if got := hex.EncodeToString(h.h.Sum(nil)); got != f.SHA256 {
			t.Errorf("%s via %s: sha256 %s, kernel %s", f.Path, dev, got, f.SHA256)
		}
	}
	compareFields(t, "sb", mustCLI(t, "inspect", dev, "sb"), oracle.DB(t, dev, "sb 0", "p"))
}
