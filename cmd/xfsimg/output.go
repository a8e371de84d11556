package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/dsnet/golib/jsonfmt"
	"github.com/dsnet/golib/unitconv"
	"github.com/xfsimg/xfsimg/ondisk"
)

// stdout and stderr are variables so that tests run commands in process.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// jsonfmtLimit is the largest document jsonfmt formats: it lays out small
// documents compactly and readably, but its cost grows faster than the
// input, so long arrays (an extent map of thousands of records) are
// indented by encoding/json instead.
const jsonfmtLimit = 64 << 10

// printJSON writes v as formatted JSON.
func printJSON(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var out []byte
	if len(raw) <= jsonfmtLimit {
		if out, err = jsonfmt.Format(raw); err != nil {
			return err
		}
	} else {
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return err
		}
		out = b.Bytes()
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// printFields writes fields as xfs_db does, "name = value", with the names
// aligned so that a long header reads as a table.
func printFields(fs ondisk.Fields) error {
	w := 0
	for _, f := range fs {
		w = max(w, len(f.Name))
	}
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%-*s = %s\n", w, f.Name, f.Text)
	}
	_, err := io.WriteString(stdout, b.String())
	return err
}

// output prints JSON under --json, else calls human.
func output(v any, human func() error) error {
	if gflags.json {
		return printJSON(v)
	}
	return human()
}

// newTable returns a tab-aligned writer for human tables; call Flush.
func newTable() *tabwriter.Writer {
	return tabwriter.NewWriter(stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
}

// newLeftTable returns a left-aligned two-column writer; call Flush.
func newLeftTable() *tabwriter.Writer {
	return tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
}

// humanBytes renders a byte count in IEC units: "512 B", "4.0 KiB".
func humanBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	s := unitconv.FormatPrefix(float64(n), unitconv.IEC, 1)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	return s[:i] + " " + s[i:] + "B"
}
