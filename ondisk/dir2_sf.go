package ondisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// A shortform directory lives in the inode's data fork (di_format local):
// a header (entry count, count of 8-byte inode numbers, parent inode) and
// packed entries (namelen, offset[2], name, ftype when the file system has
// it, inode number). There are no "." and ".." entries: "." is the inode
// itself and ".." is the header's parent.
const (
	// DirMaxShortIno is the largest inode number a 4-byte field holds;
	// any larger one switches the whole fork to 8-byte inode numbers.
	DirMaxShortIno = 0xffffffff
	// DirNameMax is the longest name a directory entry can hold.
	DirNameMax = 255

	dirSFHdrFixed   = 2 // count, i8count
	dirSFEntryFixed = 3 // namelen, offset[2]
)

// dir2FTMax is XFS_DIR3_FT_MAX: file types stored in entries are below it.
// (The FT* names themselves belong to mode.go.)
const dir2FTMax = 9

// DirSF is a decoded shortform directory.
type DirSF struct {
	Parent uint64
	// I8 reports that the fork stores 8-byte inode numbers (i8count != 0).
	// Encode recomputes it from the inode numbers.
	I8      bool
	Entries []DirSFEntry
}

// DirSFEntry is one shortform entry. Offset is where the entry would sit in
// a data block: it is kept so that readdir cookies survive the conversion
// to block form.
type DirSFEntry struct {
	Name   []byte
	Offset uint16
	Ino    uint64
	FType  uint8
}

// i8Count is what i8count must hold: the number of inode numbers (parent
// included) that do not fit in four bytes.
func (s *DirSF) i8Count() int {
	n := 0
	if s.Parent > DirMaxShortIno {
		n++
	}
	for _, e := range s.Entries {
		if e.Ino > DirMaxShortIno {
			n++
		}
	}
	return n
}

func dirSFInoSize(i8 bool) int {
	if i8 {
		return 8
	}
	return 4
}

func dirSFEntrySize(namelen int, hasFType, i8 bool) int {
	n := dirSFEntryFixed + namelen + dirSFInoSize(i8)
	if hasFType {
		n++
	}
	return n
}

// DecodeDirSF decodes a shortform directory from the fork's first di_size
// bytes. The entries must end exactly at the end of fork, as the kernel's
// inode verifier requires, and i8count must match the inode numbers.
func DecodeDirSF(fork []byte, hasFType bool) (*DirSF, error) {
	if len(fork) < dirSFHdrFixed+4 {
		return nil, Corruptf("shortform dir: %d bytes, too short for a header", len(fork))
	}
	count, i8count := int(fork[0]), int(fork[1])
	s := &DirSF{I8: i8count != 0}
	isz := dirSFInoSize(s.I8)
	off := dirSFHdrFixed + isz
	if off > len(fork) {
		return nil, Corruptf("shortform dir: %d bytes, too short for an 8-byte header", len(fork))
	}
	s.Parent = getDirSFIno(fork[dirSFHdrFixed:], isz)
	// Every entry takes at least namelen 1 plus the fixed parts, so count
	// cannot claim more entries than the fork could hold.
	if min := dirSFEntrySize(1, hasFType, s.I8); count > (len(fork)-off)/min {
		return nil, Corruptf("shortform dir: count %d does not fit in %d bytes", count, len(fork))
	}
	s.Entries = make([]DirSFEntry, 0, count)
	for i := 0; i < count; i++ {
		if off+dirSFEntryFixed >= len(fork) {
			return nil, Corruptf("shortform dir: entry %d at byte %d runs past the fork (%d bytes)", i, off, len(fork))
		}
		namelen := int(fork[off])
		if namelen == 0 {
			return nil, Corruptf("shortform dir: entry %d at byte %d has a zero name length", i, off)
		}
		esz := dirSFEntrySize(namelen, hasFType, s.I8)
		if off+esz > len(fork) {
			return nil, Corruptf("shortform dir: entry %d at byte %d (%d bytes) runs past the fork (%d bytes)", i, off, esz, len(fork))
		}
		e := DirSFEntry{
			Offset: binary.BigEndian.Uint16(fork[off+1:]),
			Name:   bytes.Clone(fork[off+3 : off+3+namelen]),
		}
		p := off + 3 + namelen
		if hasFType {
			e.FType = fork[p]
			p++
		}
		e.Ino = getDirSFIno(fork[p:], isz)
		s.Entries = append(s.Entries, e)
		off += esz
	}
	if off != len(fork) {
		return nil, Corruptf("shortform dir: entries end at byte %d, di_size is %d", off, len(fork))
	}
	if n := s.i8Count(); n != i8count {
		return nil, Corruptf("shortform dir: i8count %d, but %d inode numbers need 8 bytes", i8count, n)
	}
	return s, nil
}

func getDirSFIno(b []byte, size int) uint64 {
	if size == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return uint64(binary.BigEndian.Uint32(b))
}

