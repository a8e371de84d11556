package log

import (
	"encoding/binary"

	"github.com/xfsimg/xfsimg/ondisk"
)

// The inode core travels in the log as xfs_log_dinode: the same layout as
// the on-disk core, but every integer in host (little-endian) order.
// Timestamps are one 64-bit integer with bigtime and two 32-bit ones
// (seconds, nanoseconds) without, so they swap differently.

// LogDinodeSize is the logged core size of a v3 inode.
const LogDinodeSize = ondisk.DinodeCoreSize

type dinodeField struct {
	off, size int
	ts        bool // a timestamp
}

var dinodeLayout = []dinodeField{
	{0, 2, false}, {2, 2, false}, {4, 1, false}, {5, 1, false}, {6, 2, false},
	{8, 4, false}, {12, 4, false}, {16, 4, false}, {20, 2, false}, {22, 2, false},
	{24, 8, false},
	{32, 8, true}, {40, 8, true}, {48, 8, true},
	{56, 8, false}, {64, 8, false}, {72, 4, false}, {76, 4, false}, {80, 2, false},
	{82, 1, false}, {83, 1, false}, {84, 4, false}, {88, 2, false}, {90, 2, false},
	{92, 4, false}, {96, 4, false}, {100, 4, false}, {104, 8, false}, {112, 8, false},
	{120, 8, false}, {128, 4, false}, {132, 12, false /* padding: raw */},
	{144, 8, true}, {152, 8, false}, {160, 16, false /* uuid: raw */},
}

const (
	dinodeFlags2Off = 120
	flags2Bigtime   = 0x8
)

// swapDinode converts between the two byte orders; bigtime selects how
// timestamps swap.
func swapDinode(dst, src []byte, bigtime bool) {
	for _, f := range dinodeLayout {
		s, d := src[f.off:f.off+f.size], dst[f.off:f.off+f.size]
		switch {
		case f.off == 132 || f.off == 160 || f.size == 1:
			copy(d, s)
		case f.ts && !bigtime:
			swapN(d[0:4], s[0:4])
			swapN(d[4:8], s[4:8])
		default:
			swapN(d, s)
		}
	}
}

func swapN(d, s []byte) {
	n := len(s)
	for i := 0; i < n; i++ {
		d[i] = s[n-1-i]
	}
}

// DiskToLogDinode converts an on-disk (big-endian) v3 inode core to the
// logged form.
func DiskToLogDinode(dst, src []byte) {
	bigtime := binary.BigEndian.Uint64(src[dinodeFlags2Off:])&flags2Bigtime != 0
	swapDinode(dst, src, bigtime)
}

// LogToDiskDinode converts a logged inode core back to disk order.
func LogToDiskDinode(dst, src []byte) {
	bigtime := binary.LittleEndian.Uint64(src[dinodeFlags2Off:])&flags2Bigtime != 0
	swapDinode(dst, src, bigtime)
}
