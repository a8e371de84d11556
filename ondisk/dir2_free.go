package ondisk

import (
	"encoding/binary"
	"fmt"
)

// A node directory's free index: blocks from DirFreeOffset, each holding
// the longest free region (bests) of a run of data blocks, so that an
// insert finds a data block with room without reading them all.
const (
	Dir3FreeHdrSize = 64 // blk hdr, firstdb, nvalid, nused, pad
)

// DirFreeMaxBests is how many data blocks one free block describes.
func DirFreeMaxBests(blkSize int) int { return (blkSize - Dir3FreeHdrSize) / 2 }

// DirFree is a decoded free index block. Bests[i] describes data block
// FirstDB+i; DirNullDataOff marks a hole. NValid is len(Bests); NUsed the
// number of slots that are not holes.
type DirFree struct {
	Hdr                    Dir3BlkHdr
	FirstDB, NValid, NUsed uint32
	Bests                  []uint16
}

// DecodeDirFree decodes a free index block; nvalid is bounded by the block.
func DecodeDirFree(buf []byte) (*DirFree, error) {
	if !daBlockSizeOK(len(buf)) {
		return nil, Corruptf("dir free: size %d is not a directory block size", len(buf))
	}
	f := &DirFree{Hdr: decodeDir3BlkHdr(buf)}
	if f.Hdr.Magic != Dir3FreeMagic {
		return nil, Corruptf("dir free: bad magic 0x%08x, want 0x%08x", f.Hdr.Magic, Dir3FreeMagic)
	}
	be := binary.BigEndian
	f.FirstDB = be.Uint32(buf[48:])
	f.NValid = be.Uint32(buf[52:])
	f.NUsed = be.Uint32(buf[56:])
	if max := DirFreeMaxBests(len(buf)); f.NValid > uint32(max) {
		return nil, Corruptf("dir free: nvalid %d, at most %d fit", f.NValid, max)
	}
	f.Bests = make([]uint16, f.NValid)
	for i := range f.Bests {
		f.Bests[i] = be.Uint16(buf[Dir3FreeHdrSize+2*i:])
	}
	return f, nil
}

// Verify checks the block like xfs_dir3_free_verify and the header check
// done at read time: identity, firstdb on a free-block boundary, nvalid
// within the block, nused equal to the slots that are not holes. Whether
// firstdb is right for the block's position is the caller's check (the
// block does not know its logical offset).
func (f *DirFree) Verify(buf []byte, g *Geometry, ino uint64, daddr int64) error {
	if f.Hdr.Magic != Dir3FreeMagic {
		return Corruptf("dir free at daddr %d: bad magic 0x%08x", daddr, f.Hdr.Magic)
	}
	if len(buf) != g.DirBlkSize {
		return Corruptf("dir free at daddr %d: %d bytes, directory blocks are %d", daddr, len(buf), g.DirBlkSize)
	}
	if err := f.Hdr.verify("dir free", buf, g, ino, daddr); err != nil {
		return err
	}
	max := DirFreeMaxBests(len(buf))
	if f.FirstDB%uint32(max) != 0 {
		return Corruptf("dir free at daddr %d: firstdb %d is not a multiple of %d", daddr, f.FirstDB, max)
	}
	if f.NValid > uint32(max) || int(f.NValid) != len(f.Bests) {
		return Corruptf("dir free at daddr %d: nvalid %d, %d bests decoded, at most %d fit", daddr, f.NValid, len(f.Bests), max)
	}
	used := 0
	for _, b := range f.Bests {
		if b != DirNullDataOff {
			used++
		}
	}
	if f.NUsed != uint32(used) {
		return Corruptf("dir free at daddr %d: nused %d, %d bests are not holes", daddr, f.NUsed, used)
	}
	return nil
}

// Encode writes the block into buf (the whole directory block) and stamps
// the CRC. NValid is taken from len(Bests); bytes past the last best are
// left as they are.
func (f *DirFree) Encode(buf []byte) error {
	if !daBlockSizeOK(len(buf)) {
		return fmt.Errorf("dir free: encode into %d bytes", len(buf))
	}
	if f.Hdr.Magic != Dir3FreeMagic {
		return fmt.Errorf("dir free: encode with magic 0x%08x", f.Hdr.Magic)
	}
	if len(f.Bests) > DirFreeMaxBests(len(buf)) {
		return fmt.Errorf("dir free: %d bests, at most %d fit", len(f.Bests), DirFreeMaxBests(len(buf)))
	}
	f.NValid = uint32(len(f.Bests))
	f.Hdr.encode(buf)
	be := binary.BigEndian
	be.PutUint32(buf[48:], f.FirstDB)
	be.PutUint32(buf[52:], f.NValid)
	be.PutUint32(buf[56:], f.NUsed)
	be.PutUint32(buf[60:], 0)
	for i, b := range f.Bests {
		be.PutUint16(buf[Dir3FreeHdrSize+2*i:], b)
	}
	StampCRC(buf, Dir3BlkHdrCRCOff)
	f.Hdr.CRC = StoredCRC(buf, Dir3BlkHdrCRCOff)
	f.Hdr.crcOK = true
	return nil
}

// Fields lists the block as xfs_db prints it: fhdr, then the bests on one
// line.
func (f *DirFree) Fields() Fields {
	fs := f.Hdr.fields("fhdr.hdr")
	fs = append(fs, decField("fhdr.firstdb", uint64(f.FirstDB)), decField("fhdr.nvalid", uint64(f.NValid)),
		decField("fhdr.nused", uint64(f.NUsed)))
	if len(f.Bests) > 0 {
		fs = append(fs, dbHexArray("fbests", f.Bests))
	}
	return fs
}
