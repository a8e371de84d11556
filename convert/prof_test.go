package convert_test

import (
	"os"
	"testing"

	"github.com/xfsimg/xfsimg/convert"
	"github.com/xfsimg/xfsimg/ondisk"
)

// TestProfileScript runs XFSIMG_PROF_SCRIPT on /f of XFSIMG_PROF_IMG, for
// profiling (go test -cpuprofile).
func TestProfileScript(t *testing.T) {
	img, script := os.Getenv("XFSIMG_PROF_IMG"), os.Getenv("XFSIMG_PROF_SCRIPT")
	if img == "" {
		t.Skip("XFSIMG_PROF_IMG not set")
	}
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true, Buffered: os.Getenv("XFSIMG_PROF_BUFFERED") == "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s, err := convert.Open(dev, convert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := convert.ParseScript(f, int64(s.Geometry().BlockSize), int64(s.Geometry().SectSize))
	if err != nil {
		t.Fatal(err)
	}
	ino, err := s.Lookup("/f")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := s.Run(ino, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s.Stats())
}
