package check_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
)

var (
	fixtureMu   sync.Mutex
	fixtureDir  string
	fixturePath = map[string]string{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// fixture extracts a fixture once per test binary; tests that change it
// work on copies (copyImage).
func fixture(t testing.TB, name string) string {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if p, ok := fixturePath[name]; ok {
		return p
	}
	if fixtureDir == "" {
		d, err := os.MkdirTemp("", "xfsimg-check-")
		if err != nil {
			t.Fatal(err)
		}
		fixtureDir = d
	}
	p := filepath.Join(fixtureDir, name+".img")
	if err := images.ExtractTo(name, p); err != nil {
		t.Fatal(err)
	}
	fixturePath[name] = p
	return p
}

// copyImage makes a sparse copy of an image in the test's temp dir.
func copyImage(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v: %s", src, err, out)
	}
	return dst
}

// requireClean fails unless the report has no problem.
func requireClean(t testing.TB, what string, r *check.Report) {
	t.Helper()
	if !r.Clean() {
		t.Errorf("%s: %s", what, checktest.Text(r))
	}
}

// dbWrite runs xfs_db in expert mode with the given commands.
func dbWrite(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	args := []string{"-x"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("xfs_db", append(args, img)...).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_db -x %q: %v\n%s", cmds, err, out)
	}
	return string(out)
}

// dbField reads one field with xfs_db -r: the value printed for name by
// the commands.
func dbField(t testing.TB, img, name string, cmds ...string) string {
	t.Helper()
	out := oracle.DB(t, img, cmds...)
	for _, kv := range oracle.ParseFields(out) {
		if kv.Name == name {
			return kv.Value
		}
	}
	t.Fatalf("xfs_db %q: no field %s in\n%s", cmds, name, out)
	return ""
}

// dbInt reads a numeric field (decimal or 0x hex).
func dbInt(t testing.TB, img, name string, cmds ...string) uint64 {
	t.Helper()
	v := dbField(t, img, name, cmds...)
	n, err := strconv.ParseUint(strings.Fields(v)[0], 0, 64)
	if err != nil {
		t.Fatalf("xfs_db %q: %s = %q is not a number", cmds, name, v)
	}
	return n
}

var recRE = regexp.MustCompile(`(?m)^(\d+):\[([^\]]*)\]`)

// dbRecs reads an array of records as xfs_db prints them ("1:[a,b,c]"),
// each as its numbers.
func dbRecs(t testing.TB, img string, cmds ...string) [][]uint64 {
	t.Helper()
	out := oracle.DB(t, img, cmds...)
	var recs [][]uint64
	for _, m := range recRE.FindAllStringSubmatch(out, -1) {
		var rec []uint64
		for _, f := range strings.Split(m[2], ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 0, 64)
			if err != nil {
				t.Fatalf("xfs_db %q: record %q", cmds, m[0])
			}
			rec = append(rec, n)
		}
		recs = append(recs, rec)
	}
	return recs
}

// bmapRE matches xfs_db bmap output lines.
var bmapRE = regexp.MustCompile(`data offset (\d+) startblock (\d+) \((\d+)/(\d+)\) count (\d+) flag (\d+)`)

// dbExtent is one line of xfs_db bmap.
type dbExtent struct{ off, fsb, agno, agbno, count uint64 }

func dbBmap(t testing.TB, img string, ino uint64) []dbExtent {
	t.Helper()
	out := oracle.DB(t, img, "inode "+strconv.FormatUint(ino, 10), "bmap")
	var exts []dbExtent
	for _, m := range bmapRE.FindAllStringSubmatch(out, -1) {
		var v [5]uint64
		for i, s := range []string{m[1], m[2], m[3], m[4], m[5]} {
			v[i], _ = strconv.ParseUint(s, 10, 64)
		}
		exts = append(exts, dbExtent{v[0], v[1], v[2], v[3], v[4]})
	}
	return exts
}

// inodeOf returns the inode of a path in a fixture's manifest.
func inodeOf(t testing.TB, fixture, path string) uint64 {
	t.Helper()
	m, err := images.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	f := m.Lookup(path)
	if f == nil {
		t.Fatalf("%s: no %s in the manifest", fixture, path)
	}
	return f.Inode
}

// repairFlags runs xfs_repair -n and reports whether it found problems
// (exit status 1), failing on any other status.
func repairFlags(t testing.TB, img string) (bool, string) {
	t.Helper()
	oracle.Require(t, oracle.Xfsprogs)
	out, err := exec.Command("xfs_repair", "-n", "-f", img).CombinedOutput()
	if err == nil {
		return false, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return true, string(out)
	}
	t.Fatalf("xfs_repair -n %s: %v\n%s", img, err, out)
	return false, ""
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }
