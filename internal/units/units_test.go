package units

import "testing"

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"4k", 4096, true},
		{"4K", 4096, true},
		{"1m", 1 << 20, true},
		{"2g", 2 << 30, true},
		{"3t", 3 << 40, true},
		{"1e", 1 << 60, true},
		{"8e", 0, false}, // overflows
		{"3b", 3 * 1024, true},
		{"3s", 3 * 512, true},
		{"0x10", 16, true},
		{"0x10k", 16 << 10, true},
		{"0x1b", 27, true}, // b is a hex digit here, as strtoll reads it
		{"010", 8, true},   // octal, as strtoll with base 0
		{"08", 0, false},
		{"-4k", -4096, true},
		{"1.5m", 0, false},
		{"", 0, false},
		{"k", 0, false},
		{"4kb", 0, false},
		{"4x", 0, false},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in, 1024, 512)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
	if _, err := ParseSize("1b", 0, 512); err == nil {
		t.Error("block unit accepted without a block size")
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4k", "0x1f", "-1", "077", "9e", "1b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseSize(s, 4096, 512)
	})
}
