package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/xfsimg/xfsimg/internal/oracle"
)

// TestWriteCommand copies a host file and standard input into files of an
// image and reads them back through the kernel: the bytes, the sizes, a
// clean xfs_repair -n, and a JSON summary that adds up.
func TestWriteCommand(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop, oracle.Root)
	img := convertImage(t)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5<<20+123)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	host := filepath.Join(t.TempDir(), "host")
	if err := os.WriteFile(host, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A 1 MiB page cache: the write goes through several writebacks.
	var got writeJSON
	cliJSON(t, &got, "write", img, "/f", "--from", host, "--offset", "8k", "--dirty-limit", "1m", "--workers", "2")
	if got.Bytes != int64(len(data)) || got.BytesWritten != int64(len(data)) || got.Offset != 8192 ||
		got.ExtentsCreated < 1 || got.DataBytes < int64(len(data)) || got.Transactions < 2 || got.Checkpoints < 1 ||
		got.LogBytes == 0 || got.PeakCacheBytes > 2<<20 {
		t.Fatalf("summary %+v", got)
	}
	oracle.RequireRepairClean(t, img)

	// Standard input, through the symlink, over the start of the file.
	small := []byte("hello, xfs\n")
	stdin = bytes.NewReader(small)
	defer func() { stdin = os.Stdin }()
	out := mustCLI(t, "write", img, "/l")
	if !bytes.Contains([]byte(out), []byte("/l: 11 B written at 0")) {
		t.Errorf("output %q", out)
	}
	stdin = os.Stdin
	oracle.RequireRepairClean(t, img)

	oracle.WithMount(t, img, func(d string) {
		b, err := os.ReadFile(filepath.Join(d, "f"))
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte{0x5a}, 8192)
		copy(want, small)
		want = append(want, data...)
		if !bytes.Equal(b, want) {
			t.Fatalf("file: %d bytes, want %d; first difference at %d", len(b), len(want), firstDiff(b, want))
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestWriteRefusals: one line and exit 1 for every bad input; the image is
// unchanged when nothing could be written.
func TestWriteRefusals(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs, oracle.Loop, oracle.Root)
	img := convertImage(t)
	host := filepath.Join(t.TempDir(), "host")
	os.WriteFile(host, []byte("data"), 0o644)
	sum := fileSum(t, img)
	for _, c := range []struct {
		want string
		args []string
	}{
		{"creating files is not implemented yet", []string{"write", img, "/nope", "--from", host}},
		{"not a regular file", []string{"write", img, "/d", "--from", host}},
		{"no such file or directory", []string{"write", img, "/f", "--from", host + ".missing"}},
		{"is a directory", []string{"write", img, "/f", "--from", t.TempDir()}},
		{"--offset", []string{"write", img, "/f", "--from", host, "--offset", "-1"}},
		{"--offset", []string{"write", img, "/f", "--from", host, "--offset", "lots"}},
		{"--dirty-limit", []string{"write", img, "/f", "--from", host, "--dirty-limit", "x"}},
		{"--workers", []string{"write", img, "/f", "--from", host, "--workers", "-2"}},
		{"accepts 2 arg(s)", []string{"write", img}},
		{"no such file or directory", []string{"write", img + ".missing", "/f", "--from", host}},
	} {
		requireOneLineFailure(t, c.want, c.args...)
		if fileSum(t, img) != sum {
			t.Fatalf("%v: the image changed", c.args[2:])
		}
	}
	// More than fits: the write stops at the first write that does not,
	// what came before stays, and the image is consistent.
	stdin = io.LimitReader(zeros{}, 600<<20)
	defer func() { stdin = os.Stdin }()
	requireOneLineFailure(t, "no space left on device", "write", img, "/f", "--dirty-limit", "16m")
	oracle.RequireRepairClean(t, img)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
