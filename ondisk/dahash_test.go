package ondisk_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/dir/dirtest"
	"github.com/xfsimg/xfsimg/internal/oracle"
	"github.com/xfsimg/xfsimg/ondisk"
)

// Values printed by `xfs_db -c 'hash NAME'` (xfsprogs 6.1).
func TestDAHashNameKnown(t *testing.T) {
	for _, c := range []struct {
		name string
		hash uint32
	}{
		{"", 0},
		{"x", 0x78},
		{"ab", 0x30e2},
		{"abc", 0x187163},
		{"hello", 0x8cbb3669},
		{".", 0x2e},
	} {
		if got := ondisk.DAHashName([]byte(c.name)); got != c.hash {
			t.Errorf("DAHashName(%q) = 0x%x, want 0x%x", c.name, got, c.hash)
		}
	}
}

// TestDAHashNameXfsDB compares names of every length up to 20, and some
// long ones, with xfs_db's hash command.
func TestDAHashNameXfsDB(t *testing.T) {
	img := oracle.Mkfs(t, 300<<20)
	var names []string
	for n := 1; n <= 20; n++ {
		var b strings.Builder
		for i := range n {
			b.WriteByte(byte('A' + (i*7+n)%58))
		}
		names = append(names, strings.ReplaceAll(b.String(), "\\", "_"))
	}
	names = append(names, strings.Repeat("z", 255), strings.Repeat("0123456789", 20))
	cmds := make([]string, len(names))
	for i, n := range names {
		cmds[i] = "hash " + n
	}
	out := strings.Fields(oracle.DB(t, img, cmds...))
	if len(out) != len(names) {
		t.Fatalf("xfs_db printed %d hashes for %d names: %v", len(out), len(names), out)
	}
	for i, n := range names {
		want, err := strconv.ParseUint(out[i], 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		if got := ondisk.DAHashName([]byte(n)); got != uint32(want) {
			t.Errorf("DAHashName(%q) = 0x%x, xfs_db says 0x%x", n, got, want)
		}
	}
}

// The collision family the test images use must really collide, or the
// sibling-leaf lookups they are meant to exercise are not exercised.
func TestCollisions(t *testing.T) {
	names := dirtest.Collisions(3)
	seen := map[string]bool{}
	h := ondisk.DAHashName(names[0])
	for _, n := range names {
		if seen[string(n)] {
			t.Fatalf("duplicate name %q", n)
		}
		seen[string(n)] = true
		if got := ondisk.DAHashName(n); got != h {
			t.Fatalf("DAHashName(%q) = 0x%x, want 0x%x", n, got, h)
		}
		if regexp.MustCompile("[/\x00]").Match(n) {
			t.Fatalf("%q is not a valid name", n)
		}
	}
	if len(names) != 512 {
		t.Fatal(fmt.Sprint(len(names)))
	}
}
