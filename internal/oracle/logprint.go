package oracle

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

var logprintComplaint = regexp.MustCompile(`(?i)\b(bad|error|invalid|unknown|corrupt\w*|mismatch|unexpected)\b`)

// RequireLogprintClean runs xfs_logprint on img (the record view and the
// -t transaction view) and fails on a non-zero exit or anything that looks
// like a parse problem. It returns both outputs.
func RequireLogprintClean(t testing.TB, img string) string {
	t.Helper()
	var all string
	for _, args := range [][]string{{img}, {"-t", img}} {
		out, err := exec.Command("xfs_logprint", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("xfs_logprint %v: %v\n%s", args, err, lastLines(string(out), 40))
		}
		if loc := logprintComplaint.FindStringIndex(string(out)); loc != nil {
			t.Fatalf("xfs_logprint %v says %q:\n%s", args, lineAt(string(out), loc[0]), lastLines(string(out), 40))
		}
		all += string(out)
	}
	return all
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func lineAt(s string, i int) string {
	a := strings.LastIndex(s[:i], "\n") + 1
	b := strings.Index(s[i:], "\n")
	if b < 0 {
		return s[a:]
	}
	return s[a : i+b]
}
