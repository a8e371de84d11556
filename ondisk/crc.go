package ondisk

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zeroCRC [4]byte

// Checksum returns the CRC32C of buf computed as if the 4-byte CRC field at
// off were zero, without modifying buf: every v5 metadata block is
// checksummed that way.
func Checksum(buf []byte, off int) uint32 {
	c := crc32.Update(0, castagnoli, buf[:off])
	c = crc32.Update(c, castagnoli, zeroCRC[:])
	return crc32.Update(c, castagnoli, buf[off+4:])
}

// CRC32C is the plain Castagnoli checksum of b.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// CRC32CUpdate continues a Castagnoli checksum.
func CRC32CUpdate(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// StoredCRC reads the CRC field at off. XFS stores it little-endian, unlike
// every other field.
func StoredCRC(buf []byte, off int) uint32 { return binary.LittleEndian.Uint32(buf[off:]) }

// VerifyCRC reports whether the stored CRC at off matches the contents.
func VerifyCRC(buf []byte, off int) bool {
	if off < 0 || off+4 > len(buf) {
		return false
	}
	return StoredCRC(buf, off) == Checksum(buf, off)
}

// StampCRC computes and stores the CRC at off.
func StampCRC(buf []byte, off int) {
	binary.LittleEndian.PutUint32(buf[off:], Checksum(buf, off))
}
