package ondisk

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// The fallback that asks the loop device itself (LOOP_GET_STATUS64) must
// match the backing file by device and inode, and nothing else.
func TestLoopBacksIoctl(t *testing.T) {
	oracle.Require(t, oracle.Loop)
	dir := t.TempDir()
	img, other := filepath.Join(dir, "img"), filepath.Join(dir, "other")
	for _, p := range []string{img, other} {
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loop := oracle.Attach(t, img)
	for _, c := range []struct {
		path string
		want bool
	}{{img, true}, {other, false}} {
		var st syscall.Stat_t
		if err := syscall.Stat(c.path, &st); err != nil {
			t.Fatal(err)
		}
		got, err := loopBacks(loop, &st)
		if err != nil || got != c.want {
			t.Fatalf("loopBacks(%s, %s) = %v, %v; want %v", loop, c.path, got, err, c.want)
		}
	}
}
