package main

import (
	"strings"
	"testing"
)

// TestDemo runs the README's first command in process.
func TestDemo(t *testing.T) {
	out := mustCLI(t, "demo")
	for _, want := range []string{"xfsimg inspect", "This is the xfsimg sample image", "btree format, 40 extents", "total free blocks", "unwritten", "1.0 MiB written", "clean"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
