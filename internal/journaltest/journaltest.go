// Package journaltest opens an image for writing through its own log, for
// the tests of the layers that change metadata in transactions (agf,
// refcount, bmbt, the CLI): the device, the file system read from it and
// the journal, and the two ways a test ends a session: cleanly, with an
// unmount record, or as a crash, for the kernel's log recovery to find.
package journaltest

import (
	"testing"

	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// Open opens the image file img for writing, then its file system and
// journal as OpenStorage does; cleanup closes the device if the test has
// not.
func Open(t testing.TB, img string, opt log.Options) (*ondisk.Device, *xfs.FS, *log.Journal) {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{Write: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	f, j := OpenStorage(t, dev, opt)
	return dev, f, j
}

// OpenStorage reads the file system on dev (an image file or an in-memory
// one) and opens its journal.
func OpenStorage(t testing.TB, dev ondisk.Storage, opt log.Options) (*xfs.FS, *log.Journal) {
	t.Helper()
	f, err := xfs.New(dev)
	if err != nil {
		t.Fatal(err)
	}
	j, err := log.Open(dev, f.SB, f.Geo, opt)
	if err != nil {
		t.Fatal(err)
	}
	return f, j
}

// Close ends the journal cleanly, with an unmount record, and closes dev
// if it is a device, so that the tools can look at the image.
func Close(t testing.TB, j *log.Journal, dev ondisk.Storage) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	closeDevice(t, dev)
}

// Crash writes what was committed to the log and in place, then closes
// dev without an unmount record: the kernel's next mount runs log
// recovery (and what follows it) as after a crash.
func Crash(t testing.TB, j *log.Journal, dev ondisk.Storage) {
	t.Helper()
	if err := j.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	closeDevice(t, dev)
}

func closeDevice(t testing.TB, dev ondisk.Storage) {
	t.Helper()
	if d, ok := dev.(*ondisk.Device); ok {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
