package bmbt

import (
	"encoding/binary"

	"github.com/xfsimg/xfsimg/ondisk"
)

// inodeRoot holds the BMBT root of one fork in the in-core form the btree
// engine works on: a long-form block header followed by keys and pointers
// laid out for the capacity of the fork, as the kernel's if_broot.
type inodeRoot struct {
	buf []byte
}

func (r *inodeRoot) Height() int {
	return int(binary.BigEndian.Uint16(r.buf[4:])) + 1
}
func (r *inodeRoot) Ptr() uint64       { return ondisk.NullFSBlock }
func (r *inodeRoot) InodeRoot() []byte { return r.buf }

// rootFromFork expands the on-disk bmdr root in fork into the in-core
// block form. Keys and pointers keep their positions relative to capacity:
// the fork holds BmdrMaxRecs(len(fork)) slots, the in-core block the same.
func rootFromFork(fork []byte, ino uint64, uuid ondisk.UUID) (*inodeRoot, error) {
	bmdr, err := ondisk.DecodeBmdr(fork)
	if err != nil {
		return nil, err
	}
	maxrecs := ondisk.BmdrMaxRecs(len(fork))
	buf := make([]byte, ondisk.LongBlockHeaderSize+maxrecs*(ondisk.BmbtKeySize+ondisk.LongPtrSize))
	hdr := ondisk.BtreeBlock{
		Magic:    ondisk.BmapMagic,
		Level:    bmdr.Level,
		NumRecs:  bmdr.NumRecs,
		LeftSib:  ondisk.NullFSBlock,
		RightSib: ondisk.NullFSBlock,
		Blkno:    ondisk.NullFSBlock,
		UUID:     uuid,
		Owner:    ino,
		Long:     true,
	}
	hdr.Encode(buf)
	keys := ondisk.LongBlockHeaderSize
	ptrs := keys + maxrecs*ondisk.BmbtKeySize
	for i := 0; i < int(bmdr.NumRecs); i++ {
		binary.BigEndian.PutUint64(buf[keys+i*8:], bmdr.Keys[i])
		binary.BigEndian.PutUint64(buf[ptrs+i*8:], bmdr.Ptrs[i])
	}
	return &inodeRoot{buf: buf}, nil
}
