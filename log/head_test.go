package log

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

func openArea(t testing.TB, img string) *Area {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return areaOf(t, dev)
}

// withArea opens img read-only for the time fn runs: a device left open
// holds a shared lock that a later writable open would wait for.
func withArea(t testing.TB, img string, fn func(a *Area)) {
	t.Helper()
	dev, err := ondisk.Open(img, ondisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	fn(areaOf(t, dev))
}

func areaOf(t testing.TB, dev ondisk.Storage) *Area {
	t.Helper()
	buf := make([]byte, 4096)
	if _, err := dev.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Verify(); err != nil {
		t.Fatal(err)
	}
	return NewArea(dev, ondisk.NewGeometry(sb), sb.UUID)
}

func TestFindStateFreshMkfs(t *testing.T) {
	img := oracle.Mkfs(t, 512<<20)
	st, err := openArea(t, img).FindState()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Clean || st.Head != MakeLSN(1, 2) || st.LastRecord != 0 {
		t.Fatalf("fresh mkfs: got %+v, want clean head (1,2) after the record at 0", st)
	}
	checkAgainstLogprint(t, img, st)
}

func TestFindStateAfterKernel(t *testing.T) {
	img := oracle.Mkfs(t, 512<<20)
	dir, _ := oracle.Mount(t, img)
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, dir)
	st, err := openArea(t, img).FindState()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Clean || st.Head.Cycle() != 1 || st.Head.Block() <= 2 {
		t.Fatalf("after a kernel mount: got %+v, want a clean log beyond block 2", st)
	}
	checkAgainstLogprint(t, img, st)
}

func TestFindStateDirty(t *testing.T) {
	img := oracle.Mkfs(t, 512<<20)
	dir, _ := oracle.Mount(t, img)
	oracle.Run(t, "xfs_io", "-f", "-c", "pwrite 0 64k", "-c", "fsync", filepath.Join(dir, "f"))
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", dir)
	oracle.Unmount(t, dir)
	st, err := openArea(t, img).FindState()
	if err != nil {
		t.Fatal(err)
	}
	if st.Clean {
		t.Fatalf("after shutdown -f: got %+v, want dirty", st)
	}
	checkAgainstLogprint(t, img, st)
}

// logprintState parses xfs_logprint's "log tail: T head: H state: <S>".
func logprintState(t *testing.T, img string) (tail, head int64, clean bool) {
	t.Helper()
	out := oracle.Run(t, "xfs_logprint", "-t", img)
	m := regexp.MustCompile(`log tail: (\d+) head: (\d+) state: <(\w+)>`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("xfs_logprint output has no state line:\n%s", out)
	}
	tail, _ = strconv.ParseInt(m[1], 10, 64)
	head, _ = strconv.ParseInt(m[2], 10, 64)
	return tail, head, m[3] == "CLEAN"
}

func checkAgainstLogprint(t *testing.T, img string, st *State) {
	t.Helper()
	tail, head, clean := logprintState(t, img)
	if int64(st.Head.Block()) != head || int64(st.Tail.Block()) != tail || st.Clean != clean {
		t.Fatalf("state %+v; xfs_logprint says tail %d head %d clean %v", st, tail, head, clean)
	}
}
