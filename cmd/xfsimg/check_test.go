package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/images"
)

// TestCheckCommand runs `xfsimg check` as a user does: the summary line
// and one line per finding, --json, and the exit status (0 clean, 1
// problems, 2 could not run).
func TestCheckCommand(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		img := images.Extract(t, "sample")
		r := runCLI(t, "check", img)
		if r.code != 0 || r.out != img+": clean\n" || r.err != "" {
			t.Errorf("clean image: exit %d, out %q, err %q", r.code, r.out, r.err)
		}
		var rep check.Report
		cliJSON(t, &rep, "check", img)
		if !rep.Clean() || rep.Problems != 0 || rep.Stats.Inodes == 0 || !rep.Log.Clean || rep.Findings == nil {
			t.Errorf("--json on a clean image: %+v", rep)
		}
	})
	t.Run("problems", func(t *testing.T) {
		img := corrupt(t, "sample", "agf 1", "write -d freeblks 12345", "inode 131", "write core.nlinkv2 3")
		r := runCLI(t, "check", img)
		lines := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
		if r.code != 1 || lines[0] != img+": 2 problems in 2 kinds" || len(lines) != 3 {
			t.Fatalf("damaged image: exit %d, out %q", r.code, r.out)
		}
		for _, want := range []string{"agf-freeblks: AG 1 block 0: ", "(expected ", ", found 12345)", "nlink: AG 0 inode 131: ", "found 3)"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("output lacks %q:\n%s", want, r.out)
			}
		}
		if !strings.Contains(r.err, "2 problems in 2 kinds") || strings.Count(r.err, "\n") != 1 {
			t.Errorf("stderr %q: want one line with the summary", r.err)
		}
		o := runCLI(t, "--json", "check", img)
		var rep check.Report
		if err := json.Unmarshal([]byte(o.out), &rep); err != nil || o.code != 1 {
			t.Fatalf("--json: exit %d, %v\n%s", o.code, err, o.out)
		}
		if rep.Problems != 2 || len(rep.Kinds) != 2 || !rep.Has(check.KindAGFFreeblks) || !rep.Has(check.KindNlink) {
			t.Errorf("--json report %+v", rep)
		}
		for _, f := range rep.Findings {
			if f.Kind == check.KindAGFFreeblks && (f.AG != 1 || f.Found != "12345" || f.Inode != -1) {
				t.Errorf("finding %+v", f)
			}
		}
	})
	t.Run("cannot run", func(t *testing.T) {
		for _, img := range []string{writeFile(t, "zero.img", make([]byte, 1<<20)), "/nonexistent/image"} {
			r := runCLI(t, "check", img)
			if r.code != 2 || strings.Count(r.err, "\n") != 1 || r.out != "" {
				t.Errorf("check %s: exit %d, out %q, err %q; want exit 2 and one line", img, r.code, r.out, r.err)
			}
		}
	})
}
