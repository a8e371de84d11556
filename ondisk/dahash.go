package ondisk

import "math/bits"

// DAHashName is the hash the directory and attribute btrees index names by
// (xfs_da_hashname). Leaf entries and da node keys are sorted on it, so a
// lookup that hashed differently from the kernel would miss every name.
// It folds the name four bytes at a time, rotating the running hash by 7
// bits per byte folded, and is defined on unsigned bytes.
func DAHashName(name []byte) uint32 {
	var h uint32
	for ; len(name) >= 4; name = name[4:] {
		h = uint32(name[0])<<21 ^ uint32(name[1])<<14 ^ uint32(name[2])<<7 ^ uint32(name[3]) ^
			bits.RotateLeft32(h, 7*4)
	}
	switch len(name) {
	case 3:
		return uint32(name[0])<<14 ^ uint32(name[1])<<7 ^ uint32(name[2]) ^ bits.RotateLeft32(h, 7*3)
	case 2:
		return uint32(name[0])<<7 ^ uint32(name[1]) ^ bits.RotateLeft32(h, 7*2)
	case 1:
		return uint32(name[0]) ^ bits.RotateLeft32(h, 7)
	}
	return h
}
