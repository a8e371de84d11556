package ondisk

// selfDesc is what every v5 metadata block says about itself, so that a
// block written to the wrong place, for the wrong owner or file system,
// or torn, is caught when read: its CRC, the file system's metadata UUID,
// its own disk address and its owner.
type selfDesc struct {
	crcOff int
	uuid   UUID
	blkno  uint64
	owner  uint64
}

// verify checks the four against what the reader expects.
func (s selfDesc) verify(what string, buf []byte, g *Geometry, daddr int64, owner uint64) error {
	if !VerifyCRC(buf, s.crcOff) {
		return Corruptf("%s at daddr %d: bad CRC: stored 0x%08x, computed 0x%08x", what, daddr, StoredCRC(buf, s.crcOff), Checksum(buf, s.crcOff))
	}
	if s.uuid != g.MetaUUID {
		return Corruptf("%s at daddr %d: uuid %s, want %s", what, daddr, s.uuid, g.MetaUUID)
	}
	if s.blkno != uint64(daddr) {
		return Corruptf("%s at daddr %d: blkno %d, want %d", what, daddr, s.blkno, daddr)
	}
	if s.owner != owner {
		return Corruptf("%s at daddr %d: owner %d, want inode %d", what, daddr, s.owner, owner)
	}
	return nil
}
