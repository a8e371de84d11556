package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Remote symlink blocks: on v5 every buffer holding part of a symlink target
// (one per extent of the symlink's data fork) starts with this header.
const (
	SymlinkMagic      = 0x58534c4d // "XSLM"
	SymlinkHeaderSize = 56
	SymlinkCRCOff     = 12
	// SymlinkMaxLen bounds a target: the kernel refuses targets of
	// SymlinkMaxLen bytes or more, and the verifier any header whose
	// offset+bytes reaches it.
	SymlinkMaxLen = 1024
)

// SymlinkHeader mirrors struct xfs_dsymlink_hdr.
type SymlinkHeader struct {
	Magic  uint32
	Offset uint32 // byte offset of this piece within the target
	Bytes  uint32 // target bytes in this buffer
	CRC    uint32 // as the kernel computes it (stored little-endian)
	UUID   UUID
	Owner  uint64 // inode number
	Blkno  uint64 // disk address (512-byte units) of this buffer
	LSN    uint64

	crcOK bool
}

// SymlinkBlockCapacity is how many target bytes one block holds.
func SymlinkBlockCapacity(blocksize int) int { return blocksize - SymlinkHeaderSize }

// SymlinkBlocks is the number of blocks a remote target of pathLen bytes
// takes (xfs_symlink_blocks).
func SymlinkBlocks(pathLen, blocksize int) int {
	c := SymlinkBlockCapacity(blocksize)
	return (pathLen + c - 1) / c
}

// DecodeSymlinkBlock decodes a remote symlink buffer: the header and the
// target bytes it holds. buf is the buffer the kernel reads for one extent
// of the symlink (usually one block; a multi-block extent is one buffer
// with one header). The payload is a slice of buf, never longer than buf.
func DecodeSymlinkBlock(buf []byte) (*SymlinkHeader, []byte, error) {
	if len(buf) < SymlinkHeaderSize {
		return nil, nil, Corruptf("symlink block: %d bytes, want at least %d", len(buf), SymlinkHeaderSize)
	}
	be := binary.BigEndian
	h := &SymlinkHeader{
		Magic:  be.Uint32(buf[0:]),
		Offset: be.Uint32(buf[4:]),
		Bytes:  be.Uint32(buf[8:]),
		CRC:    StoredCRC(buf, SymlinkCRCOff),
		Owner:  be.Uint64(buf[32:]),
		Blkno:  be.Uint64(buf[40:]),
		LSN:    be.Uint64(buf[48:]),
	}
	copy(h.UUID[:], buf[16:32])
	h.crcOK = VerifyCRC(buf, SymlinkCRCOff)
	if h.Magic != SymlinkMagic {
		return h, nil, Corruptf("symlink block: bad magic 0x%08x", h.Magic)
	}
	room := len(buf) - SymlinkHeaderSize
	if uint64(h.Bytes) > uint64(room) {
		return h, buf[SymlinkHeaderSize:], Corruptf("symlink block: %d bytes in a block that holds %d", h.Bytes, room)
	}
	return h, buf[SymlinkHeaderSize : SymlinkHeaderSize+int(h.Bytes)], nil
}

// CRCOK reports whether the CRC matched when the block was decoded (or was
// stamped by Encode).
func (h *SymlinkHeader) CRCOK() bool { return h.crcOK }

// Verify checks the block as the kernel does when reading a symlink
// (xfs_symlink_verify and xfs_symlink_hdr_ok, less the LSN check that needs
// the log): magic, CRC over buf, file system UUID, self address daddr,
// owner ino, and a piece that lies inside the target's maximum length and
// inside the buffer.
func (h *SymlinkHeader) Verify(buf []byte, g *Geometry, ino uint64, daddr int64) error {
	if h.Magic != SymlinkMagic {
		return Corruptf("symlink block %d: bad magic 0x%08x", daddr, h.Magic)
	}
	if h.Owner == 0 {
		return Corruptf("symlink block %d: owner 0", daddr)
	}
	if err := (selfDesc{SymlinkCRCOff, h.UUID, h.Blkno, h.Owner}).verify("symlink block", buf, g, daddr, ino); err != nil {
		return err
	}
	switch {
	case uint64(h.Offset)+uint64(h.Bytes) >= SymlinkMaxLen:
		return Corruptf("symlink block %d: bytes %d at offset %d reach the %d-byte limit", daddr, h.Bytes, h.Offset, SymlinkMaxLen)
	case uint64(h.Bytes) > uint64(len(buf)-SymlinkHeaderSize):
		return Corruptf("symlink block %d: %d bytes in a %d-byte buffer", daddr, h.Bytes, len(buf))
	}
	return nil
}

// Encode writes the header into buf[:56] and stamps the CRC over all of
// buf, which must already hold the target bytes.
func (h *SymlinkHeader) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint32(buf[4:], h.Offset)
	be.PutUint32(buf[8:], h.Bytes)
	copy(buf[16:32], h.UUID[:])
	be.PutUint64(buf[32:], h.Owner)
	be.PutUint64(buf[40:], h.Blkno)
	be.PutUint64(buf[48:], h.LSN)
	StampCRC(buf, SymlinkCRCOff)
	h.CRC = StoredCRC(buf, SymlinkCRCOff)
	h.crcOK = true
}

// Fields lists the block as xfs_db prints a symlink block (type symlink,
// e.g. after `dblock 0` on a symlink inode). buf is the block; as in
// xfs_db the data shown is bounded by it.
func (h *SymlinkHeader) Fields(buf []byte) Fields {
	fs := Fields{
		hexField("magic", uint64(h.Magic)),
		decField("offset", uint64(h.Offset)),
		decField("bytes", uint64(h.Bytes)),
		crcField("crc", h.CRC, h.crcOK),
		uuidField("uuid", h.UUID),
		nullField("owner", h.Owner, NullFSIno),
		nullField("bno", h.Blkno, NullFSBlock),
		hexField("lsn", h.LSN),
	}
	if h.Magic != SymlinkMagic || len(buf) < SymlinkHeaderSize {
		return fs
	}
	n := uint64(h.Bytes)
	if room := uint64(len(buf) - SymlinkHeaderSize); n > room {
		n = room
	}
	if n == 0 {
		return fs
	}
	data := buf[SymlinkHeaderSize : SymlinkHeaderSize+int(n)]
	return append(fs, Field{Name: "data", Value: string(data), Text: dbCharns(data)})
}

// LocalSymlink returns the target of a symlink stored in its inode (data
// fork in local format): di_size bytes of the data fork.
func LocalSymlink(buf []byte, d *Dinode, g *Geometry) ([]byte, error) {
	if !d.IsSymlink() || d.Format != FmtLocal {
		return nil, fmt.Errorf("inode %d: not a symlink in local format", d.Ino)
	}
	fork := DataFork(buf, d, g)
	if d.Size <= 0 || d.Size >= SymlinkMaxLen || d.Size > int64(len(fork)) {
		return nil, Corruptf("inode %d: local symlink of %d bytes in a %d-byte fork", d.Ino, d.Size, len(fork))
	}
	return fork[:d.Size], nil
}
