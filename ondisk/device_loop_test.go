package ondisk_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// An image file attached to a loop device must not be opened for writing,
// whatever name reaches it; reading stays allowed.
func TestOpenRefusesLoopBackingFile(t *testing.T) {
	oracle.Require(t, oracle.Loop)
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// Before attaching: writable.
	d, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	loop := oracle.Attach(t, img)
	refused := func(name, path string) {
		t.Helper()
		_, err := ondisk.Open(path, ondisk.OpenOptions{Write: true, NoWait: true})
		if err == nil || !strings.Contains(err.Error(), loop) {
			t.Fatalf("%s: write open of an attached image: %v", name, err)
		}
	}
	refused("path", img)
	if r, err := ondisk.Open(img, ondisk.OpenOptions{NoWait: true}); err != nil {
		t.Fatalf("read-only open of an attached image: %v", err)
	} else {
		r.Close()
	}
	link := filepath.Join(dir, "hardlink")
	if err := os.Link(img, link); err != nil {
		t.Fatal(err)
	}
	refused("hard link", link)
	rel, _ := filepath.Rel(mustGetwd(t), img)
	refused("relative path", rel)
	// Renamed after attaching (sysfs shows the new name; the ioctl
	// fallback has its own test).
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(img, moved); err != nil {
		t.Fatal(err)
	}
	refused("renamed", moved)

	oracle.Detach(t, loop)
	d, err = ondisk.Open(moved, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatalf("after losetup -d: %v", err)
	}
	d.Close()
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
