package ondisk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// LiteralSize is the inode's literal area: everything after the v3 core,
// shared by the data fork and the attr fork.
func LiteralSize(g *Geometry) int { return g.InodeSize - DinodeCoreSize }

// DataForkSize is the data fork's size in bytes: up to the attr fork when
// there is one (di_forkoff, in 8-byte units), else the whole literal area.
func DataForkSize(d *Dinode, g *Geometry) int {
	if d.ForkOff != 0 {
		return int(d.ForkOff) * 8
	}
	return LiteralSize(g)
}

// AttrForkOffset is the byte offset of the attr fork in the inode, 0 when
// the inode has none.
func AttrForkOffset(d *Dinode) int {
	if d.ForkOff == 0 {
		return 0
	}
	return d.coreSize() + int(d.ForkOff)*8
}

// coreSize is where the data fork starts. As in the kernel's
// XFS_DFORK_DPTR it follows the inode's own version: any version but 3
// (only a damaged inode on v5) has the 100-byte v2 core, though the fork
// sizes are still those of the file system's v3 literal area.
func (d *Dinode) coreSize() int {
	if d.Version != 3 {
		return dinodeV2CoreSize
	}
	return DinodeCoreSize
}

// AttrForkSize is the attr fork's size in bytes, 0 when there is none (or
// when a damaged forkoff puts it past the literal area).
func AttrForkSize(d *Dinode, g *Geometry) int {
	if d.ForkOff == 0 {
		return 0
	}
	return max(LiteralSize(g)-int(d.ForkOff)*8, 0)
}

// HasAttrFork reports whether the inode has an attr fork.
func (d *Dinode) HasAttrFork() bool { return d.ForkOff != 0 }

// DataFork returns the data fork as a slice of the inode buffer, clipped to
// the buffer when a damaged forkoff or a short buffer says otherwise.
func DataFork(buf []byte, d *Dinode, g *Geometry) []byte {
	return clipInodeSlice(buf, d.coreSize(), DataForkSize(d, g))
}

// AttrFork returns the attr fork as a slice of the inode buffer, nil when
// the inode has none.
func AttrFork(buf []byte, d *Dinode, g *Geometry) []byte {
	if d.ForkOff == 0 {
		return nil
	}
	return clipInodeSlice(buf, AttrForkOffset(d), AttrForkSize(d, g))
}

// clipInodeSlice returns buf[off:off+n] limited to what buf holds.
func clipInodeSlice(buf []byte, off, n int) []byte {
	if off >= len(buf) || n <= 0 {
		return buf[len(buf):]
	}
	end := min(off+n, len(buf))
	return buf[off:end:end]
}

// dataForkFields renders the data fork (prefix "u3") as xfs_db prints it.
// Shortform directories are not rendered.
func dataForkFields(buf []byte, d *Dinode, g *Geometry) Fields {
	const p = "u3"
	off := d.coreSize()
	switch d.Format {
	case FmtDev:
		if off+4 <= len(buf) {
			return Fields{hexField(p+".dev", uint64(binary.BigEndian.Uint32(buf[off:])))}
		}
	case FmtLocal:
		switch d.Mode & SIFMT {
		case SIFDIR:
			return nil // u3.sfdir3: not rendered here
		case SIFLNK, SIFREG:
			if d.Size <= 0 {
				break
			}
			name := p + ".symlink"
			if d.Mode&SIFMT == SIFREG {
				name = p + ".c"
			}
			b := clipInodeSlice(buf, off, int(min(d.Size, int64(len(buf)))))
			return Fields{{Name: name, Value: string(b), Text: dbCharns(b)}}
		}
	case FmtExtents:
		if d.NExtents != 0 {
			return Fields{bmxField(p+".bmx", buf, off, d.NExtents)}
		}
	case FmtBtree:
		return bmdrFields(p+".bmbt", buf, off, DataForkSize(d, g))
	case FmtUUID:
		if off+16 <= len(buf) {
			var u UUID
			copy(u[:], buf[off:])
			return Fields{uuidField(p+".muuid", u)}
		}
	}
	return Fields{{Name: p, Text: "(empty)"}}
}

// attrForkFields renders the attr fork (prefix "a") as xfs_db prints it:
// nothing when there is no attr fork. Shortform attributes are not
// rendered.
func attrForkFields(buf []byte, d *Dinode, g *Geometry) Fields {
	const p = "a"
	if d.ForkOff == 0 {
		return nil
	}
	off := AttrForkOffset(d)
	switch d.AFormat {
	case FmtLocal:
		return nil // a.sfattr: not rendered here
	case FmtExtents:
		if d.ANExtents != 0 {
			return Fields{bmxField(p+".bmx", buf, off, uint64(d.ANExtents))}
		}
	case FmtBtree:
		return bmdrFields(p+".bmbt", buf, off, AttrForkSize(d, g))
	}
	return Fields{{Name: p, Text: "(empty)"}}
}

// bmxField renders n extent records at off as xfs_db's bmx array: the
// header names all n, the records shown are those inside the inode buffer.
func bmxField(name string, buf []byte, off int, n uint64) Field {
	if n == 1 {
		name += "[0]"
	} else {
		name += fmt.Sprintf("[0-%d]", n-1)
	}
	shown := n
	if avail := uint64(max(len(buf)-off, 0) / ExtentSize); shown > avail {
		shown = avail
	}
	var t strings.Builder
	t.WriteString("[startoff,startblock,blockcount,extentflag] ")
	vals := make([]any, shown)
	for i := uint64(0); i < shown; i++ {
		e := DecodeExtent(buf[off+int(i)*ExtentSize:])
		flag := 0
		if e.Unwritten {
			flag = 1
		}
		fmt.Fprintf(&t, "\n%d:[%d,%d,%d,%d]", i, e.StartOff, e.StartBlock, e.BlockCount, flag)
		if i < shown-1 {
			t.WriteByte(' ')
		}
		vals[i] = map[string]any{"startoff": e.StartOff, "startblock": e.StartBlock,
			"blockcount": e.BlockCount, "extentflag": flag}
	}
	return Field{Name: name, Value: vals, Text: t.String()}
}

// dbCharns renders bytes as xfs_db's "charns" type does: quoted, with
// backslash escapes for \ ' " ?, printable ASCII as is, and octal escapes
// for the rest. xfs_db maps the C control escapes \a \b \f \n \r \t \v
// to a letter by adding 'a'-'\a', which gives \a \b \f \d \g \c \e; that
// is reproduced so that output compares equal.
func dbCharns(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, c := range b {
		switch {
		case c == '\\' || c == '\'' || c == '"' || c == '?':
			s.WriteByte('\\')
			s.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			s.WriteByte(c)
		case c >= '\a' && c <= '\r':
			s.WriteByte('\\')
			s.WriteByte(c + 'a' - '\a')
		default:
			fmt.Fprintf(&s, "\\%03o", c)
		}
	}
	s.WriteByte('"')
	return s.String()
}
