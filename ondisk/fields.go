package ondisk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Field is one named field of an on-disk structure, named and rendered as
// xfs_db prints it, so that `inspect` output can be compared with xfs_db
// line by line and JSON keys are the names xfs_db users know.
type Field struct {
	Name  string // xfs_db's field name, e.g. "dblocks"
	Value any    // typed value for JSON: uint64, int64, string, bool, []any
	Text  string // xfs_db's rendering, e.g. "0x58465342", "null"
}

// Fields is an ordered list of fields; it marshals to a JSON object whose key
// order is the on-disk order.
type Fields []Field

// MarshalJSON writes an object with keys in order.
func (fs Fields) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.Name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the field with the given name.
func (fs Fields) Get(name string) (Field, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// String renders the fields as xfs_db does: "name = value" per line.
func (fs Fields) String() string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Name)
		b.WriteString(" = ")
		b.WriteString(f.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// Null markers used by the format.
const (
	NullAGBlock   = ^uint32(0) // NULLAGBLOCK
	NullAGIno     = ^uint32(0) // NULLAGINO
	NullFSBlock   = ^uint64(0) // NULLFSBLOCK
	NullFSIno     = ^uint64(0) // NULLFSINO
	NullDablk     = ^uint32(0) // NULL directory/attr block
	NullCommitLSN = ^uint64(0) // NULLCOMMITLSN
)

func decField(name string, v uint64) Field {
	return Field{Name: name, Value: v, Text: strconv.FormatUint(v, 10)}
}

func sdecField(name string, v int64) Field {
	return Field{Name: name, Value: v, Text: strconv.FormatInt(v, 10)}
}

// hexField renders like C's printf("%#x"), as xfs_db does: "0" for zero.
func hexField(name string, v uint64) Field {
	return Field{Name: name, Value: v, Text: xdbHexText(v)}
}

func xdbHexText(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// octField renders like printf("%#o"): "0" for zero, else a leading 0.
func octField(name string, v uint64) Field {
	if v == 0 {
		return Field{Name: name, Value: v, Text: "0"}
	}
	return Field{Name: name, Value: v, Text: "0" + strconv.FormatUint(v, 8)}
}

// nullField renders the all-ones value as xfs_db's "null".
func nullField(name string, v, null uint64) Field {
	if v == null {
		return Field{Name: name, Value: nil, Text: "null"}
	}
	return decField(name, v)
}

func uuidField(name string, u UUID) Field {
	return Field{Name: name, Value: u.String(), Text: u.String()}
}

// crcField renders a stored CRC with xfs_db's verdict. xfs_db reads the
// field big-endian like every other, so it shows the little-endian CRC
// byte-swapped; the JSON value is the CRC itself.
func crcField(name string, stored uint32, ok bool) Field {
	verdict := "correct"
	if !ok {
		verdict = "bad"
	}
	shown := uint64(bits.ReverseBytes32(stored))
	return Field{Name: name, Value: uint64(stored), Text: xdbHexText(shown) + " (" + verdict + ")"}
}
