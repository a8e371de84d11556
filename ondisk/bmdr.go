package ondisk

import (
	"encoding/binary"
	"fmt"
)

// BmdrHeaderSize is the in-inode BMBT root header (xfs_bmdr_block): level
// and numrecs, without the sibling pointers and v5 fields of a BMBT block.
const BmdrHeaderSize = 4

// BmdrRoot is the root of a BMBT stored in an inode fork. Keys start right
// after the header; pointers start after room for maxrecs keys, where
// maxrecs is fixed by the fork size, so the pointer array moves when the
// fork size changes (the kernel rewrites the root then).
type BmdrRoot struct {
	Level   uint16
	NumRecs uint16
	Keys    []uint64 // startoff of the first extent under each child
	Ptrs    []uint64 // AG-encoded block number of each child
}

// BmdrMaxRecs is the number of key/pointer pairs a root in a fork of
// forkSize bytes holds (xfs_bmdr_maxrecs for a node).
func BmdrMaxRecs(forkSize int) int {
	if forkSize < BmdrHeaderSize {
		return 0
	}
	return (forkSize - BmdrHeaderSize) / 16
}

func bmdrKeyOff(i int) int          { return BmdrHeaderSize + i*8 }
func bmdrPtrOff(maxrecs, i int) int { return BmdrHeaderSize + maxrecs*8 + i*8 }

// DecodeBmdr decodes the BMBT root from a btree-format fork. The root always
// has level >= 1 (a single-level mapping is the extents format) and 1 to
// maxrecs records.
func DecodeBmdr(fork []byte) (*BmdrRoot, error) {
	if len(fork) < BmdrHeaderSize {
		return nil, Corruptf("bmbt root: fork of %d bytes", len(fork))
	}
	r := &BmdrRoot{
		Level:   binary.BigEndian.Uint16(fork[0:]),
		NumRecs: binary.BigEndian.Uint16(fork[2:]),
	}
	maxrecs := BmdrMaxRecs(len(fork))
	if r.Level == 0 {
		return r, Corruptf("bmbt root: level 0")
	}
	if r.NumRecs == 0 || int(r.NumRecs) > maxrecs {
		return r, Corruptf("bmbt root: %d records, want 1..%d", r.NumRecs, maxrecs)
	}
	n := int(r.NumRecs)
	r.Keys = make([]uint64, n)
	r.Ptrs = make([]uint64, n)
	for i := 0; i < n; i++ {
		r.Keys[i] = binary.BigEndian.Uint64(fork[bmdrKeyOff(i):])
		r.Ptrs[i] = binary.BigEndian.Uint64(fork[bmdrPtrOff(maxrecs, i):])
	}
	return r, nil
}

// Encode writes the root into the fork, laid out for the fork's size, and
// zeroes the unused key and pointer slots. Bytes past the last pointer slot
// (less than one record's worth) are left alone, as the kernel leaves them.
// NumRecs must not exceed len(Keys), len(Ptrs) or BmdrMaxRecs(len(fork)).
func (r *BmdrRoot) Encode(fork []byte) {
	maxrecs := BmdrMaxRecs(len(fork))
	binary.BigEndian.PutUint16(fork[0:], r.Level)
	binary.BigEndian.PutUint16(fork[2:], r.NumRecs)
	for i := 0; i < maxrecs; i++ {
		var k, p uint64
		if i < int(r.NumRecs) {
			k, p = r.Keys[i], r.Ptrs[i]
		}
		binary.BigEndian.PutUint64(fork[bmdrKeyOff(i):], k)
		binary.BigEndian.PutUint64(fork[bmdrPtrOff(maxrecs, i):], p)
	}
}

// Verify checks the root: level 1..maxLevels, a record count that matches
// the arrays, keys strictly increasing and within the file offset space,
// and every pointer a data block of the file system.
func (r *BmdrRoot) Verify(g *Geometry, maxLevels int) error {
	if r.Level == 0 || int(r.Level) > maxLevels {
		return Corruptf("bmbt root: level %d, want 1..%d", r.Level, maxLevels)
	}
	if r.NumRecs == 0 || len(r.Keys) != int(r.NumRecs) || len(r.Ptrs) != int(r.NumRecs) {
		return Corruptf("bmbt root: numrecs %d with %d keys and %d pointers", r.NumRecs, len(r.Keys), len(r.Ptrs))
	}
	for i, k := range r.Keys {
		if k > extStartOffMask {
			return Corruptf("bmbt root: key %d (%d) past the largest file offset", i+1, k)
		}
		if i > 0 && k <= r.Keys[i-1] {
			return Corruptf("bmbt root: key %d (%d) not above key %d (%d)", i+1, k, i, r.Keys[i-1])
		}
	}
	for i, p := range r.Ptrs {
		if !validDataFSB(g, p) {
			return Corruptf("bmbt root: pointer %d (%d) is not a data block", i+1, p)
		}
	}
	return nil
}

// bmdrFields renders a fork's BMBT root as xfs_db prints it under prefix
// (u3.bmbt or a.bmbt). buf is the whole inode and off the fork's offset:
// like xfs_db, the record count is taken as stored and only the inode buffer
// bounds what is shown.
func bmdrFields(prefix string, buf []byte, off, forkSize int) Fields {
	if off < 0 || off+BmdrHeaderSize > len(buf) {
		return nil
	}
	be := binary.BigEndian
	level, numrecs := be.Uint16(buf[off:]), be.Uint16(buf[off+2:])
	fs := Fields{decField(prefix+".level", uint64(level)), decField(prefix+".numrecs", uint64(numrecs))}
	if numrecs == 0 {
		return fs
	}
	n := int(numrecs)
	name := fmt.Sprintf("[1-%d]", n)
	if n == 1 {
		name = "[1]"
	}
	keys := beU64sAt(buf, off+bmdrKeyOff(0), n)
	kv := make([]any, len(keys))
	var kt []byte
	kt = append(kt, "[startoff] "...)
	for i, k := range keys {
		kv[i] = k
		kt = fmt.Appendf(kt, "\n%d:[%d]", i+1, k)
		if i < len(keys)-1 {
			kt = append(kt, ' ')
		}
	}
	fs = append(fs, Field{Name: prefix + ".keys" + name, Value: kv, Text: string(kt)})
	ptrs := beU64sAt(buf, off+bmdrPtrOff(BmdrMaxRecs(forkSize), 0), n)
	pv := make([]any, len(ptrs))
	var pt []byte
	for i, p := range ptrs {
		pv[i] = p
		if len(ptrs) > 1 {
			pt = fmt.Appendf(pt, "%d:", i+1)
		}
		pt = fmt.Appendf(pt, "%d", p)
		if i < len(ptrs)-1 {
			pt = append(pt, ' ')
		}
	}
	return append(fs, Field{Name: prefix + ".ptrs" + name, Value: pv, Text: string(pt)})
}

// beU64sAt reads up to n big-endian u64s at off, as many as buf holds.
func beU64sAt(buf []byte, off, n int) []uint64 {
	if off < 0 || off > len(buf) {
		return nil
	}
	if m := (len(buf) - off) / 8; n > m {
		n = m
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(buf[off+i*8:])
	}
	return out
}