// Size is the number of fork bytes (the directory's di_size) Encode writes.
func (s *DirSF) Size(hasFType bool) int {
	i8 := s.i8Count() != 0
	n := dirSFHdrFixed + dirSFInoSize(i8)
	for _, e := range s.Entries {
		n += dirSFEntrySize(len(e.Name), hasFType, i8)
	}
	return n
}

// Encode writes the directory at the start of fork and returns the number
// of bytes written (the new di_size). The inode number width is chosen
// from the inode numbers, and I8 is updated to match.
func (s *DirSF) Encode(fork []byte, hasFType bool) (int, error) {
	if len(s.Entries) > 255 {
		return 0, fmt.Errorf("shortform dir: %d entries, at most 255 fit the count field", len(s.Entries))
	}
	for i, e := range s.Entries {
		if len(e.Name) == 0 || len(e.Name) > DirNameMax {
			return 0, fmt.Errorf("shortform dir: entry %d: name length %d", i, len(e.Name))
		}
		if !hasFType && e.FType != 0 {
			return 0, fmt.Errorf("shortform dir: entry %d: file type %d without the ftype feature", i, e.FType)
		}
	}
	size := s.Size(hasFType)
	if size > len(fork) {
		return 0, fmt.Errorf("shortform dir: needs %d bytes, fork has %d", size, len(fork))
	}
	i8 := s.i8Count()
	s.I8 = i8 != 0
	isz := dirSFInoSize(s.I8)
	fork[0] = byte(len(s.Entries))
	fork[1] = byte(i8)
	putDirSFIno(fork[dirSFHdrFixed:], isz, s.Parent)
	off := dirSFHdrFixed + isz
	for _, e := range s.Entries {
		fork[off] = byte(len(e.Name))
		binary.BigEndian.PutUint16(fork[off+1:], e.Offset)
		p := off + 3 + copy(fork[off+3:], e.Name)
		if hasFType {
			fork[p] = e.FType
			p++
		}
		putDirSFIno(fork[p:], isz, e.Ino)
		off = p + isz
	}
	return off, nil
}

func putDirSFIno(b []byte, size int, ino uint64) {
	if size == 8 {
		binary.BigEndian.PutUint64(b, ino)
	} else {
		binary.BigEndian.PutUint32(b, uint32(ino))
	}
}

// Verify checks what the kernel's shortform verifier checks beyond the
// layout DecodeDirSF enforces: valid inode numbers, known file types, names
// free of '/' and NUL, offsets that increase by at least each entry's data
// block size and stay within one directory block.
func (s *DirSF) Verify(g *Geometry) error {
	if !g.ValidIno(s.Parent) {
		return Corruptf("shortform dir: parent inode %d is not a valid inode number", s.Parent)
	}
	next := DirDataFirstOffset
	for i, e := range s.Entries {
		if err := dirCheckName(e.Name); err != nil {
			return fmt.Errorf("shortform dir: entry %d: %w", i, err)
		}
		if int(e.Offset) < next {
			return Corruptf("shortform dir: entry %d %q: offset %d, want at least %d", i, e.Name, e.Offset, next)
		}
		if !g.ValidIno(e.Ino) {
			return Corruptf("shortform dir: entry %d %q: inode %d is not a valid inode number", i, e.Name, e.Ino)
		}
		if e.FType >= dir2FTMax || (!g.HasFType && e.FType != 0) {
			return Corruptf("shortform dir: entry %d %q: bad file type %d", i, e.Name, e.FType)
		}
		next = int(e.Offset) + DirDataEntSize(len(e.Name), g.HasFType)
	}
	if next > g.DirBlkSize {
		return Corruptf("shortform dir: entries reach offset %d, past the %d-byte directory block", next, g.DirBlkSize)
	}
	return nil
}

// dirCheckName rejects names the kernel treats as corruption (xfs_dir2_namecheck).
func dirCheckName(name []byte) error {
	if len(name) == 0 || len(name) > DirNameMax {
		return Corruptf("name length %d", len(name))
	}
	if i := bytes.IndexAny(name, "/\x00"); i >= 0 {
		return Corruptf("name %q has %q at byte %d", name, name[i], i)
	}
	return nil
}

// Fields lists the directory as xfs_db prints the fork, with names
// relative to it ("hdr.count"; xfs_db's inode print puts "u3.sfdir3."
// before them). Inode numbers are .i4 or .i8 by the fork's width.
func (s *DirSF) Fields(hasFType bool) Fields {
	w := ".i4"
	if s.I8 {
		w = ".i8"
	}
	fs := Fields{
		decField("hdr.count", uint64(len(s.Entries))),
		decField("hdr.i8count", uint64(s.i8Count())),
		decField("hdr.parent"+w, s.Parent),
	}
	for i, e := range s.Entries {
		p := fmt.Sprintf("list[%d].", i)
		fs = append(fs, decField(p+"namelen", uint64(len(e.Name))), hexField(p+"offset", uint64(e.Offset)),
			Field{Name: p + "name", Value: string(e.Name), Text: quoteDB(e.Name)}, decField(p+"inumber"+w, e.Ino))
		if hasFType {
			fs = append(fs, decField(p+"filetype", uint64(e.FType)))
		}
	}
	return fs
}
