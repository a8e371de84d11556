package ondisk

import "io/fs"

// File type and permission bits of di_mode: the Linux S_IF* values, which
// the format stores as is.
const (
	SIFMT   = 0xf000
	SIFSOCK = 0xc000
	SIFLNK  = 0xa000
	SIFREG  = 0x8000
	SIFBLK  = 0x6000
	SIFDIR  = 0x4000
	SIFCHR  = 0x2000
	SIFIFO  = 0x1000
	SISUID  = 0o4000
	SISGID  = 0o2000
	SISVTX  = 0o1000
)

// Directory entry file types (the ftype byte of v5 directory entries).
const (
	FTUnknown = 0
	FTRegFile = 1
	FTDir     = 2
	FTChrdev  = 3
	FTBlkdev  = 4
	FTFifo    = 5
	FTSock    = 6
	FTSymlink = 7
)

// ModeToFType maps the type bits of a mode to the directory ftype;
// FTUnknown for a type the format does not define.
func ModeToFType(mode uint16) uint8 {
	switch mode & SIFMT {
	case SIFREG:
		return FTRegFile
	case SIFDIR:
		return FTDir
	case SIFCHR:
		return FTChrdev
	case SIFBLK:
		return FTBlkdev
	case SIFIFO:
		return FTFifo
	case SIFSOCK:
		return FTSock
	case SIFLNK:
		return FTSymlink
	}
	return FTUnknown
}

// IsDir, IsReg and IsSymlink test the inode's file type.
func (d *Dinode) IsDir() bool     { return d.Mode&SIFMT == SIFDIR }
func (d *Dinode) IsReg() bool     { return d.Mode&SIFMT == SIFREG }
func (d *Dinode) IsSymlink() bool { return d.Mode&SIFMT == SIFLNK }

// IsDevice reports a character or block device, FIFO or socket: the types
// whose data fork is FmtDev.
func (d *Dinode) IsDevice() bool {
	switch d.Mode & SIFMT {
	case SIFCHR, SIFBLK, SIFIFO, SIFSOCK:
		return true
	}
	return false
}

// FileType returns the io/fs type bits of the inode (0 for a regular file,
// fs.ModeIrregular for a type the format does not define, including a free
// inode).
func (d *Dinode) FileType() fs.FileMode { return modeType(d.Mode) }

func modeType(mode uint16) fs.FileMode {
	switch mode & SIFMT {
	case SIFREG:
		return 0
	case SIFDIR:
		return fs.ModeDir
	case SIFLNK:
		return fs.ModeSymlink
	case SIFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case SIFBLK:
		return fs.ModeDevice
	case SIFIFO:
		return fs.ModeNamedPipe
	case SIFSOCK:
		return fs.ModeSocket
	}
	return fs.ModeIrregular
}

// GoMode converts di_mode to an io/fs mode: type, permission bits, and
// setuid, setgid and sticky.
func (d *Dinode) GoMode() fs.FileMode {
	m := modeType(d.Mode) | fs.FileMode(d.Mode&0o777)
	if d.Mode&SISUID != 0 {
		m |= fs.ModeSetuid
	}
	if d.Mode&SISGID != 0 {
		m |= fs.ModeSetgid
	}
	if d.Mode&SISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
