package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// cliResult is what one in-process run of xfsimg produced.
type cliResult struct {
	out, err string
	code     int
}

// runCLI runs xfsimg in process with args, capturing its output. Commands
// share package state, so tests that use it do not run in parallel.
func runCLI(t testing.TB, args ...string) cliResult {
	t.Helper()
	var o bytes.Buffer
	r := runCLITo(t, &o, args...)
	r.out = o.String()
	return r
}

// runCLITo runs xfsimg with its standard output going to w.
func runCLITo(t testing.TB, w io.Writer, args ...string) cliResult {
	t.Helper()
	var e bytes.Buffer
	oldOut, oldErr := stdout, stderr
	stdout, stderr = w, &e
	defer func() { stdout, stderr = oldOut, oldErr }()
	gflags = globalFlags{}
	code := run(args)
	return cliResult{err: e.String(), code: code}
}

// mustCLI runs xfsimg and fails the test unless it exits 0.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("xfsimg %s: exit %d: %s", strings.Join(args, " "), r.code, r.err)
	}
	return r.out
}

// cliJSON runs xfsimg --json and decodes its output into v.
func cliJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("xfsimg --json %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// parseFieldLines splits "name = value" output (ours, with aligned names,
// or xfs_db's) into an ordered list.
func parseFieldLines(out string) [][2]string {
	var kv [][2]string
	for _, line := range strings.Split(out, "\n") {
		name, val, ok := strings.Cut(line, " = ")
		if !ok {
			if n, found := strings.CutSuffix(line, " ="); found {
				name, ok = n, true
			}
		}
		if ok {
			kv = append(kv, [2]string{strings.TrimSpace(name), strings.TrimRight(val, " ")})
		}
	}
	return kv
}
