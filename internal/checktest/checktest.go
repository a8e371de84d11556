// Package checktest runs xfsimg's checker (package check) from tests. The
// packages that write images hold each one they make to it, next to
// xfs_repair -n, which skips its free-space rebuild and so cannot see a
// leaked block.
package checktest

import (
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// Run checks img and fails the test if the check cannot run.
func Run(t testing.TB, img string) *check.Report {
	t.Helper()
	f, err := xfs.Open(img, ondisk.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatalf("open %s: %v", img, err)
	}
	defer f.Close()
	r, err := check.Run(f, check.Options{})
	if err != nil {
		t.Fatalf("check %s: %v", img, err)
	}
	return r
}

// Text is the report as the CLI prints it, for failure messages.
func Text(r *check.Report) string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for _, f := range r.Findings {
		b.WriteString("\n  " + f.String())
	}
	return b.String()
}

// RequireClean fails the test unless xfsimg check finds nothing on img.
func RequireClean(t testing.TB, img string) {
	t.Helper()
	if r := Run(t, img); !r.Clean() {
		t.Fatalf("xfsimg check %s: %s", img, Text(r))
	}
}
