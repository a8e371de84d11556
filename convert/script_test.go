package convert

import (
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in   string
		want Command
		err  string
	}{
		{"falloc 0 4k", Command{Name: "falloc", Off: 0, Len: 4096}, ""},
		{"falloc -k 1m 2b", Command{Name: "falloc", Keep: true, Off: 1 << 20, Len: 4096}, ""},
		{"  fpunch 0x1000 3s  # comment", Command{Name: "fpunch", Off: 4096, Len: 1536}, ""},
		{"truncate 123", Command{Name: "truncate", Off: 123}, ""},
		{"# only a comment", Command{}, ""},
		{"", Command{}, ""},
		{"falloc -p 0 4k", Command{}, "option -p is not supported"},
		{"pwrite 0 4k", Command{Name: "pwrite", Len: 4096}, ""},
		{"pwrite -S 0x1234 -b 64k 1m 2b", Command{Name: "pwrite", Seed: 0x34, BSize: 65536, Off: 1 << 20, Len: 4096}, ""},
		{"pwrite -S0 -q -i /x -s 1k -W 0 1k", Command{Name: "pwrite", Seed: 0, InFile: "/x", Skip: 1024, Sync: "fsync", Len: 1024}, ""},
		{"pwrite -R 0 1k", Command{}, "option -R is not supported"},
		{"pwrite -S", Command{}, "needs an argument"},
		{"pwrite -S zz 0 1", Command{}, "non-numeric seed"},
		{"pwrite -b 2g 0 4g", Command{}, "bsize 2147483648 is larger"},
		{"sync_range -a 0 4k", Command{Name: "sync_range", Flags: "a", Len: 4096}, ""},
		{"fzero -k 1 2", Command{Name: "fzero", Keep: true, Off: 1, Len: 2}, ""},
		{"fsync", Command{Name: "fsync"}, ""},
		{"fsync 1", Command{}, "usage"},
		{"open /a/b", Command{Name: "open", Path: "/a/b"}, ""},
		{"open", Command{}, "creating files is not implemented"},
		{"falloc 0", Command{}, "usage"},
		{"fpunch -1 4k", Command{}, "non-numeric offset argument -- -1"},
		{"fpunch 0 x", Command{}, "non-numeric length argument -- x"},
		{"truncate", Command{}, "usage"},
		{"truncate 1 2", Command{}, "usage"},
		{"pread 0 4k", Command{}, "unknown command"},
	}
	for _, c := range cases {
		got, err := ParseCommand(c.in, 3, 2048, 512)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got.Line, got.Text = 0, ""
		if c.want.Name != "pwrite" {
			c.want.Seed, c.want.BSize = 0xcd, 4096
		} else if c.want.BSize == 0 {
			c.want.BSize = 4096
			if c.want.Seed == 0 && c.want.InFile == "" {
				c.want.Seed = 0xcd
			}
		}
		if got != c.want {
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		}
	}
	cmds, err := ParseScript(strings.NewReader("falloc 0 1k\n\n# x\ntruncate 0\n"), 4096, 512)
	if err != nil || len(cmds) != 2 || cmds[1].Line != 4 {
		t.Fatalf("script: %+v %v", cmds, err)
	}
	if _, err := ParseScript(strings.NewReader("falloc 0 1k\nbogus\n"), 4096, 512); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad script: %v", err)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"falloc -k 0 4k", "fpunch 0x10 1b", "truncate 7", "falloc -kk 1 1", "# x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommand(s, 1, 4096, 512)
		if err == nil && c.Name != "" && (c.Off < 0 || c.Len < 0) {
			t.Fatalf("%q parsed to negative %+v", s, c)
		}
	})
}
